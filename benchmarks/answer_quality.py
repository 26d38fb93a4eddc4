"""Answer quality of the reference workflow on documents that are not agentflow's, with a baseline.

graphs/agentic_rag.yaml runs, offline profile, with nothing changed but the source override
(``--set collections.knowledge.source=benchmarks/answer_quality/corpus``: twelve documents on
home beekeeping the project wrote), on the questions in benchmarks/answer_quality/questions.jsonl
(the ``test`` split unless ``--split dev``). Four figures, each the share of its kind of question:

- ``answerable_acc``: routed to the answerer, answered (not abstained), with a citation whose
  source is the gold document, and the gold answer string in the answer (case and whitespace
  aside);
- ``unanswerable_acc``: on topic but not in the documents: routed to the answerer and abstained
  (``answer_status: abstained``, or an answer that abstains);
- ``chitchat_acc``: greetings, thanks and small talk routed to chit-chat;
- ``unrelated_declined``: requests unrelated to the documents declined (any route but the
  answerer and chit-chat: ``out_of_scope``).

Without ``--quick``, CLAP NQ dev (it has unanswerable questions) and NQ-Open with its gold passages
also run, through ``agentflow.eval`` as benchmarks/eval_reference.py runs them (one evaluation
each): abstention accuracy, token F1, answer-contains.

The baseline is another checkout (``--baseline PATH``, default /tmp/base when it exists;
``--baseline ''`` for none): this same script runs in a subprocess with that checkout first on
``sys.path`` and its own graphs/agentic_rag.yaml, on the same corpus and questions; both are
printed with the deltas. Every run works in a temporary project folder (embedded store, traces;
one embedding cache in a temporary folder serves both runs), so nothing is written into a
checkout.

    python benchmarks/answer_quality.py [--quick] [--split test|dev] [--baseline PATH]
                                        [--details FILE]

``--quick`` (the beekeeping set only) takes under 5 minutes on a 2-core machine. The last line
printed is JSON: the four figures (plus ``clapnq`` and ``nq_open_oracle`` without ``--quick``) and
a ``baseline`` object of the same keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "answer_quality"
CORPUS = DATA / "corpus"
SHARED = ROOT.parent / "shared" / "data"
FIGURES = ("answerable_acc", "unanswerable_acc", "chitchat_acc", "unrelated_declined")
KIND_FIGURE = dict(zip(("answerable", "unanswerable", "chitchat", "unrelated"), FIGURES))
EVAL_SETS = {"clapnq": ("clapnq", "clapnq_dev", 48), "nq_open_oracle": ("nq_open_oracle",
                                                                       "nq_open_oracle", 40)}
EVAL_KEPT = ("abstention_accuracy", "token_f1", "answer_contains")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def norm(text: str) -> str:
    """Lower case, whitespace collapsed (gold strings may span a hard line break)."""
    return " ".join(str(text).split()).lower()


def load_questions(split: str) -> list[dict[str, str]]:
    lines = (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [q for q in map(json.loads, filter(str.strip, lines)) if q["split"] == split]


def judge(question: dict[str, str], state: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether the run did what the question's kind asks, and what was observed."""
    from agentflow.checks import is_abstention

    route = state.get("route")
    status = state.get("answer_status")
    answer = "" if state.get("answer") is None else str(state["answer"])
    body = answer.split("\n\nCaveat:", 1)[0] if status == "caveat" else answer
    abstained = status == "abstained" or is_abstention(body)
    cited = sorted({Path(str(c.get("source") or "")).name for c in state.get("citations") or []
                    if isinstance(c, dict)})
    kind = question["kind"]
    if kind == "answerable":
        ok = (route == "knowledge" and not abstained and question["doc"] in cited
              and norm(question["answer"]) in norm(body))
    elif kind == "unanswerable":
        ok = route == "knowledge" and abstained
    elif kind == "chitchat":
        ok = route == "chitchat"
    else:
        ok = route not in ("knowledge", "chitchat")
    seen = {"id": question["id"], "kind": kind, "ok": ok, "route": route, "answer_status": status,
            "abstained": abstained, "cited": cited, "answer": answer[:300]}
    return ok, seen


