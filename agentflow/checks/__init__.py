"""Hallucination and quality checks: citations, self-consistency, faithfulness, relevancy,
attribution, and any kind a user registers.

Each check returns a :class:`CheckResult` (score, passed, threshold, reason, details, severity,
error). :func:`combine` turns several into a :class:`CheckVerdict` with ``passed`` and ``reason``
(a loop's ``until``); :func:`merge_checks` is the reducer of a ``checks`` state field. A
:class:`Judge` is a model alias used as a judge: an LLM with structured output, or the offline
support judge. Check kinds are registered (:func:`register_check`, :mod:`.registry`): a name, an
options model, a default threshold, the inputs read and an async function; :func:`run_check` and
the ``check`` node look them up. The node types that run checks in a workflow live in
:mod:`agentflow.nodes.checks`.
"""

from __future__ import annotations

from agentflow.checks.attribution import AttributionOptions
from agentflow.checks.citations import (
    CitationsOptions,
    check_citations,
    resolve_citations,
)
from agentflow.checks.consistency import (
    Consensus,
    ConsistencyOptions,
    consensus,
    sample_answers,
    self_consistency,
)
from agentflow.checks.judge import ClaimVerdict, Judge
from agentflow.checks.ragas import RelevancyOptions, faithfulness, response_relevancy
from agentflow.checks.registry import (
    CheckCall,
    CheckOptions,
    CheckRegistry,
    RegisteredCheck,
    check_kinds,
    register_check,
)
from agentflow.checks.result import (
    CheckKind,
    CheckResult,
    CheckVerdict,
    Severity,
    as_result,
    combine,
    merge_checks,
)
from agentflow.checks.runner import (
    default_threshold,
    record_check,
    run_call,
    run_check,
)
from agentflow.checks.text import (
    cited_numbers,
    is_abstention,
    normalise_answer,
    parse_citation,
    statements,
    strip_citations,
)

__all__ = [
    "AttributionOptions",
    "CheckCall",
    "CheckKind",
    "CheckOptions",
    "CheckRegistry",
    "CheckResult",
    "CheckVerdict",
    "CitationsOptions",
    "ClaimVerdict",
    "Consensus",
    "ConsistencyOptions",
    "Judge",
    "RegisteredCheck",
    "RelevancyOptions",
    "Severity",
    "as_result",
    "check_citations",
    "check_kinds",
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
    "register_check",
    "resolve_citations",
    "response_relevancy",
    "run_call",
    "run_check",
    "sample_answers",
    "self_consistency",
    "statements",
    "strip_citations",
]
