"""Score one item: read what the metrics need from the final state, and compute each metric.

The workflow's own check results (the ``checks`` state field, found by kind) are used as they
are. Where the workflow did not run a check, the same check from :mod:`agentflow.checks` is run
here with the ``judge`` alias, so two workflows are compared on the same definitions; those judge
calls are evaluation overhead and are not counted in the item's tokens and cost.

A metric is ``None`` (not scored) when the item has no gold for it or the run produced nothing it
applies to; the report averages over scored items and says how many there were.

Abstention is scored both ways: ``abstention_accuracy`` (the run abstained, or declined, exactly
when the item is unanswerable: an abstention on an unanswerable item is right, on an answerable
one wrong) and ``abstention_judgement`` (where the workflow's checks judged an abstention right
or wrong, whether that judgement agrees with the gold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentflow.checks import CheckResult, Judge, as_result, is_abstention, run_check
from agentflow.documents import Chunk, chunks_of
from agentflow.eval import metrics as m
from agentflow.eval.formats import Item

CITATION_METRICS = ("citation_precision", "citation_recall")


@dataclass(frozen=True, slots=True)
class Outputs:
    """Where the workflow's state holds what the metrics read."""

    answer: str = "answer"
    chunks: str | None = "chunks"
    """The retrieved context in ``[DOC n]`` order; None when the workflow retrieves nothing."""
    checks: str = "checks"
    status: str = "answer_status"
    """Written by a ``finalize`` node: passed, caveat or abstained."""
    route: str | None = None
    """The output field of the ``classify`` node that routing accuracy scores."""
    out_of_scope: str | None = None
    """That node's out-of-scope label: a question routed there was not answered."""


@dataclass(slots=True)
class Observed:
    """What one run produced, as the metrics need it."""

    answer: str
    body: str
    """The answer without the caveat paragraph a ``finalize`` node appends."""
    route: str | None
    status: str | None
    chunks: list[Chunk]
    retrieved: list[str]
    """Document ids in rank order (a document ranks where its best chunk does)."""
    checks: dict[str, CheckResult] = field(default_factory=dict)
    """The workflow's check results by name."""

    def by_kind(self, kind: str) -> CheckResult | None:
        return next((r for r in self.checks.values() if r.kind == kind), None)


def document_id(chunk: Chunk) -> str:
    """A chunk's document id: the record id of a .jsonl corpus, else its source file."""
    record = chunk.metadata.get("record_id")
    return str(record) if record is not None else (chunk.source or chunk.id)


def observe(state: Mapping[str, Any], outputs: Outputs) -> Observed:
    """Read the answer, route, retrieved documents and check results from a final state."""
    answer = "" if state.get(outputs.answer) is None else str(state.get(outputs.answer))
    status = state.get(outputs.status)
    body = answer.split("\n\nCaveat:", 1)[0] if status == "caveat" else answer
    chunks = chunks_of(state.get(outputs.chunks), "eval") if outputs.chunks else []
    raw = state.get(outputs.checks)
    checks = {str(k): as_result(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    route = state.get(outputs.route) if outputs.route else None
    return Observed(answer=answer, body=body, route=None if route is None else str(route),
                    status=None if status is None else str(status), chunks=chunks,
                    retrieved=m.unique_in_order(document_id(c) for c in chunks), checks=checks)


def abstained(observed: Observed, outputs: Outputs) -> bool:
    """The run did not answer: it abstained, or routed the question out of scope."""
    if observed.status == "abstained" or is_abstention(observed.body):
        return True
    return outputs.out_of_scope is not None and observed.route == outputs.out_of_scope


def abstention_judgement(observed: Observed) -> str | None:
    """``right`` or ``wrong``: how the workflow's checks judged the answer's abstention (under
    the ``support`` policy, :mod:`agentflow.checks.abstention`); None when none judged one."""
    for result in observed.checks.values():
        judged = result.details.get("abstention")
        if judged in ("right", "wrong"):
            return str(judged)
    return None


async def score(
    item: Item,
    observed: Observed,
    outputs: Outputs,
    *,
    judge: Judge | None = None,
    recall_ks: Sequence[int] = (5, 10),
) -> tuple[dict[str, float | None], dict[str, CheckResult]]:
    """The item's metrics, and the check results they used (the workflow's or computed here)."""
    gold = item.gold
    out: dict[str, float | None] = {}
    declined = abstained(observed, outputs)
    if gold.answers and gold.answerable is not False:
        out["exact_match"] = m.exact_match(observed.body, gold.answers)
        out["token_f1"] = m.token_f1(observed.body, gold.answers)
        out["answer_contains"] = m.answer_contains(observed.body, gold.answers)
    if gold.doc_ids and outputs.chunks:
        ranked = _as_gold_ids(observed.retrieved, gold.doc_ids)
        for k in recall_ks:
            out[f"recall@{k}"] = m.recall_at(ranked, gold.doc_ids, k)
        out["ndcg@10"] = m.ndcg_at(ranked, gold.doc_ids, 10)
    if gold.answerable is not None:
        out["abstention_accuracy"] = float(declined != gold.answerable)
        judged = abstention_judgement(observed)
        if judged is not None:  # the workflow's checks judged its abstention right or wrong
            out["abstention_judgement"] = float((judged == "right") != gold.answerable)
    if gold.route is not None and outputs.route:
        out["routing_accuracy"] = float(observed.route == gold.route)
    checks = await _checks(item, observed, judge, declined)
    citations = checks.get("citations")
    if citations is not None and citations.score is not None:
        out["citation_precision"] = float(citations.details.get("precision", 0.0))
        out["citation_recall"] = float(citations.details.get("recall", 0.0))
    for kind in ("faithfulness", "relevancy"):
        result = checks.get(kind)
        if result is not None and result.score is not None:
            out[kind] = result.score
    faithful = checks.get("faithfulness")
    if gold.faithful is not None and faithful is not None and faithful.error is None:
        out["hallucination_detection"] = float(faithful.passed == gold.faithful)
    return out, checks


async def _checks(item: Item, observed: Observed, judge: Judge | None,
                  declined: bool) -> dict[str, CheckResult]:
    """The check results by kind: the workflow's, and the missing ones computed with ``judge``."""
    found: dict[str, CheckResult] = {}
    for kind in ("citations", "faithfulness", "relevancy"):
        result = observed.by_kind(kind)
        if result is not None:
            found[kind] = result
    if judge is None or declined or not observed.body.strip():
        return found
    documents = observed.chunks or [Chunk(id=f"context:{i}", text=t)
                                    for i, t in enumerate(item.context)]
    question = item.question
    if "citations" not in found and observed.chunks:
        found["citations"] = await run_check("citations", judge=judge, answer=observed.body,
                                             documents=observed.chunks)
    if "faithfulness" not in found and documents:
        found["faithfulness"] = await run_check("faithfulness", judge=judge, answer=observed.body,
                                                question=question, documents=documents)
    if "relevancy" not in found and question:
        found["relevancy"] = await run_check("relevancy", judge=judge, answer=observed.body,
                                             question=question)
    return found


def _as_gold_ids(retrieved: Sequence[str], gold: Sequence[str]) -> list[str]:
    """Retrieved ids with file paths that end in a gold id (``.../docs/loops.md`` for
    ``docs/loops.md``) replaced by that gold id, so users may name files by a path suffix."""
    out = []
    for doc in retrieved:
        match = next((g for g in gold if doc == g or doc.endswith("/" + g)), doc)
        out.append(match)
    return m.unique_in_order(out)
