"""The units of ``map``: dispatch (fan out with ``Send``), one run per item, join in item order.

Each item's run writes its update into the internal channel under its index, not into the user's
fields, so that the join can merge results in item order whatever order the items finished in, and a
failed item under ``continue``/``collect`` leaves the others' results intact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from langgraph.types import Send

from agentflow.errors import NodeError
from agentflow.graph.runtime import Position, Scope, current, position
from agentflow.graph.state import INTERNAL, StateSchema
from agentflow.graph.steps import Map
from agentflow.graph.units import Unit


def dispatch_unit(step: Map, name: str, scopes: tuple[Scope, ...]) -> Unit:
    """Announce the map: how many items and at most how many at once."""
    over, limit = step.over, step.max_concurrency

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        items = state.get(over)
        if items is not None and not isinstance(items, (list, tuple)):
            raise NodeError(
                f"map {name!r} runs over field {over!r}, which must be a list; "
                f"it holds a {type(items).__name__}",
                node=name,
                run_id=rt.run_id,
            )
        rt.event("map_started", f"{pos.parent}/map:{name}", name, pos, step_type="map",
                 data={"over": over, "count": len(items or ()), "max_concurrency": limit,
                       "on_error": step.on_error})
        return {}

    return run


def fan_out(step: Map, name: str, target: str, join: str, exclude: Sequence[str]) -> Callable[
    [dict[str, Any]], list[Send] | str
]:
    """The conditional edge after dispatch: one ``Send`` per item (or straight to the join)."""
    over, item_field, skip = step.over, step.item, frozenset((*exclude, INTERNAL))

    def edge(state: dict[str, Any]) -> list[Send] | str:
        items = state.get(over) or ()
        if not items:
            return join
        base = {k: v for k, v in state.items() if k not in skip}
        af = state.get(INTERNAL) or {}
        loops, outer_items = af.get("loops") or {}, af.get("items") or {}
        return [
            Send(target, {**base, item_field: value,
                          INTERNAL: {"loops": loops, "items": {**outer_items, name: i}}})
            for i, value in enumerate(items)
        ]

    return edge


def item_unit(step: Map, name: str, scopes: tuple[Scope, ...], inner: Unit) -> Unit:
    """Run one item under the map's concurrency limit and error policy.

    ``scopes`` are those around the map. ``inner`` runs the item's step and returns its update.
    """
    limit, on_error, item_field = step.max_concurrency, step.on_error, step.item

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        outer = position(scopes, state, rt.run_id)
        map_span = f"{outer.parent}/map:{name}"
        index = state[INTERNAL]["items"][name]
        span = f"{map_span}/item:{index}"
        pos = Position(map_span, outer.branch, outer.pass_index, index)
        sem = rt.semaphore(map_span, limit)
        if sem is not None:
            await sem.acquire()
        try:
            in_flight = rt.enter(map_span)
            rt.event("map_item_started", span, name, pos, step_type="map",
                     data={"in_flight": in_flight, "max_concurrency": limit})
            try:
                update = await inner(state)
            except asyncio.CancelledError:
                rt.close_open(span, "cancelled: another item failed (on_error='fail_fast')")
                raise
            except Exception as exc:
                message = str(exc.__cause__ or exc) if isinstance(exc, NodeError) else str(exc)
                cause = exc.__cause__ if isinstance(exc, NodeError) and exc.__cause__ else exc
                rt.close_open(f"{span}/", message)
                rt.event("map_item_finished", span, name, pos, step_type="map", status="error",
                         error=message, data={"on_error": on_error, "item": state.get(item_field),
                                              "error_type": type(cause).__name__})
                if on_error == "fail_fast":
                    raise
                return {INTERNAL: {"map_errors": {name: {str(index): {
                    "item": state.get(item_field), "error": message,
                    "error_type": type(cause).__name__}}}}}
            finally:
                rt.leave(map_span)
        finally:
            if sem is not None:
                sem.release()
        rt.event("map_item_finished", span, name, pos, step_type="map", status="ok")
        return {INTERNAL: {"map": {name: {str(index): update}}}}

    return run


def subgraph_inner(graph: Any, writes: Sequence[str]) -> Unit:
    """Run a composite map body as a LangGraph subgraph; return what it wrote."""
    fields = tuple(writes)

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        final = await graph.ainvoke(state, {"recursion_limit": 10_000})
        return {f: final[f] for f in fields if f in final}

    return run


def join_unit(
    step: Map,
    name: str,
    scopes: tuple[Scope, ...],
    schema: StateSchema,
    writes: Sequence[str],
) -> Unit:
    """Merge the items' results in item order, record failures, clear the bucket."""
    into, errors_field, limit = step.into, step.errors, step.max_concurrency
    reducers = {f: schema.fields[f].reducer for f in writes}

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        rt = current.get()
        pos = position(scopes, state, rt.run_id)
        af = state.get(INTERNAL) or {}
        results = af.get("map", {}).get(name) or {}
        failures = af.get("map_errors", {}).get(name) or {}
        ordered = [results[k] for k in sorted(results, key=int)]
        update: dict[str, Any] = {}
        if into is not None:
            update[into] = [_single(u, writes) for u in ordered]
        else:
            for f in writes:
                values = [u[f] for u in ordered if f in u]
                if values:
                    merged, reducer = values[0], reducers[f]
                    for v in values[1:]:
                        merged = reducer(merged, v) if reducer else v
                    update[f] = merged
        if errors_field is not None:
            update[errors_field] = [
                {"map": name, "index": int(k), **failures[k]} for k in sorted(failures, key=int)
            ]
        update[INTERNAL] = {"map": {name: None}, "map_errors": {name: None}}
        span = f"{pos.parent}/map:{name}"
        rt.event("map_finished", span, name, pos, step_type="map",
                 status="error" if failures else "ok",
                 data={"ok": len(results), "failed": len(failures), "max_concurrency": limit,
                       "max_in_flight": rt.finish_map(span)})
        return update

    return run


def _single(update: dict[str, Any], writes: Sequence[str]) -> Any:
    if len(writes) == 1:
        return update.get(writes[0])
    return update
