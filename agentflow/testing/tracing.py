"""A recording trace hook: every event of the runs it saw, as events and as spans, with the
questions tests ask of a trace.

.. code-block:: python

    from agentflow.testing import RecordingHook

    hook = RecordingHook()
    result = await flow.arun({"question": "..."}, hooks=[hook])
    hook.assert_order("classify", "retrieve", "answer")           # nodes, in the order they ran
    call = hook.span("model_call", "large")                        # exactly one call of the alias
    assert call.data["tokens"]["total"] < 2_000
    assert hook.span("node", "answer").status == "ok"
    assert [s.name for s in hook.children(hook.span("node", "answer"))] == ["large"]

Spans are paired from the events as the trace store pairs them
(:class:`~agentflow.tracing.spans.SpanAssembler`): a span that started and never finished stays
``running``; a finish whose start never arrived is a span of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentflow.tracing.events import Event, EventCollector, EventKind
from agentflow.tracing.spans import SpanAssembler, SpanKind, SpanRecord


def spans_of(events: Iterable[Event]) -> list[SpanRecord]:
    """The spans of ``events`` in the order they started (or, for point events, happened)."""
    assembler = SpanAssembler()
    spans = []
    for event in events:
        span, was_open = assembler.add(event)
        if not was_open:  # a finish of an open span completes a span already listed
            spans.append(span)
    return spans


class RecordingHook(EventCollector):
    """A trace hook that keeps every event, and answers questions about spans for assertions.

    ``events`` holds the events in the order they arrived (as :class:`EventCollector` does). The
    queries take optional filters; ``run_id`` narrows them to one run when the hook saw several.
    Failed lookups raise ``AssertionError`` naming what the trace holds instead.
    """

    def clear(self) -> None:
        """Forget every event (to reuse the hook for the next run)."""
        self.events.clear()

    @property
    def run_ids(self) -> list[str]:
        """The runs seen, in the order they started."""
        return [e.run_id for e in self.events if e.kind == "run_started"]

    def events_of(
        self, kind: EventKind | None = None, name: str | None = None, *, run_id: str | None = None
    ) -> list[Event]:
        """The events of a kind and/or name (all when both are None), in arrival order."""
        return [
            e for e in self.events
            if (kind is None or e.kind == kind) and (name is None or e.name == name)
            and (run_id is None or e.run_id == run_id)
        ]

    def spans(
        self,
        kind: SpanKind | None = None,
        name: str | None = None,
        *,
        run_id: str | None = None,
        status: str | None = None,
    ) -> list[SpanRecord]:
        """The spans of a kind, name and/or status, in the order they started."""
        events = self.events if run_id is None else [e for e in self.events if e.run_id == run_id]
        return [
            s for s in spans_of(events)
            if (kind is None or s.kind == kind) and (name is None or s.name == name)
            and (status is None or s.status == status)
        ]

    def span(self, kind: SpanKind, name: str, *, run_id: str | None = None) -> SpanRecord:
        """The one span of ``kind`` named ``name``; an ``AssertionError`` when there are none or
        several (it lists the names the trace has for that kind)."""
        found = self.spans(kind, name, run_id=run_id)
        if len(found) != 1:
            names = [s.name for s in self.spans(kind, run_id=run_id)]
            raise AssertionError(
                f"expected one {kind} span named {name!r}, found {len(found)}; "
                f"{kind} spans recorded: {names or 'none'}"
            )
        return found[0]

    def names(self, kind: EventKind | SpanKind) -> list[str]:
        """Names of the events of ``kind`` (an event kind), or of the spans of ``kind`` (a span
        kind such as ``node``), in order."""
        if kind in _SPAN_ONLY:
            return [s.name for s in self.spans(kind)]  # type: ignore[arg-type]
        return super().names(kind)  # type: ignore[arg-type]

    def children(self, parent: SpanRecord) -> list[SpanRecord]:
        """The spans directly inside ``parent`` (a node's model calls, a loop's passes)."""
        return [
            s for s in self.spans(run_id=parent.run_id) if s.parent_id == parent.span_id
        ]

    def model_calls(self, alias: str | None = None) -> list[SpanRecord]:
        """The model calls (of one alias), in order; each span's ``data`` holds the messages,
        the response, tokens, cost and retries the router recorded."""
        return self.spans("model_call", alias)

    def assert_order(self, *names: str, kind: SpanKind = "node") -> None:
        """Assert that spans named ``names`` started in this order (other spans may come between;
        for a name that ran several times, its first start counts)."""
        seen = [s.name for s in self.spans(kind)]
        missing = [n for n in names if n not in seen]
        if missing:
            raise AssertionError(f"no {kind} span named {missing}; recorded in order: {seen}")
        firsts = [seen.index(n) for n in names]
        if firsts != sorted(firsts):
            raise AssertionError(
                f"{kind} spans did not start in the order {list(names)}; recorded in order: {seen}"
            )


_SPAN_ONLY = frozenset({"run", "node", "loop", "loop_pass", "map", "map_item", "branch"})
"""Span kinds that are not also event kinds (their events end in ``_started``/``_finished``)."""
