"""The four shapes of a workflow, as plain values: ``sequence``, ``route``, ``loop``, ``parallel``
and ``map``. They nest freely; :class:`~agentflow.graph.flow.Flow` compiles them to LangGraph.

A step is either a node (a :class:`NodeStep`, made by calling a node type), a reference to a named
node of the flow (a string), or one of the composites below. Composites get a name of their own
(given, or derived from their position) that shows in traces and events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentflow.graph.registry import NodeConfig, NodeType

OnError = Literal["fail_fast", "continue", "collect"]
ON_ERROR: tuple[OnError, ...] = ("fail_fast", "continue", "collect")


class Step:
    """Base of every step of a flow."""

    name: str | None

    def children(self) -> Iterator[Step]:
        return iter(())


@dataclass(eq=False)
class NodeStep(Step):
    """A node: a node type with a name and a validated config."""

    type: NodeType
    name: str
    config: NodeConfig

    @property
    def reads(self) -> tuple[str, ...]:
        return self.type.reads(self.config)

    @property
    def writes(self) -> tuple[str, ...]:
        return self.type.writes(self.config)

    def __repr__(self) -> str:
        return f"{self.type.name}({self.name!r})"


@dataclass(eq=False)
class Ref(Step):
    """A reference, by name, to a node declared in the flow's ``nodes``."""

    name: str


@dataclass(eq=False)
class Sequence(Step):
    steps: tuple[Step, ...]
    name: str | None = None

    def children(self) -> Iterator[Step]:
        return iter(self.steps)


@dataclass(eq=False)
class Route(Step):
    """Run one case, chosen by a label: a state field's value, or a function of the state.

    A sync function runs on the event loop, so it should be quick; slow work belongs in a node.
    """

    on: str | Callable[[Any], Any]
    cases: dict[str, Step | None]
    default: Step | None = None
    name: str | None = None

    def children(self) -> Iterator[Step]:
        yield from (c for c in self.cases.values() if c is not None)
        if self.default is not None:
            yield self.default


@dataclass(eq=False)
class Loop(Step):
    """Run ``body`` until ``until`` passes, at most ``max_iterations`` times.

    ``until`` is a state field (truthy, or an object with ``passed``) or a function of the state
    returning a bool or an object with ``passed`` (and optionally ``reason``); it may be async.
    A sync function runs on the event loop, so it should be quick; slow work belongs in a node.
    """

    body: Step
    until: str | Callable[[Any], Any]
    max_iterations: int | None
    name: str | None = None

    def children(self) -> Iterator[Step]:
        yield self.body


@dataclass(eq=False)
class Parallel(Step):
    """Run branches concurrently; the next step starts when all have finished."""

    branches: tuple[Step, ...]
    name: str | None = None

    def children(self) -> Iterator[Step]:
        return iter(self.branches)


@dataclass(eq=False)
class Map(Step):
    """Run ``node`` once per element of the list field ``over``, at most K at a time.

    Each run sees the element as the state field ``item``. Results are merged in item order:
    into the list field ``into`` when given (one entry per successful item: the value of the
    node's single written field, or its whole update), else into the written fields through their
    reducers. ``errors`` names a field that receives the failed items under ``collect``.
    """

    over: str
    node: Step
    item: str = "item"
    max_concurrency: int | None = None
    on_error: OnError = "fail_fast"
    into: str | None = None
    errors: str | None = None
    name: str | None = None

    def children(self) -> Iterator[Step]:
        yield self.node


StepLike = Step | str | NodeType


