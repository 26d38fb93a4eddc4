"""Trace events and the hook interface every tracer implements.

A run is a tree of spans: the run, then loops, loop passes, parallel branches, map items, nodes and,
inside nodes, model calls, retrievals and checks. Each span is announced by a ``*_started`` event and
closed by a ``*_finished`` event carrying the same ``span_id``; ``parent_id`` links it to its parent.
Point events (``custom``, ``route``) have a span id of their own and no finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agentflow.tracing.payloads import Payload, payload_type

EventKind = Literal[
    "run_started",
    "run_finished",
    "node_started",
    "node_finished",
    "loop_started",
    "loop_finished",
    "loop_pass_started",
    "loop_pass_finished",
    "map_started",
    "map_finished",
    "map_item_started",
    "map_item_finished",
    "branch_started",
    "branch_finished",
    "route",
    "model_call",
    "retrieval",
    "check",
    "custom",
]

Status = Literal["ok", "error", "skipped"]


@dataclass(slots=True)
class Event:
    """One thing that happened in a run.

    ``name`` is the step's name (node, loop, map, parallel, route) or the custom event's name.
    ``branch`` is the parallel branch index, ``pass_index`` the loop pass (1-based) and
    ``item_index`` the map item (0-based) of the innermost enclosing construct, where there is one.
    ``data`` carries the kind-specific payload as a plain mapping (what hooks receive and stores
    keep): a node's ``update`` (its state change), a loop's ``stop_reason``, a map's
    ``max_concurrency`` and ``in_flight``, and so on. Its typed form is :attr:`payload`, one type
    per kind (see :mod:`agentflow.tracing.payloads`).
    """

    kind: EventKind
    run_id: str
    span_id: str
    parent_id: str | None
    name: str
    step_type: str = ""
    time: float = field(default_factory=time.time)
    branch: int | None = None
    pass_index: int | None = None
    item_index: int | None = None
    status: Status | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> Payload:
        """``data`` parsed as the typed payload of this event's kind."""
        return payload_type(self.kind).from_data(self.data)


@runtime_checkable
class TraceHook(Protocol):
    """Receives every event of a run, in order, on the event loop that runs the flow.

    Hooks are called with keyword arguments only, so new arguments can be added later without
    breaking existing hooks: accept ``**kwargs`` and ignore what you do not know. A hook must be
    cheap (it runs on the hot path); a store that writes to disk buffers and writes in batches.
    """

    def on_event(self, *, event: Event, **kwargs: Any) -> None: ...


class EventCollector:
    """A hook that keeps every event in memory: handy in tests and notebooks."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        self.events.append(event)

    def of_kind(self, *kinds: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def names(self, kind: EventKind) -> list[str]:
        return [e.name for e in self.events if e.kind == kind]
