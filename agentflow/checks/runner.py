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
from collections.abc import Mapping, Sequence
from typing import Any

from agentflow.checks.abstention import judge_abstention
from agentflow.checks.judge import Judge
from agentflow.checks.registry import CheckCall, CheckOptions, check_kinds
from agentflow.checks.result import AbstentionPolicy, CheckKind, CheckResult, Severity
from agentflow.checks.text import cited_numbers, is_abstention
from agentflow.documents import Chunk


def default_threshold(kind: CheckKind, judge: Judge | None = None) -> float:
    """The threshold of ``kind`` when the config gives none (it may depend on the judge: the
    offline relevancy variant has another scale)."""
    return check_kinds.get(kind).threshold_for(judge)


async def run_call(call: CheckCall,
                   options: CheckOptions | Mapping[str, Any] | None = None) -> CheckResult:
    """Run a check call with its kind's options. Under ``abstention="support"`` an answer that
    abstains (and cites nothing) is judged instead: right when the documents do not support an
    answer to the question (for the kinds that judge abstentions)."""
    spec = check_kinds.get(call.kind)
    opts = spec.make_options(options)
    if (call.abstention == "support" and spec.judges_abstention and is_abstention(call.answer)
            and not cited_numbers(call.answer)):
        return await judge_abstention(call.name, call.kind, question=call.question,
                                      documents=call.documents, judge=call.judge,
                                      threshold=call.threshold, severity=call.severity)
    return await spec.run(call, opts)


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
    scorer: Any = None,
    options: CheckOptions | None = None,
    **option_values: Any,
) -> CheckResult:
    """Run the registered check ``kind`` on an answer; see each kind's module for what it measures.

    The kind's own fields come as ``options`` (its options model) or as keyword arguments
    (``relevancy_questions=5``, ``ablations=16``); a field the kind does not have is an error.
    ``samples`` (self_consistency) are the sampled answers; ``answer``, when also given, is
    checked against their majority. Under ``abstention="support"`` an answer that abstains is
    judged instead: right when ``documents`` do not support an answer to ``question``.
    ``scorer`` replaces the judge's alias where a kind scores prompts (``attribution``: any
    :class:`~agentflow.models.logprobs.PromptScorer`).
    """
    limit = threshold if threshold is not None else default_threshold(kind, judge)
    call = CheckCall(kind=kind, name=name or kind, judge=judge, threshold=limit, severity=severity,
                     abstention=abstention, answer=answer, question=question,
                     documents=documents, samples=samples, scorer=scorer)
    return await run_call(call, options if options is not None else option_values)


def record_check(tracer: Any, result: CheckResult, started: float | None = None) -> None:
    """Leave the check's span in the trace (``kind="check"``, named after the check)."""
    if tracer is None:
        return
    tracer.record("check", result.name, data=result.trace_data(),
                  started=started if started is not None else time.time(),
                  status="error" if result.error else "ok", error=result.error)
