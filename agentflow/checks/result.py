"""What every check returns, how several combine into one verdict, and the state reducer.

A :class:`CheckResult` has a score, whether it passed, the threshold it was held to, a reason a
person (or the next loop pass) can act on, details, a severity and, when the judge failed, an error.
A failed judge never turns into a score: ``score`` is ``None`` and ``error`` says what happened.

:func:`combine` turns results into a :class:`CheckVerdict`, which has ``passed`` and ``reason``, so
a loop can stop on it (``until="verdict"``). Only checks of severity ``fail`` block the verdict;
``warn`` checks that do not pass are listed as warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentflow.errors import CheckFailed

Severity = Literal["warn", "fail"]
CheckKind = str
"""The name of a registered check kind (:mod:`agentflow.checks.registry`): citations,
faithfulness, relevancy, self_consistency, attribution, or one a user registered."""
Outcome = Literal["pass", "fail", "warn", "error"]


class CheckResult(BaseModel):
    """The result of one check (JSON-ready: it is stored in checkpoints and printed as JSON)."""

    model_config = ConfigDict(frozen=True)

    name: str
    """The check's name: its key in the ``checks`` state field and its span in the trace."""
    kind: CheckKind
    score: float | None
    """In [0, 1]; ``None`` when the judge failed or there was nothing to score (an abstention)."""
    passed: bool
    threshold: float
    reason: str
    """Why it passed or not, specific enough to fix the answer (quoted sentences, bad ids)."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific facts: per-claim verdicts, citation recall and precision, clusters, ..."""
    severity: Severity = "fail"
    error: str | None = None
    """Set when the judge could not give a verdict (after its retry); then ``passed`` is false."""

    @property
    def outcome(self) -> Outcome:
        """``pass``, ``fail``, ``warn`` (did not pass, severity warn) or ``error``."""
        if self.error is not None:
            return "error"
        if self.passed:
            return "pass"
        return "warn" if self.severity == "warn" else "fail"

    @property
    def blocking(self) -> bool:
        """Whether this result makes a combined verdict fail."""
        return not self.passed and self.severity == "fail"

    def trace_data(self) -> dict[str, Any]:
        """The payload of the check's trace span (what the trace UI shows)."""
        return {
            "kind": self.kind, "score": self.score, "passed": self.passed,
            "verdict": self.outcome, "threshold": self.threshold, "reason": self.reason,
            "severity": self.severity, "details": self.details, "error": self.error,
        }

    def raise_for_failure(self) -> None:
        """Raise :class:`CheckFailed` when this check blocks (did not pass, severity ``fail``)."""
        if self.blocking:
            raise CheckFailed(f"check {self.name!r} ({self.kind}) did not pass: {self.reason}")