async def answer_quality(code: Path, split: str, concurrency: int,
                         project: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The four figures of ``code``'s reference workflow on the beekeeping questions."""
    from tqdm import tqdm

    from agentflow.errors import AgentflowError
    from agentflow.spec.load import load_workflow

    workflow = load_workflow(code / "graphs" / "agentic_rag.yaml",
                             overrides=[f"collections.knowledge.source={CORPUS}"])
    services = await workflow.aservices(root=project, progress=False)
    questions = load_questions(split)
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(questions), desc=f"answer quality ({split}, {code.name})",
               unit="question", file=sys.stderr, mininterval=1.0)

    async def one(question: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        async with gate:
            try:
                state = dict((await workflow.flow.arun({"question": question["question"]},
                                                       services=services)).state)
            except AgentflowError as exc:  # a failed run scores as wrong; the rest go on
                log(f"{question['id']}: the run failed: {exc}")
                state = {"route": None, "answer": ""}
        bar.update()
        return judge(question, state)

    outcomes = await asyncio.gather(*map(one, questions))
    bar.close()
    figures = {}
    for kind, figure in KIND_FIGURE.items():
        hits = [ok for (ok, seen) in outcomes if seen["kind"] == kind]
        figures[figure] = round(sum(hits) / len(hits), 3) if hits else None
    return figures, [seen for _, seen in outcomes]


async def eval_sets(code: Path, project: Path, concurrency: int,
                    limit: int | None) -> dict[str, dict[str, Any]]:
    """CLAP NQ and NQ-Open through ``agentflow.eval``, with benchmarks/eval_reference.py's code
    (one evaluation each, not its cold and warm pair), the workflow and results redirected."""
    import eval_reference  # benchmarks/ is this script's folder, first on sys.path

    eval_reference.WORKFLOW = str(code / "graphs" / "agentic_rag.yaml")
    eval_reference.CACHE = project / "eval"
    out = {}
    for name, (fmt, folder, size) in EVAL_SETS.items():
        dataset = eval_reference.load_dataset(SHARED / folder, fmt, limit=limit or size)
        log(f"{name}: {len(dataset.items)} questions")
        metrics, seconds = await eval_reference.once(name, dataset, concurrency, ())
        out[name] = {**{k: metrics.get(k) for k in EVAL_KEPT}, "items": len(dataset.items),
                     "seconds": round(seconds, 1)}
    return out


async def measure(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Everything one checkout scores, in a temporary project folder that is the cwd."""
    import agentflow

    log(f"measuring {code} (agentflow from {Path(agentflow.__file__).parent})")
    started = time.perf_counter()
    figures, seen = await answer_quality(code, args.split, args.concurrency, Path.cwd())
    log(f"answer quality: {len(seen)} questions in {time.perf_counter() - started:.0f} s")
    out: dict[str, Any] = dict(figures)
    if args.details:
        with open(args.details, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in seen)
    if not args.quick:
        out.update(await eval_sets(code, Path.cwd(), args.concurrency, args.eval_limit))
    return out


def in_project(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`measure` with a fresh temporary project folder as the cwd and for every store.

    The embedding cache is the caller's ``$AGENTFLOW_EMBEDDING_CACHE`` when set (the baseline's
    run shares the first run's, in a temporary folder, so the same sentences are not embedded
    twice; embeddings are deterministic, so scores do not change), else the temp folder's."""
    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="agentflow-answer-quality-") as tmp:
        os.environ["AGENTFLOW_TRACES_DB"] = str(Path(tmp) / "traces.db")
        os.chdir(tmp)
        try:
            return asyncio.run(measure(code, args))
        finally:
            os.chdir(home)


def baseline(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """This script's measurement of another checkout, in a subprocess importing that checkout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--checkout", str(path), "--baseline",
           "", "--split", args.split, "--concurrency", str(args.concurrency),
           *(["--quick"] if args.quick else []),
           *(["--eval-limit", str(args.eval_limit)] if args.eval_limit else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"the baseline run ({path}) failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flat(result: dict[str, Any]) -> dict[str, float]:
    """The comparable figures: the four, and the eval sets' metrics as ``set.metric``."""
    out = {k: result[k] for k in FIGURES if result.get(k) is not None}
    for name in EVAL_SETS:
        out.update({f"{name}.{k}": v for k, v in (result.get(name) or {}).items()
                    if k in EVAL_KEPT and v is not None})
    return out


def report(current: dict[str, Any], base: dict[str, Any] | None) -> None:
    ours, theirs = flat(current), flat(base or {})
    print(f"{'':34} {'this checkout':>14} {'baseline':>10} {'delta':>8}")
    for key, value in ours.items():
        other = theirs.get(key)
        shown = "" if other is None else f"{other:10.3f} {value - other:+8.3f}"
        print(f"{key:34} {value:14.3f} {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the beekeeping set only")
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--baseline", default="/tmp/base",
                        help="a checkout to compare with ('' for none)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--eval-limit", type=int, default=None,
                        help="questions per eval set (default: 48 CLAP NQ, 40 NQ-Open; fewer "
                             "to try the script, not to report)")
    parser.add_argument("--details", help="write what each question got to this JSONL file")
    parser.add_argument("--checkout", default="", help=argparse.SUPPRESS)  # the baseline's own run
    args = parser.parse_args()
    if args.details:
        args.details = str(Path(args.details).resolve())
    code = Path(args.checkout).resolve() if args.checkout else ROOT
    if args.checkout:  # before agentflow is imported: the checkout's code, not this one's
        sys.path.insert(0, str(code))
    if args.checkout:
        print(json.dumps(in_project(code, args)))
        return
    with tempfile.TemporaryDirectory(prefix="agentflow-answer-quality-cache-") as cache:
        os.environ["AGENTFLOW_EMBEDDING_CACHE"] = str(Path(cache) / "embeddings.db")
        current = in_project(code, args)
        base = None
        if args.baseline and Path(args.baseline, "agentflow").is_dir():
            base = baseline(Path(args.baseline).resolve(), args)
        elif args.baseline:
            log(f"no checkout at {args.baseline}; no baseline")
    report(current, base)
    print(json.dumps({**current, "baseline": base}))


if __name__ == "__main__":
    main()
