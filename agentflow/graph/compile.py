"""Compile a tree of steps into a LangGraph ``StateGraph``, checking it first.

Each step becomes a fragment of the graph with one entry and a list of exits. An exit is a unit
(a LangGraph node) and, for conditional exits, the label of the edge that leaves it. Composites add
small units of their own: a route's router, a loop's start and check, a parallel's fork and join, a
map's dispatch and join. Everything that can be checked without running is checked here, and a
problem raises a :class:`GraphBuildError` that names the step and what would be valid.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph

from agentflow.errors import GraphBuildError, did_you_mean, known
from agentflow.graph import mapping, units
from agentflow.graph.runtime import Scope
from agentflow.graph.state import StateSchema
from agentflow.graph.steps import ON_ERROR, Loop, Map, Names, NodeStep, Parallel, Ref, Route, Sequence, Step

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
Exit = tuple[str, str | None]


@dataclass
class Fragment:
    entry: str
    exits: list[Exit]


@dataclass
class UnitInfo:
    """What the checks know about a unit: what it reads and writes, and where it sits."""

    name: str
    kind: str
    step_type: str
    scopes: tuple[Scope, ...]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@dataclass
class Analysis:
    """The whole flow as the checks see it, map bodies included (shared by nested builders)."""

    schema: StateSchema
    nodes: dict[str, NodeStep]
    units: dict[str, UnitInfo] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    taken: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    names: Names = field(default_factory=Names)

    def claim(self, name: str, what: str) -> None:
        if not NAME.match(name.split(".")[0]):
            raise GraphBuildError(
                f"invalid step name {name!r} ({what}): use letters, digits, '_' and '-', "
                "starting with a letter or '_'",
                step=name,
            )
        if name in self.taken:
            raise GraphBuildError(
                f"duplicate step name {name!r}: {self.taken[name]} and {what} both use it; "
                "names must be unique within a flow",
                step=name,
            )
        self.taken[name] = what


class Builder:
    """Builds one LangGraph ``StateGraph`` (the flow, or a composite map body)."""

    def __init__(self, analysis: Analysis, scopes: tuple[Scope, ...] = ()) -> None:
        self.a = analysis
        self.schema = analysis.schema
        self.scopes = scopes
        self.fns: dict[str, units.Unit] = {}
        self.plain: list[tuple[str, str]] = []
        self.ports: dict[str, dict[str, str]] = {}
        self.port_fns: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.sends: list[tuple[str, Callable[[dict[str, Any]], Any], list[str]]] = []
        self.waiting: list[tuple[list[str], str]] = []
        self.entry = ""
        self.exits: list[Exit] = []

    # plumbing -----------------------------------------------------------------------------
    def unit(self, info: UnitInfo, fn: units.Unit) -> str:
        self.a.units[info.name] = info
        self.fns[info.name] = fn
        return info.name

    def connect(self, exits: Iterable[Exit], target: str) -> None:
        for source, label in exits:
            self.a.edges[source].add(target)
            if label is None:
                self.plain.append((source, target))
            else:
                self.ports.setdefault(source, {})[label] = target

    def build(self, step: Step) -> StateGraph:
        frag = self.compile(step, self.scopes)
        self.entry, self.exits = frag.entry, frag.exits
        graph = StateGraph(self.schema.channels_schema())
        for name, fn in self.fns.items():
            graph.add_node(name, fn)
        graph.add_edge(START, frag.entry)
        self.connect(frag.exits, END)
        for source, target in self.plain:
            graph.add_edge(source, target)
        for source, path_map in self.ports.items():
            graph.add_conditional_edges(source, self.port_fns[source], path_map)
        for source, edge, targets in self.sends:
            graph.add_conditional_edges(source, edge, targets)
        for sources, target in self.waiting:
            graph.add_edge(sources, target)
        return graph

    # steps --------------------------------------------------------------------------------
    def compile(self, step: Step, scopes: tuple[Scope, ...]) -> Fragment:
        if isinstance(step, Ref):
            return self.node(self.resolve(step.name), scopes)
        if isinstance(step, NodeStep):
            return self.node(step, scopes)
        if isinstance(step, Sequence):
            return self.sequence(step, scopes)
        if isinstance(step, Route):
            return self.route(step, scopes)
        if isinstance(step, Loop):
            return self.loop(step, scopes)
        if isinstance(step, Parallel):
            return self.parallel(step, scopes)
        if isinstance(step, Map):
            return self.map(step, scopes)
        raise GraphBuildError(f"not a step: {step!r}")

    def resolve(self, name: str) -> NodeStep:
        try:
            return self.a.nodes[name]
        except KeyError:
            raise GraphBuildError(
                f"no node named {name!r}.{did_you_mean(name, self.a.nodes)} "
                f"Declared nodes: {known(self.a.nodes)}",
                step=name,
            ) from None

    def node(self, step: NodeStep, scopes: tuple[Scope, ...]) -> Fragment:
        self.a.claim(step.name, f"a node of type {step.type.name!r}")
        self.a.used.add(step.name)
        fn = units.node_unit(step, scopes, self.schema)
        info = UnitInfo(step.name, "node", step.type.name, scopes, step.reads, step.writes)
        self.unit(info, fn)
        return Fragment(step.name, [(step.name, None)])

    def sequence(self, step: Sequence, scopes: tuple[Scope, ...]) -> Fragment:
        if not step.steps:
            raise GraphBuildError("an empty sequence has nothing to run; give it steps")
        first = self.compile(step.steps[0], scopes)
        exits = first.exits
        for sub in step.steps[1:]:
            frag = self.compile(sub, scopes)
            self.connect(exits, frag.entry)
            exits = frag.exits
        return Fragment(first.entry, exits)

    def route(self, step: Route, scopes: tuple[Scope, ...]) -> Fragment:
        name = self.a.names.name_of(step)
        self.a.claim(name, "a route")
        reads = (step.on,) if isinstance(step.on, str) else ()
        self.unit(UnitInfo(name, "route", "route", scopes, reads),
                  units.route_unit(step, name, scopes, self.schema))
        if not step.cases:
            raise GraphBuildError(f"route {name!r} has no cases; give it cases={{label: step}}",
                                  step=name)
        targets = dict(step.cases)
        if step.default is not None:
            targets["__default__"] = step.default
        exits: list[Exit] = []
        for label, case in targets.items():
            where = "its default" if label == "__default__" else f"case {label!r}"
            if case is None or (isinstance(case, Sequence) and not case.steps):
                raise GraphBuildError(
                    f"route {name!r}: {where} leads nowhere; give it a step (a node, a node "
                    "name or a composite)",
                    step=name,
                )
            if isinstance(case, Ref) and case.name not in self.a.nodes:
                raise GraphBuildError(
                    f"route {name!r}: {where} leads to {case.name!r}, which is no node of this "
                    f"flow.{did_you_mean(case.name, self.a.nodes)} Declared nodes: "
                    f"{known(self.a.nodes)}",
                    step=name,
                )
            frag = self.compile(case, scopes)
            self.connect([(name, label)], frag.entry)
            exits.extend(frag.exits)
        self.port_fns[name] = units.route_edge(name)
        return Fragment(name, exits)

    def loop(self, step: Loop, scopes: tuple[Scope, ...]) -> Fragment:
        name = self.a.names.name_of(step)
        limit = step.max_iterations
        if limit is None:
            raise GraphBuildError(
                f"loop {name!r} has no max_iterations; loops are bounded: set "
                "max_iterations=N (an integer from 1 to 1000)",
                step=name,
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise GraphBuildError(
                f"loop {name!r}: max_iterations must be an integer from 1 to 1000, got {limit!r}",
                step=name,
            )
        self.a.claim(name, "a loop")
        check = f"{name}.check"
        self.a.claim(check, f"the check of loop {name!r}")
        self.unit(UnitInfo(name, "loop", "loop", scopes), units.loop_start_unit(name, limit, scopes))
        body = self.compile(step.body, (*scopes, Scope("loop", name)))
        self.connect([(name, None)], body.entry)
        reads = (step.until,) if isinstance(step.until, str) else ()
        self.unit(UnitInfo(check, "loop_check", "loop", scopes, reads),
                  units.loop_check_unit(step, name, scopes, self.schema))
        self.connect(body.exits, check)
        self.connect([(check, "continue")], body.entry)
        self.port_fns[check] = units.loop_edge(name)
        return Fragment(name, [(check, "done")])

    def parallel(self, step: Parallel, scopes: tuple[Scope, ...]) -> Fragment:
        name = self.a.names.name_of(step)
        if not step.branches:
            raise GraphBuildError(f"parallel {name!r} has no branches", step=name)
        self.a.claim(name, "a parallel")
        join = f"{name}.join"
        self.a.claim(join, f"the join of parallel {name!r}")
        self.unit(UnitInfo(name, "fork", "parallel", scopes),
                  units.fork_unit(name, len(step.branches), scopes))
        ends: list[str] = []
        for b, branch in enumerate(step.branches):
            frag = self.compile(branch, (*scopes, Scope("parallel", name, b)))
            self.connect([(name, None)], frag.entry)
            if len(frag.exits) == 1 and frag.exits[0][1] is None:
                end = frag.exits[0][0]
            else:
                end = f"{name}.b{b}"
                self.a.claim(end, f"the end of branch {b} of parallel {name!r}")
                self.unit(UnitInfo(end, "branch_end", "parallel", scopes), units.passthrough_unit())
                self.connect(frag.exits, end)
            self.fns[end] = units.branch_end(self.fns[end], name, b, scopes)
            self.a.edges[end].add(join)
            ends.append(end)
        self.unit(UnitInfo(join, "join", "parallel", scopes), units.passthrough_unit())
        self.waiting.append((ends, join))
        return Fragment(name, [(join, None)])

    def map(self, step: Map, scopes: tuple[Scope, ...]) -> Fragment:
        name = self.a.names.name_of(step)
        self._check_map(step, name)
        self.a.claim(name, "a map")
        join = f"{name}.join"
        self.a.claim(join, f"the join of map {name!r}")
        inner_scopes = (*scopes, Scope("map", name))
        body_step = self.resolve(step.node.name) if isinstance(step.node, Ref) else step.node
        self.unit(UnitInfo(name, "map", "map", scopes, (step.over,), (step.item,)),
                  mapping.dispatch_unit(step, name, scopes))
        before = set(self.a.units)
        if isinstance(body_step, NodeStep):
            self.a.claim(body_step.name, f"a node of type {body_step.type.name!r}")
            self.a.used.add(body_step.name)
            target = body_step.name
            writes = body_step.writes
            inner = units.node_unit(body_step, inner_scopes, self.schema)
            self.a.units[target] = UnitInfo(target, "node", body_step.type.name, inner_scopes,
                                            body_step.reads, writes)
            self.a.edges[target].add(join)
        else:
            target = f"{name}.item"
            self.a.claim(target, f"the body of map {name!r}")
            sub = Builder(self.a, inner_scopes)
            graph = sub.build(body_step).compile()
            body_units = set(self.a.units) - before
            writes = tuple(dict.fromkeys(w for u in body_units for w in self.a.units[u].writes))
            self.a.edges[name].add(sub.entry)
            for source, _ in sub.exits:
                self.a.edges[source].discard(END)
                self.a.edges[source].add(join)
            inner = mapping.subgraph_inner(graph, writes)
        self._check_map_writes(step, name, writes)
        self.fns[target] = mapping.item_unit(step, name, scopes, inner)
        if isinstance(body_step, NodeStep):
            self.a.edges[name].add(target)
        self.plain.append((target, join))
        self.sends.append((name, mapping.fan_out(step, name, target, join, writes), [target, join]))
        join_writes = (step.into,) if step.into else writes
        if step.errors:
            join_writes = (*join_writes, step.errors)
        self.unit(UnitInfo(join, "map_join", "map", scopes, (), join_writes),
                  mapping.join_unit(step, name, scopes, self.schema, writes))
        self.a.edges[name].add(join)
        return Fragment(name, [(join, None)])

    def _check_map(self, step: Map, name: str) -> None:
        fields = self.schema.fields
        for role, value in (("over", step.over), ("item", step.item), ("into", step.into),
                            ("errors", step.errors)):
            if value is not None and value not in fields:
                raise GraphBuildError(
                    f"map {name!r}: {role}={value!r} is not a field of state "
                    f"{self.schema.name}.{did_you_mean(value, fields)} Fields: {known(fields)}",
                    step=name,
                )
        if step.on_error not in ON_ERROR:
            raise GraphBuildError(
                f"map {name!r}: on_error={step.on_error!r}; valid: {known(ON_ERROR)}", step=name
            )
        limit = step.max_concurrency
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise GraphBuildError(
                f"map {name!r}: max_concurrency must be a positive integer or None, got {limit!r}",
                step=name,
            )

    def _check_map_writes(self, step: Map, name: str, writes: tuple[str, ...]) -> None:
        fields = self.schema.fields
        for f in writes:
            if f not in fields:
                writer = next((i for i in self.a.units.values() if f in i.writes), None)
                raise GraphBuildError(
                    f"{_what(writer) if writer else f'map {name!r}'} writes {f!r} (an item of map "
                    f"{name!r}), which is not a field of state {self.schema.name}."
                    f"{did_you_mean(f, fields)} Fields: {known(fields)}",
                    step=writer.name if writer else name,
                )
        if step.into is not None:
            return
        plain = [w for w in writes if w in self.schema.fields and not self.schema.fields[w].reducer]
        if plain:
            raise GraphBuildError(
                f"map {name!r}: its items write {known(plain)}, which has no reducer, so the "
                "items' results cannot be merged; give the field a reducer (for example "
                "Annotated[list, operator.add]) or collect the results with into='field'",
                step=name,
            )


# checks ------------------------------------------------------------------------------------------
def check_flow(a: Analysis, inputs: tuple[str, ...], entry: str) -> None:
    """Checks that need the whole flow: unused nodes, unreachable units, reads and writes."""
    unused = [n for n in a.nodes if n not in a.used]
    if unused:
        raise GraphBuildError(
            f"node {unused[0]!r} is unreachable: no step of the flow leads to it; use it in the "
            f"steps or remove it (unused: {known(unused)})",
            step=unused[0],
        )
    reached = _reachable(a.edges, entry)
    unreachable = [u for u, info in a.units.items() if u not in reached and info.kind == "node"]
    if unreachable:
        raise GraphBuildError(f"node {unreachable[0]!r} is unreachable from the start of the flow",
                              step=unreachable[0])
    fields = a.schema.fields
    for info in a.units.values():
        for f in (*info.reads, *info.writes):
            if f not in fields:
                verb = "reads" if f in info.reads else "writes"
                raise GraphBuildError(
                    f"{_what(info)} {verb} {f!r}, which is not a field of state "
                    f"{a.schema.name}.{did_you_mean(f, fields)} Fields: {known(fields)}",
                    step=info.name,
                )
    preds = _predecessors(a.edges)
    for info in a.units.values():
        if not info.reads:
            continue
        before = _reachable(preds, info.name, include_start=False)
        available = set(inputs).union(*(a.units[u].writes for u in before if u in a.units))
        for f in info.reads:
            if f in available:
                continue
            writers = sorted(_what(i) for i in a.units.values() if f in i.writes)
            later = f"; it is written only by {', '.join(writers)}, which cannot run before it" if (
                writers) else "; nothing in the flow writes it"
            raise GraphBuildError(
                f"{_what(info)} reads {f!r}, but it is not an input of the flow{later}. "
                f"Inputs: {known(inputs)}; written before it: "
                f"{known(set().union(*(a.units[u].writes for u in before if u in a.units)))}",
                step=info.name,
            )


def _what(info: UnitInfo) -> str:
    if info.kind == "node":
        return f"node {info.name!r} (type {info.step_type!r})"
    return f"{info.step_type} {info.name.split('.')[0]!r}"


def _predecessors(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    preds: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for t in targets:
            preds[t].add(source)
    return preds


def _reachable(edges: dict[str, set[str]], start: str, *, include_start: bool = True) -> set[str]:
    seen: set[str] = {start} if include_start else set()
    stack = list(edges.get(start, ()))
    while stack:
        u = stack.pop()
        if u in seen:
            continue
        seen.add(u)
        stack.extend(edges.get(u, ()))
    return seen
