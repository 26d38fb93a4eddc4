"""The README's main job, timed as a user runs it: cold, warm with the same question, warm with new ones.

Each run is a fresh ``agentflow run graphs/agentic_rag.yaml -i question=...`` process in an empty
project folder (its own ``.agentflow/``: embedded Qdrant, embedding cache, traces), so the cold
run pays for ingestion and every model load. Beside it, the floor no workflow can go under: a
Python process that only imports LangGraph.

    python benchmarks/main_job.py [--quick]

Budgets (design.md): cold <= 60 s including ingestion, warm <= 3 s. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "graphs" / "agentic_rag.yaml"
FIRST = "What does the trace viewer show for a run?"
NEW = [
    "How does agentflow keep loops bounded?",
    "Can a map keep going when one of its items fails?",
    "How do I switch to the OpenAI profile?",
    "What is hybrid search and how is it fused?",
    "How do I resume a failed run?",
]


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**_env(), "AGENTFLOW_EMBEDDING_CACHE": str(cwd / ".agentflow" / "embeddings.db")})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "AGENTFLOW_EMBEDDING_CACHE"}


def run(question: str, cwd: Path) -> float:
    return timed([sys.executable, "-m", "agentflow.cli", "run", str(WORKFLOW), "-i",
                  f"question={question}", "-q"], cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 warm runs of each kind, not 5")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="agentflow-main-job-") as tmp:
        cwd = Path(tmp)
        floor = statistics.median(
            timed([sys.executable, "-c", "import langgraph.graph"], cwd) for _ in range(repeats))
        cold = run(FIRST, cwd)
        same = [run(FIRST, cwd) for _ in range(repeats)]
        new = [run(q, cwd) for q in NEW[:repeats]]
    result = {
        "cold_s": round(cold, 2),
        "warm_same_question_s": round(statistics.median(same), 2),
        "warm_new_question_s": round(statistics.median(new), 2),
        "warm_new_question_max_s": round(max(new), 2),
        "import_langgraph_floor_s": round(floor, 2),
        "warm_over_floor": round(statistics.median(new) / floor, 2),
    }
    print(f"cold run (ingest + models)       {cold:6.2f} s   budget 60 s")
    print(f"warm, same question (median)     {result['warm_same_question_s']:6.2f} s   budget 3 s")
    print(f"warm, new questions (median/max) {result['warm_new_question_s']:6.2f} / "
          f"{result['warm_new_question_max_s']:.2f} s   budget 3 s")
    print(f"python -c 'import langgraph.graph' {floor:5.2f} s   (the floor; warm/floor "
          f"{result['warm_over_floor']:.2f})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
