"""Hallucination and quality checks: citations, self-consistency, faithfulness, relevancy.

Each check returns a :class:`CheckResult` (score, passed, threshold, reason, details, severity,
error). :func:`combine` turns several into a :class:`CheckVerdict` with ``passed`` and ``reason``
(a loop's ``until``); :func:`merge_checks` is the reducer of a ``checks`` state field. A
:class:`Judge` is a model alias used as a judge: an LLM with structured output, or the offline
support judge. The node types that run checks in a workflow live in :mod:`agentflow.nodes.checks`.
"""

from __future__ import annotations

from agentflow.checks.citations import check_citations, resolve_citations
from agentflow.checks.consistency import Consensus, consensus, sample_answers, self_consistency
from agentflow.checks.judge import ClaimVerdict, Judge
from agentflow.checks.ragas import faithfulness, response_relevancy
from agentflow.checks.result import (
    CheckKind,
    CheckResult,
    CheckVerdict,
    Severity,
    as_result,
    combine,
    merge_checks,
)
from agentflow.checks.runner import DEFAULT_THRESHOLDS, default_threshold, record_check, run_check
from agentflow.checks.text import (
    cited_numbers,
    is_abstention,
    normalise_answer,
    parse_citation,
    statements,
    strip_citations,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CheckKind",
    "CheckResult",
    "CheckVerdict",
    "ClaimVerdict",
    "Consensus",
    "Judge",
    "Severity",
    "as_result",
    "check_citations",
    "cited_numbers",
    "combine",
    "consensus",
    "default_threshold",
    "faithfulness",
    "is_abstention",
    "merge_checks",
    "normalise_answer",
    "parse_citation",
    "record_check",
    "resolve_citations",
    "response_relevancy",
    "run_check",
    "sample_answers",
    "self_consistency",
    "statements",
    "strip_citations",
]
