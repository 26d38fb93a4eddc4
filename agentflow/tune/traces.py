"""Training examples from recorded runs: the answers that passed their checks and that people liked.

A run qualifies when it finished (``ok``), its verdict passed (every required check: citations, faithfulness,
relevancy, self-consistency; an abstention the checks accepted counts), and, where it got feedback, more thumbs
up than down (``require_feedback`` asks for at least one thumbs up and no majority down). Its example is the
exact prompt the answering node sent on the run's last pass (system, few-shot pair, history, ``[DOC n]``
documents, question: the model call's recorded messages) and the answer the run returned, citations included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow.tune.base import TuneError
from agentflow.tune.examples import TrainExample

PASSING_STATUSES: tuple[str, ...] = ("passed", "abstained")
"""``answer_status`` values of a run whose checks passed (``caveat`` means they did not)."""


@dataclass(frozen=True)
class TraceFilter:
    """Which recorded runs become examples."""

    workflow: str | None = None
    tag: str | None = None
    """``key=value`` (``origin=serve``, ``variant=b``), or a key the run must have."""
    node: str = "answer"
    """The node whose model call's prompt is the example's prompt."""
    answer_field: str = "answer"
    require_feedback: bool = False
    """Only runs with a thumbs up (and no more downs than ups); otherwise feedback only excludes."""
    limit: int = 10_000


@dataclass
class TraceSelection:
    """The examples and why the other runs were left out."""

    examples: list[TrainExample]
    considered: int
    left_out: dict[str, int]


def run_passed(output: Any) -> bool:
    """Whether a run's output says its checks passed (the verdict, or the answer status)."""
    if not isinstance(output, dict):
        return False
    verdict = output.get("verdict")
    if isinstance(verdict, dict) and "passed" in verdict:
        return bool(verdict["passed"])
    status = output.get("answer_status")
    if isinstance(status, str) and status:
        return status in PASSING_STATUSES
    checks = output.get("checks")
    if isinstance(checks, dict) and checks:
        return all(isinstance(c, dict) and c.get("passed") for c in checks.values())
    return False


def feedback_ok(up: int, down: int, *, require: bool) -> bool:
    """Thumbs up wins where feedback exists; with ``require`` a run without a thumbs up is left out."""
    if up == 0 and down == 0:
        return not require
    return up > down


def trace_examples(path: str | Path, filt: TraceFilter) -> TraceSelection:
    """Examples from the trace store at ``path`` (``.agentflow/traces.db``)."""
    from agentflow.tracing.query import TraceReader

    store = Path(path)
    if not store.is_file():
        raise TuneError(f"--from-traces: no trace store at {str(store)!r}; runs are recorded in "
                        ".agentflow/traces.db of the folder they ran in")
    left: dict[str, int] = {}

    def leave(reason: str) -> None:
        left[reason] = left.get(reason, 0) + 1

    examples: list[TrainExample] = []
    with TraceReader(store) as reader:
        runs = reader.runs(workflow=filt.workflow, status="ok", tag=filt.tag, limit=filt.limit)
        for summary in runs:
            if not feedback_ok(summary.feedback_up, summary.feedback_down, require=filt.require_feedback):
                leave("feedback")
                continue
            detail = reader.run(summary.run_id, with_data=True)
            if not run_passed(detail.output):
                leave("checks did not pass")
                continue
            answer = detail.output.get(filt.answer_field) if isinstance(detail.output, dict) else None
            if not isinstance(answer, str) or not answer.strip():
                leave(f"no {filt.answer_field!r} in the output")
                continue
            messages = last_prompt(detail.spans, filt.node)
            if messages is None:
                leave(f"no model call of node {filt.node!r}")
                continue
            examples.append(TrainExample(tuple(messages), answer.strip(), id=summary.run_id,
                                         meta={"workflow": summary.workflow, "tags": summary.tags}))
    return TraceSelection(examples, len(runs), left)


def last_prompt(spans: list[dict[str, Any]], node: str) -> list[dict[str, str]] | None:
    """The messages of the last model call made inside node ``node`` (its last loop pass)."""
    node_ids = {s["span_id"] for s in spans if s.get("kind") == "node" and s.get("name") == node}
    calls = [s for s in spans if s.get("kind") == "model_call" and s.get("parent_id") in node_ids]
    for call in reversed(calls):
        data = call.get("data") or {}
        messages = data.get("messages")
        if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            return [{"role": str(m.get("role")), "content": str(m.get("content", ""))} for m in messages
                    if m.get("role") in ("system", "user", "assistant")]
    return None
