"""Which judge catches hallucinations: the local model (SmolLM2-135M-Instruct on agentflow's model server) or
the offline support judge, side by side on HaluEval QA held-out rows.

    python benchmarks/judge_local.py [--rows 40] [--data ../shared/data]

Each row's right and hallucinated answer goes through the ``faithfulness`` check against the row's
knowledge as the one document, once with the ``local`` profile's judge and once with the ``offline``
profile's (the same rows as benchmarks/checks.py's held-out split, 250 on). Reported per judge:
pairwise accuracy (the right answer scores higher; a tie counts half), the ROC AUC of the score for
right over hallucinated, and seconds per answer. The local judge needs the model server: one already
serving SmolLM2 on 127.0.0.1:8000 is reused, otherwise agentflow starts one. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.checks import Judge  # noqa: E402
from agentflow.checks.ragas import faithfulness  # noqa: E402
from agentflow.documents import Chunk  # noqa: E402
from agentflow.models import build_router  # noqa: E402

HELD_OUT = 250


def auc(right: list[float], wrong: list[float]) -> float:
    """Probability that a right answer outscores a hallucinated one (ties half)."""
    return float(np.mean([(a > b) + 0.5 * (a == b) for a in right for b in wrong]))


async def judge_rows(profile: str, rows: list[dict], root: Path) -> dict:
    router = build_router(None, profile=profile, root=root)
    judge = Judge(router, "judge")
    scores: list[float] = []
    started = time.perf_counter()
    try:
        for i, row in enumerate(rows):
            for key in ("right_answer", "hallucinated_answer"):
                result = await faithfulness(row[key], [Chunk(id="k", text=row["knowledge"])], judge,
                                            question=row["question"])
                scores.append(0.0 if result.score is None else float(result.score))
            print(f"{profile}: {i + 1}/{len(rows)}", file=sys.stderr, flush=True)
    finally:
        router.close()
    seconds = (time.perf_counter() - started) / len(scores)
    right, wrong = scores[0::2], scores[1::2]
    return {"pairwise": round(float(np.mean([(a > b) + 0.5 * (a == b)
                                             for a, b in zip(right, wrong, strict=True)])), 3),
            "auc": round(auc(right, wrong), 3), "judge": judge.label,
            "seconds_per_answer": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    lines = (args.data / "halueval_qa" / "qa_one-turn_data.json").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[HELD_OUT:HELD_OUT + args.rows]]
    out = {"benchmark": "judge_local", "rows": len(rows), "first_row": HELD_OUT}
    with tempfile.TemporaryDirectory(prefix="agentflow-judge-") as tmp:
        for profile in ("offline", "local"):
            out[profile] = asyncio.run(judge_rows(profile, rows, Path(tmp)))
            print(f"{profile}: {json.dumps(out[profile])}", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
