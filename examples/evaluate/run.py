"""Evaluate bikes.yaml on questions.jsonl twice (top 4 chunks, then top 1) and compare the runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentflow.eval import RunOptions, compare, evaluate, load_dataset

HERE = Path(__file__).parent
OUT = Path(".agentflow") / "eval" / "runs"
SHOWN = ("token_f1", "answer_contains", "recall@1", "citation_recall", "faithfulness",
         "abstention_accuracy", "routing_accuracy", "latency_p50_s")


async def main() -> None:
    data = load_dataset(HERE / "questions.jsonl", "jsonl")
    options = RunOptions(progress=False, recall_ks=(1, 4))
    runs = {}
    for name, overrides in (("bikes-top4", []), ("bikes-top1", ["nodes.search.top_k=1"])):
        outcome = await evaluate(str(HERE / "bikes.yaml"), data, OUT / name, overrides=overrides,
                                 options=options, fresh=True)
        metrics = outcome.summary["metrics"]
        shown = ", ".join(f"{k} {metrics[k]:.2f}" for k in SHOWN if metrics.get(k) is not None)
        print(f"{name}: {outcome.summary['items']['ok']} items ok; {shown}")
        print(f"  report: {outcome.folder / 'report.html'}")
        runs[name] = compare.load(outcome.folder)
    a, b = runs["bikes-top4"], runs["bikes-top1"]
    print()
    print(compare.table(compare.rows(a.summary, b.summary), "A:top4", "B:top1"))
    page = b.folder / "compare.html"
    page.write_text(compare.render(a, b), encoding="utf-8")
    print(f"\ncompare page: {page}")


if __name__ == "__main__":
    asyncio.run(main())
