"""One entry point for every check, shared by the ``check`` node and evaluation, and the trace
record a check leaves.

.. code-block:: python

    from agentflow.checks import Judge, run_check

    judge = Judge(router, "judge")
    result = await run_check("faithfulness", judge=judge, question=q, answer=a, documents=chunks)
    if not result.passed:
        print(result.reason)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agentflow.checks import attribution, citations, consistency, ragas
from agentflow.checks.abstention import judge_abstention
from agentflow.checks.judge import Judge
from agentflow.checks.result import AbstentionPolicy, CheckKind, CheckResult, Severity
from agentflow.checks.text import cited_numbers, is_abstention
from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models.logprobs import RouterScorer

DEFAULT_THRESHOLDS: dict[str, float] = {
    "citations": citations.DEFAULT_THRESHOLD,
    "faithfulness": ragas.FAITHFULNESS_THRESHOLD,
    "relevancy": ragas.RELEVANCY_THRESHOLD,
    "self_consistency": consistency.DEFAULT_THRESHOLD,
    "attribution": attribution.DEFAULT_THRESHOLD,
}
"""Thresholds when none is given (relevancy with the offline judge: ``OFFLINE_THRESHOLD``)."""


def default_threshold(kind: CheckKind, judge: Judge | None = None) -> float:
    """The threshold of ``kind`` when the config gives none (it depends on the judge for
    relevancy, whose offline variant has another scale)."""
    if kind == "relevancy" and judge is not None and judge.offline:
        return ragas.RELEVANCY_OFFLINE_THRESHOLD
    return DEFAULT_THRESHOLDS[kind]


async def run_check(
    kind: CheckKind,
    *,
    judge: Judge,
    answer: str = "",
    question: str = "",
    documents: Sequence[Chunk] = (),
    samples: Sequence[str] | None = None,
    threshold: float | None = None,
    severity: Severity = "fail",
    name: str | None = None,
    abstention: AbstentionPolicy = "fail",
    relevancy_questions: int = 3,
    similarity: float = 0.85,
    ablations: int = attribution.DEFAULT_ABLATIONS,
    source_unit: attribution.SourceUnit = "chunk",
    scorer: Any = None,
) -> CheckResult:
    """Run the check ``kind`` on an answer; see each check's module for what it measures.

    ``samples`` (self_consistency) are the sampled answers; ``answer``, when also given, is
    checked against their majority. Under ``abstention="support"`` an answer that abstains is
    judged instead: right when ``documents`` do not support an answer to ``question``.
    ``attribution`` scores ``ablations`` ablated contexts with the prompt log-probabilities of the judge's
    alias (or of ``scorer``, any :class:`~agentflow.models.logprobs.PromptScorer`).
    """
    limit = threshold if threshold is not None else default_threshold(kind, judge)
    label = name or kind
    if (abstention == "support" and kind != "self_consistency" and is_abstention(answer)
            and not cited_numbers(answer)):
        return await judge_abstention(label, kind, question=question, documents=documents,
                                      judge=judge, threshold=limit, severity=severity)
    if kind == "citations":
        return await citations.check_citations(answer, documents, judge, threshold=limit,
                                               severity=severity, name=label,
                                               abstention=abstention)
    if kind == "faithfulness":
        return await ragas.faithfulness(answer, documents, judge, question=question,
                                         threshold=limit, severity=severity, name=label,
                                         abstention=abstention)
    if kind == "relevancy":
        return await ragas.response_relevancy(question, answer, judge, k=relevancy_questions,
                                              threshold=limit, severity=severity, name=label,
                                              abstention=abstention)
    if kind == "self_consistency":
        if not samples:
            raise ValueError("the self_consistency check needs sampled answers (samples=...)")
        return await consistency.self_consistency(samples, judge, answer=answer or None,
                                                  threshold=limit, severity=severity, name=label,
                                                  similarity=similarity)
    if kind == "attribution":
        problem = None
        if scorer is None:
            try:
                scorer = RouterScorer(judge.models, judge.alias)
            except ModelError as exc:
                problem = str(exc)
        return await attribution.check_attribution(
            answer, documents, scorer, question=question, threshold=limit, severity=severity, name=label,
            abstention=abstention, ablations=ablations, unit=source_unit, scorer_error=problem)
    raise ValueError(f"unknown check kind {kind!r}; valid: {', '.join(DEFAULT_THRESHOLDS)}")


def record_check(tracer: Any, result: CheckResult, started: float | None = None) -> None:
    """Leave the check's span in the trace (``kind="check"``, named after the check)."""
    if tracer is None:
        return
    tracer.record("check", result.name, data=result.trace_data(),
                  started=started if started is not None else time.time(),
                  status="error" if result.error else "ok", error=result.error)
