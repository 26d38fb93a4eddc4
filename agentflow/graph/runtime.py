"""The per-run machinery: event dispatch, span positions, open spans, map concurrency.

One :class:`Runtime` exists per run. The LangGraph node functions that agentflow generates find it
through a context variable (asyncio tasks inherit it), so nothing run-specific lives in the graph and
one compiled graph serves any number of concurrent runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from agentflow.graph.context import Services
from agentflow.graph.result import LoopOutcome, MapItemError, RunResult, Verdict
from agentflow.graph.state import INTERNAL
from agentflow.tracing.events import Event
from agentflow.tracing.payloads import LoopPassPayload, LoopPayload, MapItemPayload

log = logging.getLogger("agentflow")

current: ContextVar[Runtime] = ContextVar("agentflow_runtime")


@dataclass(frozen=True, slots=True)
class Scope:
    """One construct enclosing a step: a loop, a parallel branch or a map."""

    kind: Literal["loop", "parallel", "map"]
    name: str
    branch: int | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a step runs: its parent span and the indices of its innermost constructs."""

    parent: str
    branch: int | None
    pass_index: int | None
    item_index: int | None


def position(scopes: tuple[Scope, ...], state: dict[str, Any], run_id: str) -> Position:
    """The parent span id of a step inside ``scopes``, given the state it runs on.

    Span ids are paths (``run/loop:refine/pass:2/node:answer``): stable across a resumed run and
    unique per loop pass and map item without any shared counter.
    """
    span, branch, pass_index, item_index = run_id, None, None, None
    if not scopes:
        return Position(span, None, None, None)
    af = state.get(INTERNAL) or {}
    loops, items = af.get("loops") or {}, af.get("items") or {}
    for s in scopes:
        if s.kind == "loop":
            pass_index = (loops.get(s.name) or {}).get("pass", 1)
            span = f"{span}/loop:{s.name}/pass:{pass_index}"
        elif s.kind == "parallel":
            branch = s.branch
            span = f"{span}/par:{s.name}/branch:{s.branch}"
        else:
            item_index = items.get(s.name)
            span = f"{span}/map:{s.name}/item:{item_index}"
    return Position(span, branch, pass_index, item_index)


_FINISH = {
    "node_started": "node_finished",
    "loop_started": "loop_finished",
    "loop_pass_started": "loop_pass_finished",
    "map_started": "map_finished",
    "map_item_started": "map_item_finished",
    "branch_started": "branch_finished",
}


class Runtime:
    """State of one run outside the graph: hooks, open spans, results of loops and maps."""

    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str,
        services: Services,
        queue: asyncio.Queue[Event | None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.services = services
        self.hooks = tuple(services.hooks)
        self.queue = queue
        self.open: dict[str, Event] = {}
        self.loops: dict[str, LoopOutcome] = {}
        self.map_errors: dict[str, list[MapItemError]] = {}
        self.nodes_run: list[str] = []
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._failed_hooks: set[int] = set()

    # events -------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        kind = event.kind
        if kind in _FINISH:
            self.open[event.span_id] = event
        elif kind.endswith("_finished"):
            self.open.pop(event.span_id, None)
            self._observe(event)
        for hook in self.hooks:
            try:
                hook.on_event(event=event)
            except Exception:  # a broken tracer must not break the user's run
                if id(hook) not in self._failed_hooks:
                    self._failed_hooks.add(id(hook))
                    log.exception("trace hook %r failed; its later failures are not logged", hook)
        if self.queue is not None:
            self.queue.put_nowait(event)

    def event(self, kind: Any, span_id: str, name: str, pos: Position, **kw: Any) -> None:
        """Emit an event of a span at ``pos``; keyword arguments override the position's indices."""
        fields = {
            "branch": pos.branch,
            "pass_index": pos.pass_index,
            "item_index": pos.item_index,
            **kw,
        }
        self.emit(Event(kind=kind, run_id=self.run_id, span_id=span_id, parent_id=pos.parent,
                        name=name, **fields))

    def _observe(self, event: Event) -> None:
        kind = event.kind
        if kind == "node_finished":
            self.nodes_run.append(event.name)
        elif kind == "loop_pass_finished":
            verdict = LoopPassPayload.from_data(event.data)
            outcome = self.loops.setdefault(event.name, LoopOutcome(event.name))
            if event.pass_index == 1:
                outcome.verdicts.clear()
            outcome.passes = event.pass_index or 0
            outcome.verdicts.append(
                Verdict(event.pass_index or 0, bool(verdict.passed), verdict.reason or "")
            )
        elif kind == "loop_finished":
            loop = LoopPayload.from_data(event.data)
            outcome = self.loops.setdefault(event.name, LoopOutcome(event.name))
            outcome.stop_reason = loop.stop_reason
            outcome.passes = loop.passes if loop.passes is not None else outcome.passes
        elif kind == "map_item_finished" and event.status == "error":
            item = MapItemPayload.from_data(event.data)
            if item.on_error == "collect":
                self.map_errors.setdefault(event.name, []).append(
                    MapItemError(
                        event.name,
                        event.item_index or 0,
                        item.item,
                        event.error or "",
                        item.error_type or "",
                    )
                )

    def close_open(self, prefix: str, error: str) -> None:
        """Close every open span under ``prefix`` as failed, innermost first.

        Loops end with stop reason ``error``: this is how a failure inside a loop pass shows in the
        events and the result, also when the failure is caught by a map under ``continue``.
        """
        for span_id in sorted((s for s in self.open if s.startswith(prefix)), key=len, reverse=True):
            started = self.open.pop(span_id)
            data: dict[str, Any] = {}
            if started.kind == "loop_started":
                outcome = self.loops.get(started.name)
                data = LoopPayload(stop_reason="error",
                                   passes=outcome.passes if outcome else 0).to_data()
            elif started.kind == "loop_pass_started":
                data = LoopPassPayload(passed=False, reason=f"error: {error}").to_data()
            finished = Event(
                kind=_FINISH[started.kind],  # type: ignore[arg-type]
                run_id=self.run_id,
                span_id=span_id,
                parent_id=started.parent_id,
                name=started.name,
                step_type=started.step_type,
                branch=started.branch,
                pass_index=started.pass_index,
                item_index=started.item_index,
                status="error",
                error=error,
                data=data,
            )
            self.open[span_id] = started  # emit() pops it again and observes the finish
            self.emit(finished)

    # map concurrency ----------------------------------------------------------------------
    def semaphore(self, span: str, limit: int | None) -> asyncio.Semaphore | None:
        if limit is None:
            return None
        sem = self._semaphores.get(span)
        if sem is None:
            sem = self._semaphores[span] = asyncio.Semaphore(limit)
        return sem

    def enter(self, span: str) -> int:
        n = self._in_flight.get(span, 0) + 1
        self._in_flight[span] = n
        if n > self._max_in_flight.get(span, 0):
            self._max_in_flight[span] = n
        return n

    def leave(self, span: str) -> None:
        self._in_flight[span] -= 1

    def finish_map(self, span: str) -> int:
        """Forget a map's concurrency bookkeeping; returns the most items seen in flight."""
        self._semaphores.pop(span, None)
        self._in_flight.pop(span, None)
        return self._max_in_flight.pop(span, 0)

    # result -------------------------------------------------------------------------------
    def result(self, state: dict[str, Any], *, started: float, error: str | None) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            thread_id=self.thread_id,
            state=state,
            status="error" if error else "ok",
            error=error,
            loops=dict(self.loops),
            map_errors=dict(self.map_errors),
            nodes_run=list(self.nodes_run),
            duration_s=time.perf_counter() - started,
        )

