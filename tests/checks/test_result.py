"""Check results, their combination into a verdict, and the checks reducer."""

from __future__ import annotations

import json

import pytest

from agentflow.checks import CheckResult, CheckVerdict, combine, merge_checks
from agentflow.errors import CheckFailed


def result(name: str, passed: bool, severity: str = "fail", score: float | None = 0.5,
           error: str | None = None) -> CheckResult:
    return CheckResult(name=name, kind="faithfulness", score=score, passed=passed, threshold=0.8,
                       reason=f"{name} reason", severity=severity, error=error)  # type: ignore[arg-type]


def test_the_verdict_fails_on_fail_checks_and_lists_their_reasons() -> None:
    verdict = combine([result("citations", False), result("faithfulness", True),
                       result("relevancy", False, severity="warn")])
    assert not verdict.passed
    assert verdict.failing == ["citations"] and verdict.warnings == ["relevancy"]
    assert verdict.reason == "citations: citations reason"
    assert "- citations: citations reason" in verdict.feedback()


def test_warn_checks_alone_do_not_fail_the_verdict() -> None:
    verdict = combine({"a": result("a", True), "b": result("b", False, severity="warn")})
    assert verdict.passed and verdict.reason == "2 check(s) passed (1 warning(s): b)"
    assert verdict.feedback() == ""


def test_a_required_check_that_did_not_run_fails_the_verdict() -> None:
    verdict = combine({"a": result("a", True)}, require=["a", "self_consistency"])
    assert not verdict.passed and verdict.reasons["self_consistency"] == "the check did not run"
    assert not combine({}).passed


def test_results_are_json_ready_and_come_back_from_json() -> None:
    checks = {"a": result("a", False, error="ModelError: boom", score=None)}
    dumped = json.loads(json.dumps({k: v.model_dump(mode="json") for k, v in checks.items()}))
    verdict = combine(dumped)
    assert not verdict.passed and verdict.scores == {"a": None}
    assert checks["a"].outcome == "error" and checks["a"].trace_data()["verdict"] == "error"
    assert isinstance(CheckVerdict.model_validate(verdict.model_dump(mode="json")), CheckVerdict)


def test_merge_checks_keeps_parallel_results_and_replaces_same_names() -> None:
    merged = merge_checks({"a": result("a", False)}, {"b": result("b", True)})
    merged = merge_checks(merged, {"a": result("a", True).model_dump()})
    assert sorted(merged) == ["a", "b"] and merged["a"].passed
    assert merge_checks(None, None) == {}


def test_a_failed_fail_check_can_raise() -> None:
    with pytest.raises(CheckFailed, match="check 'a' \\(faithfulness\\) did not pass: a reason"):
        result("a", False).raise_for_failure()
    result("b", False, severity="warn").raise_for_failure()  # a warning never raises