def describe(step: Step, nodes: Mapping[str, NodeStep] | None = None) -> dict[str, Any]:
    """The declared structure of a step as plain data (for traces, the UI and diagrams).

    Call it on a compiled flow's steps, so that every composite has its name.
    """
    nodes = nodes or {}
    if isinstance(step, Ref):
        step = nodes.get(step.name, step)
        if isinstance(step, Ref):
            return {"kind": "node", "name": step.name, "type": "?"}
    if isinstance(step, NodeStep):
        return {"kind": "node", "name": step.name, "type": step.type.name,
                "reads": list(step.reads), "writes": list(step.writes),
                "config": step.config.model_dump(mode="json", exclude_defaults=True)}
    if isinstance(step, Sequence):
        return {"kind": "sequence", "name": step.name, "steps": [describe(s, nodes) for s in step.steps]}
    if isinstance(step, Route):
        cases = {k: describe(v, nodes) for k, v in step.cases.items() if v is not None}
        return {"kind": "route", "name": step.name,
                "on": step.on if isinstance(step.on, str) else _callable_name(step.on),
                "cases": cases,
                "default": describe(step.default, nodes) if step.default is not None else None}
    if isinstance(step, Loop):
        return {"kind": "loop", "name": step.name, "max_iterations": step.max_iterations,
                "until": step.until if isinstance(step.until, str) else _callable_name(step.until),
                "body": describe(step.body, nodes)}
    if isinstance(step, Parallel):
        return {"kind": "parallel", "name": step.name,
                "branches": [describe(b, nodes) for b in step.branches]}
    if isinstance(step, Map):
        return {"kind": "map", "name": step.name, "over": step.over, "item": step.item,
                "max_concurrency": step.max_concurrency, "on_error": step.on_error,
                "into": step.into, "node": describe(step.node, nodes)}
    raise TypeError(f"not a step: {step!r}")


def _callable_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def as_step(value: StepLike | None) -> Step | None:
    """Coerce a string to a :class:`Ref` and a bare node type to a node with its defaults."""
    if value is None or isinstance(value, Step):
        return value
    if isinstance(value, str):
        return Ref(value)
    if isinstance(value, NodeType):
        return value()
    raise TypeError(f"expected a step, a node name or a node type, got {value!r}")


def _body(steps: tuple[StepLike, ...]) -> Step:
    coerced = [as_step(s) for s in steps]
    body = [s for s in coerced if s is not None]
    return body[0] if len(body) == 1 else Sequence(tuple(body))


def sequence(*steps: StepLike, name: str | None = None) -> Sequence:
    """Run steps one after another."""
    return Sequence(tuple(s for s in (as_step(x) for x in steps) if s is not None), name=name)


def route(
    *,
    on: str | Callable[[Any], Any],
    cases: Mapping[str, StepLike | None],
    default: StepLike | None = None,
    name: str | None = None,
) -> Route:
    """Run the case whose label equals the value of field ``on`` (or ``on(state)``)."""
    return Route(
        on=on,
        cases={str(k): as_step(v) for k, v in cases.items()},
        default=as_step(default),
        name=name,
    )


def loop(
    *body: StepLike,
    until: str | Callable[[Any], Any],
    max_iterations: int | None = None,
    name: str | None = None,
) -> Loop:
    """Repeat ``body`` until ``until`` passes; ``max_iterations`` is required (loops are bounded)."""
    return Loop(body=_body(body), until=until, max_iterations=max_iterations, name=name)


def parallel(*branches: StepLike, name: str | None = None) -> Parallel:
    """Run branches concurrently (each branch may itself be any step)."""
    return Parallel(tuple(b for b in (as_step(x) for x in branches) if b is not None), name=name)


def map(  # noqa: A001 - the shape is called map, as in the docs and YAML
    *,
    over: str,
    node: StepLike,
    item: str = "item",
    max_concurrency: int | None = None,
    on_error: OnError = "fail_fast",
    into: str | None = None,
    errors: str | None = None,
    name: str | None = None,
) -> Map:
    """Run ``node`` for each element of the list field ``over`` (see :class:`Map`)."""
    step = as_step(node)
    assert step is not None
    return Map(
        over=over,
        node=step,
        item=item,
        max_concurrency=max_concurrency,
        on_error=on_error,
        into=into,
        errors=errors,
        name=name,
    )


@dataclass
class Names:
    """Gives composites without a name a stable one from their kind and order: ``loop_1``."""

    counts: dict[str, int] = field(default_factory=dict)

    def name_of(self, step: Step) -> str:
        if step.name:
            return step.name
        kind = type(step).__name__.lower()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        step.name = f"{kind}_{self.counts[kind]}"
        return step.name
