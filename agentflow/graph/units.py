"""The LangGraph node functions agentflow generates for each step.

Every function takes the LangGraph state (a dict of channels) and returns a partial update. They
find the run's :class:`~agentflow.graph.runtime.Runtime` through a context variable, emit the
events of their span, and keep agentflow's bookkeeping in the internal ``_af`` channel.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from agentflow.errors import NodeError, RouteError
from agentflow.graph.context import NodeTracer, RunContext
from agentflow.graph.runtime import Runtime, Scope, current, position
from agentflow.graph.state import INTERNAL, StateSchema
from agentflow.graph.steps import Loop, NodeStep, Route
from agentflow.tracing.events import Event

Unit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def node_unit(step: NodeStep, scopes: tuple[Scope, ...], schema: StateSchema) -> Unit:
    """Run a node: events around it, the state view it expects, its writes checked."""
    fn, cfg, name, type_name = step.type.fn, step.config, step.name, step.type.name
    writes = frozenset(step.writes)
    view = schema.view

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        span = f"{pos.parent}/node:{name}"
        rt.event("node_started", span, name, pos, step_type=type_name)
        ctx = RunContext(
            rt.run_id,
            rt.thread_id,
            name,
            rt.services,
            NodeTracer(rt.run_id, span, name, rt.emit),
            pos.pass_index,
            pos.item_index,
        )
        try:
            update = await fn(view(state), cfg, ctx)
            update = dict(update) if update else {}
            undeclared = update.keys() - writes
            if undeclared:
                raise NodeError(
                    f"node {name!r} (type {type_name!r}) wrote undeclared field(s) "
                    f"{sorted(undeclared)}; it declares writes={sorted(writes)}",
                    node=name,
                    run_id=rt.run_id,
                )
        except Exception as exc:
            rt.event(
                "node_finished", span, name, pos, step_type=type_name, status="error",
                error=_describe(exc),
            )
            if isinstance(exc, NodeError) and exc.node == name:
                raise
            raise NodeError(
                f"node {name!r} (type {type_name!r}) failed: {_describe(exc)}",
                node=name,
                run_id=rt.run_id,
            ) from exc
        rt.event("node_finished", span, name, pos, step_type=type_name, status="ok",
                 data={"update": update})
        return update

    return run


def passthrough_unit() -> Unit:
    async def run(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    return run


# route ------------------------------------------------------------------------------------------
def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value))


def route_unit(step: Route, name: str, scopes: tuple[Scope, ...], schema: StateSchema) -> Unit:
    """Compute the route's label, check it has a case, and keep it for the conditional edge."""
    on, cases, has_default = step.on, step.cases, step.default is not None

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        if callable(on):
            value = on(schema.view(state))
            if inspect.isawaitable(value):
                value = await value
        else:
            value = state.get(on)
        label = _label(value)
        chosen = label if label in cases else "__default__"
        if chosen == "__default__" and not has_default:
            raise RouteError(
                f"route {name!r} got label {label!r}, which has no case and the route has no "
                f"default; cases: {sorted(cases)}",
                node=name,
                run_id=rt.run_id,
            )
        rt.event("route", f"{pos.parent}/route:{name}", name, pos, step_type="route",
                 data={"label": label, "case": chosen})
        return {INTERNAL: {"routes": {name: chosen}}}

    return run


def route_edge(name: str) -> Callable[[dict[str, Any]], str]:
    def pick(state: dict[str, Any]) -> str:
        return state[INTERNAL]["routes"][name]

    return pick


# loop -------------------------------------------------------------------------------------------
def loop_start_unit(name: str, max_iterations: int, scopes: tuple[Scope, ...]) -> Unit:
    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        span = f"{pos.parent}/loop:{name}"
        rt.event("loop_started", span, name, pos, step_type="loop",
                 data={"max_iterations": max_iterations})
        _pass_started(rt, span, name, 1)
        return {INTERNAL: {"loops": {name: {"pass": 1}}}}

    return run


def _pass_started(rt: Runtime, loop_span: str, name: str, n: int) -> None:
    rt.emit(Event(kind="loop_pass_started", run_id=rt.run_id, span_id=f"{loop_span}/pass:{n}",
                  parent_id=loop_span, name=name, step_type="loop", pass_index=n))


async def _verdict(until: Any, state: dict[str, Any], schema: StateSchema) -> tuple[bool, str]:
    if callable(until):
        value = until(schema.view(state))
        if inspect.isawaitable(value):
            value = await value
    else:
        value = state.get(until)
    if hasattr(value, "passed"):
        return bool(value.passed), str(getattr(value, "reason", "") or "")
    return bool(value), ""


def loop_check_unit(step: Loop, name: str, scopes: tuple[Scope, ...], schema: StateSchema) -> Unit:
    """End a pass: evaluate ``until``, record the verdict, continue or stop."""
    until, limit = step.until, int(step.max_iterations or 0)

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        loop_span = f"{pos.parent}/loop:{name}"
        n = state[INTERNAL]["loops"][name]["pass"]
        pass_span = f"{loop_span}/pass:{n}"
        try:
            passed, reason = await _verdict(until, state, schema)
        except Exception as exc:
            rt.close_open(loop_span, _describe(exc))
            raise NodeError(
                f"loop {name!r}: its `until` failed on pass {n}: {_describe(exc)}",
                node=name, run_id=rt.run_id,
            ) from exc
        rt.emit(Event(kind="loop_pass_finished", run_id=rt.run_id, span_id=pass_span,
                      parent_id=loop_span, name=name, step_type="loop", pass_index=n,
                      status="ok", data={"passed": passed, "reason": reason}))
        stop = "passed" if passed else ("exhausted" if n >= limit else None)
        if stop is None:
            _pass_started(rt, loop_span, name, n + 1)
            return {INTERNAL: {"loops": {name: {"pass": n + 1}}}}
        rt.event("loop_finished", loop_span, name, pos, step_type="loop", status="ok",
                 data={"stop_reason": stop, "passes": n})
        return {INTERNAL: {"loops": {name: {"pass": n, "stop": stop}}}}

    return run


def loop_edge(name: str) -> Callable[[dict[str, Any]], str]:
    def pick(state: dict[str, Any]) -> str:
        return "done" if "stop" in state[INTERNAL]["loops"][name] else "continue"

    return pick


# parallel ---------------------------------------------------------------------------------------
def fork_unit(name: str, branches: int, scopes: tuple[Scope, ...]) -> Unit:
    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        for b in range(branches):
            rt.event("branch_started", f"{pos.parent}/par:{name}/branch:{b}", name, pos,
                     step_type="parallel", branch=b, data={"branches": branches})
        return {}

    return run


def branch_end(unit: Unit, name: str, branch: int, scopes: tuple[Scope, ...]) -> Unit:
    """Wrap a branch's last unit so the branch span closes when it finishes."""

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        update = await unit(state)
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        rt.event("branch_finished", f"{pos.parent}/par:{name}/branch:{branch}", name, pos,
                 step_type="parallel", status="ok", branch=branch)
        return update

    return run
