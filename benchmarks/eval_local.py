"""The reference workflow under the `offline` and `local` profiles, side by side, on the same
questions of NQ-Open (with its gold passages) and CLAP NQ (answerable and unanswerable), through
`agentflow.eval` exactly as `agentflow eval` runs it.

    python benchmarks/eval_local.py [--limit 100] [--quick] [--data ../shared/data]

Per profile and set: token F1, answer-contains, citation precision and recall, faithfulness,
abstention accuracy, latency p50 and tokens per item. Then how well the checks catch the local
model's real mistakes: over the local profile's answered items, the ROC AUC of the faithfulness
score and of the citations score against answer correctness (NQ-Open: the answer contains a gold
answer; CLAP NQ answerable: token F1 >= 0.3 against the human answer). A check that tells right
answers from wrong ones scores near 1; 0.5 is chance.

The local profile serves SmolLM2-135M-Instruct from agentflow's model server (one already serving on
127.0.0.1:8000 is reused, otherwise agentflow starts one for the run). On a 2-core CPU an item
takes about a minute of the model server's time, so `--limit` is what the machine allows; the figures say
how many items they come from. The corpora are ingested once into a work folder outside the
checkout (--work, default $TMPDIR/agentflow-eval-local); the traces and each evaluation's results
go to benchmarks/.cache/eval_local/<profile>-<set>/ (report.html there). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
CACHE = ROOT / "benchmarks" / ".cache" / "eval_local"
os.environ.setdefault("AGENTFLOW_TRACES_DB", str(CACHE / "traces.db"))

from agentflow.eval import RunOptions, evaluate, load_dataset  # noqa: E402

WORKFLOW = str(ROOT / "graphs" / "agentic_rag.yaml")
KEPT = ("token_f1", "answer_contains", "citation_precision", "citation_recall", "faithfulness",
        "abstention_accuracy", "answerable_abstained", "unanswerable_abstained", "latency_p50_s",
        "tokens_per_item", "error_rate")
SETS = (("nq_open_oracle", "nq_open_oracle", "nq_open_oracle"), ("clapnq", "clapnq", "clapnq_dev"))
CLAP_RIGHT_F1 = 0.3
"""Token F1 over which a CLAP NQ long-form answer counts as right, for the AUCs."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def auc(positive: list[float], negative: list[float]) -> float | None:
    """Probability that a right answer's score beats a wrong one's (ties half); None when either
    side is empty."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return round(wins / (len(positive) * len(negative)), 3)


def right(name: str, record: dict[str, Any]) -> bool | None:
    """Whether an answered item is right; None for items that have no right answer to give."""
    metrics = record.get("metrics") or {}
    if name == "nq_open_oracle":
        value = metrics.get("answer_contains")
        return None if value is None else bool(value)
    if not record.get("gold", {}).get("answerable", True):
        return None
    f1 = metrics.get("token_f1")
    return None if f1 is None else f1 >= CLAP_RIGHT_F1


def check_aucs(name: str, folder: Path) -> dict[str, Any]:
    """AUC of the faithfulness and citations scores against correctness, answered items only."""
    scores: dict[str, tuple[list[float], list[float]]] = {
        "faithfulness": ([], []), "citations": ([], [])}
    answered = 0
    for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("status") != "ok" or record.get("abstained"):
            continue
        label = right(name, record)
        if label is None:
            continue
        answered += 1
        for kind, (good, bad) in scores.items():
            score = (record.get("checks", {}).get(kind) or {}).get("score")
            if score is not None:
                (good if label else bad).append(float(score))
    out: dict[str, Any] = {"answered_scored": answered}
    for kind, (good, bad) in scores.items():
        out[f"{kind}_auc"] = auc(good, bad)
        out[f"{kind}_right_wrong"] = [len(good), len(bad)]
    return out


async def once(profile: str, name: str, dataset: Any, concurrency: int) -> dict[str, Any]:
    folder = CACHE / f"{profile}-{name}"
    started = time.perf_counter()
    outcome = await evaluate(WORKFLOW, dataset, folder, profile=profile, fresh=True,
                             options=RunOptions(concurrency=concurrency))
    metrics = outcome.summary["metrics"]
    kept = {k: metrics[k] for k in KEPT if metrics.get(k) is not None}
    kept["items"] = len(dataset.items)
    kept["seconds"] = round(time.perf_counter() - started, 1)
    if profile == "local":
        kept.update(check_aucs(name, folder))
    log(f"{profile} {name}: {json.dumps(kept)}  ({folder / 'report.html'})")
    return kept


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="questions per set (default 100)")
    parser.add_argument("--quick", action="store_true", help="4 questions per set")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="items at once (the model server batches their decoding)")
    parser.add_argument("--profiles", default="offline,local")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agentflow-eval-local",
                        help="where the corpora and the embedding cache are kept between runs")
    args = parser.parse_args()
    limit = 4 if args.quick else args.limit
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the corpora, the embedding cache and the model server's log live in its .agentflow/
    started = time.perf_counter()
    out: dict[str, Any] = {"benchmark": "eval_local", "workflow": "graphs/agentic_rag.yaml",
                           "limit": limit,
                           "cpus": os.cpu_count(), "python": platform.python_version()}
    for name, fmt, folder in SETS:
        dataset = load_dataset(args.data.resolve() / folder, fmt, limit=limit)
        out[name] = {profile: await once(profile, name, dataset, args.concurrency)
                     for profile in args.profiles.split(",")}
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
