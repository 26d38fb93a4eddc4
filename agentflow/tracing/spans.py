"""From events to spans: pair each ``*_started`` with its ``*_finished`` into one :class:`SpanRecord`.

The engine emits a start and a finish for every span with duration (run, node, loop, loop pass,
map, map item, parallel branch) and a single event for everything else (route decisions, and the
model calls, retrievals and checks that nodes record with their duration). Stores and exporters
work on spans, so the pairing lives here, once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentflow.tracing.events import Event

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

    def summary(self) -> dict[str, Any]:
        """The few fields the UI draws for every span without loading its payload."""
        if self.kind not in _SUMMARY_KEYS or not self.data:
            return {}
        return summarize(self.kind, self.data)


_SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "model_call": ("alias", "model", "cost", "latency", "latency_s", "retries", "cache_hit"),
    "retrieval": ("collection", "top_k"),
    "check": ("score", "verdict", "passed", "threshold"),
    "loop": ("max_iterations", "stop_reason", "passes"),
    "loop_pass": ("passed", "reason"),
    "map": ("over", "count", "max_concurrency", "max_in_flight", "ok", "failed", "on_error"),
    "map_item": ("in_flight",),
    "branch": ("branches",),
    "route": ("label", "case"),
}


def summarize(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Small, display-ready facts of a span (``tokens``, ``cost``, ``verdict``, ``count``...)."""
    keys = _SUMMARY_KEYS.get(kind)
    if keys is None:
        return {}
    get = data.get
    out = {}
    for k in keys:
        value = get(k)
        if value is not None:
            out[k] = value
    if kind == "model_call":
        tokens = total_tokens(get("tokens"))
        if tokens is not None:
            out["tokens"] = tokens
    elif kind == "retrieval":
        hits = get("hits")
        if isinstance(hits, list):
            out["hits"] = len(hits)
        queries = get("queries")
        if isinstance(queries, list):
            out["queries"] = len(queries)
    elif kind == "check" or kind == "loop_pass":
        for key in ("reason", "verdict"):
            value = out.get(key)
            if isinstance(value, str) and len(value) > 200:
                out[key] = value[:200] + "…"
    return out


TOKEN_KEYS = ("prompt", "completion", "total")
"""The documented shape of a model call's ``tokens``: ``{"prompt": 812, "completion": 64,
"total": 876}`` (what the model router records, with ``"estimated": true`` when the counts are
estimates). Readers also accept a plain number and the provider spellings ``prompt_tokens`` /
``completion_tokens`` / ``total_tokens`` and ``input_tokens`` / ``output_tokens``."""

_PROMPT_KEYS = ("prompt", "prompt_tokens", "input_tokens", "input")
_COMPLETION_KEYS = ("completion", "completion_tokens", "output_tokens", "output")
_TOTAL_KEYS = ("total", "total_tokens")


def _count(value: Any) -> int | None:
    if value is None or value is True or value is False:
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _first(tokens: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = tokens.get(key)
        if value is not None:
            return _count(value)
    return None


def token_counts(tokens: Any) -> tuple[int | None, int | None, int | None]:
    """``(prompt, completion, total)`` of a model call's ``tokens`` (see :data:`TOKEN_KEYS`).

    Any of them may be None when the call did not report it; the total is the reported total, or
    prompt + completion when only those were reported.
    """
    if isinstance(tokens, Mapping):
        prompt = _first(tokens, _PROMPT_KEYS)
        completion = _first(tokens, _COMPLETION_KEYS)
        total = _first(tokens, _TOTAL_KEYS)
        if total is None and (prompt is not None or completion is not None):
            total = (prompt or 0) + (completion or 0)
        return prompt, completion, total
    return None, None, _count(tokens)


def total_tokens(tokens: Any) -> int | None:
    """Total tokens of a model call's ``tokens``: a number or a mapping (:data:`TOKEN_KEYS`)."""
    if type(tokens) is dict:  # the documented shape, fast: its total
        total = tokens.get("total")
        if type(total) is int:
            return total
    return token_counts(tokens)[2]


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
