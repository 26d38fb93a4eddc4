"""From events to spans: pair each ``*_started`` with its ``*_finished`` into one :class:`SpanRecord`.

The engine emits a start and a finish for every span with duration (run, node, loop, loop pass,
map, map item, parallel branch) and a single event for everything else (route decisions, and the
model calls, retrievals and checks that nodes record with their duration). Stores and exporters
work on spans, so the pairing lives here, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agentflow.tracing.events import Event
from agentflow.tracing.payloads import (
    TOKEN_KEYS,
    Payload,
    payload_type,
    summarize,
    token_counts,
    total_tokens,
)

__all__ = ["FINISHED_SUFFIX", "STARTED_SUFFIX", "TOKEN_KEYS", "SpanAssembler", "SpanKind",
           "SpanRecord", "SpanStatus", "span_kind", "summarize", "token_counts", "total_tokens"]

SpanKind = Literal[
    "run", "node", "loop", "loop_pass", "map", "map_item", "branch",
    "route", "model_call", "retrieval", "check", "custom",
]
SpanStatus = Literal["running", "ok", "error", "skipped", "incomplete"]

STARTED_SUFFIX, FINISHED_SUFFIX = "_started", "_finished"


_SPAN_KINDS: dict[str, str] = {}


def span_kind(event_kind: str) -> str:
    """``node_started`` -> ``node``; single events keep their kind."""
    kind = _SPAN_KINDS.get(event_kind)
    if kind is None:
        kind = _strip_suffix(event_kind)
        if len(_SPAN_KINDS) < 256:  # event kinds are a small set; custom ones are not cached
            _SPAN_KINDS[event_kind] = kind
    return kind


def _strip_suffix(event_kind: str) -> str:
    for suffix in (STARTED_SUFFIX, FINISHED_SUFFIX):
        if event_kind.endswith(suffix):
            return event_kind[: -len(suffix)]
    return event_kind


@dataclass(slots=True)
class SpanRecord:
    """One span of a run, open (``end is None``) or finished.

    ``data`` merges the start's payload with the finish's (a loop's ``max_iterations`` and its
    ``stop_reason``); it may be the event's own dict, so treat it as read-only. Times are Unix
    seconds.
    """

    run_id: str
    span_id: str
    parent_id: str | None
    kind: str
    name: str
    step_type: str = ""
    start: float = 0.0
    end: float | None = None
    status: str = "running"
    error: str | None = None
    branch: int | None = None
    pass_index: int | None = None
    item_index: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)

    @classmethod
    def opened(cls, event: Event) -> SpanRecord:
        """The open span a ``*_started`` event announces."""
        return cls(event.run_id, event.span_id, event.parent_id, span_kind(event.kind), event.name,
                   event.step_type, event.time, None, "running", None, event.branch,
                   event.pass_index, event.item_index, event.data)

    @classmethod
    def single(cls, event: Event) -> SpanRecord:
        """The finished span of a single event (a model call, a retrieval, a check, a route)."""
        duration = event.data.get("duration_s")
        end = event.time + float(duration) if isinstance(duration, (int, float)) else event.time
        return cls(event.run_id, event.span_id, event.parent_id, event.kind, event.name,
                   event.step_type, event.time, end, event.status or "ok", event.error,
                   event.branch, event.pass_index, event.item_index, event.data)

    def finish(self, event: Event) -> None:
        """Close the span with its ``*_finished`` event."""
        self.end = event.time
        self.status = event.status or "ok"
        self.error = event.error
        if event.data:  # a new dict: the events' own payloads are never changed
            self.data = {**self.data, **event.data}

    @property
    def payload(self) -> Payload:
        """``data`` as the typed payload of the span's kind."""
        return payload_type(self.kind).from_data(self.data)

    def summary(self) -> dict[str, Any]:
        """The few fields the UI draws for every span without loading its payload."""
        return summarize(self.kind, self.data)


class SpanAssembler:
    """Pairs events into spans, one run or many interleaved.

    :meth:`add` returns what an event changed: the span it opened, the span it finished (with
    whether it was seen open before), or the finished span of a single event.
    """

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], SpanRecord] = {}

    def add(self, event: Event) -> tuple[SpanRecord, bool]:
        """Feed one event; returns ``(span, was_open)``.

        ``was_open`` is true when a finish closed a span this assembler opened earlier. A finish
        whose start was never seen (a store attached mid-run) yields a span of its own.
        """
        key = (event.run_id, event.span_id)
        kind = event.kind
        if kind.endswith(STARTED_SUFFIX):
            span = SpanRecord.opened(event)
            self.open[key] = span
            return span, False
        if kind.endswith(FINISHED_SUFFIX):
            span_or_none = self.open.pop(key, None)
            if span_or_none is None:
                span = SpanRecord.opened(event)
                span.finish(event)
                return span, False
            span_or_none.finish(event)
            return span_or_none, True
        span = SpanRecord.single(event)
        parent = self.open.get((event.run_id, event.parent_id or ""))
        if parent is not None:  # child spans of a node take its branch, pass and item indices
            if span.branch is None:
                span.branch = parent.branch
            if span.pass_index is None:
                span.pass_index = parent.pass_index
            if span.item_index is None:
                span.item_index = parent.item_index
        return span, False

    def open_spans(self, run_id: str | None = None) -> Iterator[SpanRecord]:
        """The spans started and not finished (of one run, or all)."""
        return (s for (r, _), s in list(self.open.items()) if run_id is None or r == run_id)

    def forget(self, run_id: str) -> None:
        """Drop a run's open spans (after it finished, or was marked incomplete)."""
        for key in [k for k in self.open if k[0] == run_id]:
            del self.open[key]
