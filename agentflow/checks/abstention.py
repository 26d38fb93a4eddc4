"""Right and wrong abstentions: whether the documents support an answer that the answer declined.

An answer that abstains ("I don't know: the documents do not say") has no claims to check, so the
checks cannot score it; what can be judged is whether abstaining was right. Under the abstention
policy ``support`` a check asks the judge whether the retrieved documents support an answer to
the question:

- they do not: a **right** abstention. The check passes, marked ``details.abstained``; a verdict
  made of such results is an ``abstained`` outcome that ends a refine loop at once.
- they do: a **wrong** abstention. The check fails with the best supporting sentence in its
  reason, so the loop retries (wider retrieval, the reason as instructions).

The offline judge is not a language model: it asks the extractive answerer's own abstention rule
(a best sentence scoring at least its ``min_support``, holding the unit the question wants),
calibrated through the reference workflow by ``benchmarks/calibrate_checks.py --only
answerability``; the score it reports is the best sentence's. An LLM judge is asked the question
directly (:data:`~agentflow.checks.judge.ANSWERABLE_PROMPT`).
"""

from __future__ import annotations

from collections.abc import Sequence

from agentflow.checks.judge import ANSWERABLE_THRESHOLD, Judge
from agentflow.checks.result import CheckKind, CheckResult, Severity, error_result
from agentflow.documents import Chunk
from agentflow.errors import ModelError


async def judge_abstention(
    name: str,
    kind: CheckKind,
    *,
    question: str,
    documents: Sequence[Chunk],
    judge: Judge,
    threshold: float,
    severity: Severity = "fail",
) -> CheckResult:
    """The result of a check on an abstaining answer: passed when the documents lack the answer
    (a right abstention), failed when they hold one (a wrong abstention)."""
    if not question.strip():
        raise ValueError(f"check {name!r}: the abstention policy 'support' needs the question "
                         "(the check's `question` field) to judge the abstention")
    try:
        support = await judge.answerable(question, documents)
    except ModelError as exc:
        return error_result(name, kind, exc, threshold=threshold, severity=severity,
                            judge=judge.label)
    details = {"abstained": True, "abstention": "wrong" if support.answerable else "right",
               "judge": judge.label, "support": support.as_dict()}
    if support.answerable:
        reason = ("the answer abstains, but the documents support an answer "
                  f"({support.reason}); answer from them, citing them as [DOC n]")
    else:
        reason = f"the answer abstains and the documents do not support an answer ({support.reason})"
    return CheckResult(name=name, kind=kind, score=None, passed=not support.answerable,
                       threshold=threshold, reason=reason, details=details, severity=severity)


__all__ = ["ANSWERABLE_THRESHOLD", "judge_abstention"]