class CheckVerdict(BaseModel):
    """Several checks combined: ``passed`` when no ``fail`` check failed; ``reason`` lists the
    failing ones with their reasons. Usable as a loop's ``until`` field."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reason: str
    failing: list[str] = Field(default_factory=list)
    """Names of the checks (severity fail) that did not pass, or that were required and missing."""
    warnings: list[str] = Field(default_factory=list)
    """Names of the checks of severity warn that did not pass."""
    reasons: dict[str, str] = Field(default_factory=dict)
    """Check name -> reason, for every failing check and warning."""
    scores: dict[str, float | None] = Field(default_factory=dict)
    abstained: bool = False
    """The verdict passed on an answer that abstains, judged right (the documents lack the
    answer): an outcome, reported as ``answer_status: abstained``, not a failure to retry."""

    def feedback(self) -> str:
        """Instructions for the next attempt: what failed and why ("" when it passed)."""
        if self.passed:
            return ""
        lines = [f"- {name}: {self.reasons.get(name, 'did not pass')}" for name in self.failing]
        return (
            "Your previous answer did not pass these checks. Write a new answer that fixes them, "
            "using only the documents and citing them as [DOC n]:\n" + "\n".join(lines)
        )


def as_result(value: CheckResult | Mapping[str, Any]) -> CheckResult:
    """A result from a :class:`CheckResult` or its JSON form (as restored from a checkpoint)."""
    if isinstance(value, CheckResult):
        return value
    return CheckResult.model_validate(dict(value))


def combine(
    results: Mapping[str, CheckResult | Mapping[str, Any]] | Iterable[CheckResult],
    *,
    require: Sequence[str] | None = None,
) -> CheckVerdict:
    """Combine check results into one verdict.

    ``results`` is the ``checks`` state field (name -> result) or a list of results. Names in
    ``require`` that have no result fail the verdict ("did not run"); with ``require``, other
    results are ignored.
    """
    if isinstance(results, Mapping):
        by_name = {str(k): as_result(v) for k, v in results.items()}
    else:
        by_name = {r.name: r for r in results}
    names = list(require) if require is not None else list(by_name)
    failing: list[str] = []
    warnings: list[str] = []
    reasons: dict[str, str] = {}
    scores: dict[str, float | None] = {}
    for name in names:
        result = by_name.get(name)
        if result is None:
            failing.append(name)
            reasons[name] = "the check did not run"
            continue
        scores[name] = result.score
        if result.blocking:
            failing.append(name)
            reasons[name] = result.reason
        elif not result.passed:
            warnings.append(name)
            reasons[name] = result.reason
    if not names:
        return CheckVerdict(passed=False, reason="no check results to combine")
    if failing:
        reason = "; ".join(f"{n}: {reasons[n]}" for n in failing)
    else:
        reason = f"{len(names)} check(s) passed" + (
            f" ({len(warnings)} warning(s): {', '.join(warnings)})" if warnings else ""
        )
    right_abstention = not failing and any(
        r.passed and r.details.get("abstention") == "right"
        for r in (by_name.get(n) for n in names) if r is not None)
    if right_abstention:
        reason = "the answer abstains, rightly: the documents do not support an answer; " + reason
    return CheckVerdict(passed=not failing, reason=reason, failing=failing, warnings=warnings,
                        reasons=reasons, scores=scores, abstained=right_abstention)


def merge_checks(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> dict[str, CheckResult]:
    """State reducer of the ``checks`` field: parallel check nodes' results merge by name (a
    later result of the same name, e.g. from the next loop pass, replaces the earlier one).

    Python: ``checks: Annotated[dict[str, CheckResult], merge_checks] = {}``. YAML:
    ``state: {checks: {type: object, reducer: merge}}`` does the same merge.
    """
    merged = {str(k): as_result(v) for k, v in (old or {}).items()}
    merged.update({str(k): as_result(v) for k, v in (new or {}).items()})
    return merged


AbstentionPolicy = Literal["pass", "fail", "support"]
"""What a check gives an answer that abstains: pass, fail (a loop retries), or support: the judge
decides whether the documents support an answer (:mod:`agentflow.checks.abstention`)."""


def abstained_result(
    name: str, kind: CheckKind, *, threshold: float, severity: Severity,
    policy: AbstentionPolicy, judge: str = "",
) -> CheckResult:
    """The result of a check on an answer that abstains: nothing to score (``score`` is
    ``None``); passed or not by the policy (``fail`` makes a loop retry, e.g. wider retrieval)."""
    return CheckResult(
        name=name, kind=kind, score=None, passed=policy == "pass", threshold=threshold,
        reason="the answer abstains, so there is nothing to check"
        + ("" if policy == "pass" else " (abstentions fail this check)"),
        details={"abstained": True, **({"judge": judge} if judge else {})}, severity=severity,
    )


def error_result(
    name: str, kind: CheckKind, error: Exception, *, threshold: float, severity: Severity,
    judge: str = "",
) -> CheckResult:
    """The result of a check whose judge failed: an error, never a score."""
    return CheckResult(
        name=name, kind=kind, score=None, passed=False, threshold=threshold,
        reason=f"the judge failed: {error}", details={"judge": judge} if judge else {},
        severity=severity, error=f"{type(error).__name__}: {error}",
    )
