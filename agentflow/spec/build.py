"""YAML and Python are two views of one flow: spec -> :class:`Flow`, and :class:`Flow` -> spec.

A spec compiles to exactly the objects the Python API builds (node steps of registered types, the
four shapes, a Pydantic state model). A Python flow made of registered node types exports back to a
spec, so :func:`to_yaml` and loading that YAML give the same flow.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import AllowInfNan, BaseModel, create_model

from agentflow.errors import GraphBuildError
from agentflow.graph.flow import Flow
from agentflow.graph.registry import NodeRegistry, registry
from agentflow.graph.state import REDUCERS, StateSchema, reducer_name
from agentflow.graph.steps import Loop, Map, NodeStep, Parallel, Ref, Route, Sequence, Step
from agentflow.spec.model import FieldSpec, LoopStep, MapStep, ParallelBody, ParallelStep, RouteStep
from agentflow.spec.yamlio import Loc

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                          "list": list, "object": dict, "any": Any}
_CHECKED: dict[str, Any] = {**_TYPES, "number": Annotated[float, AllowInfNan(False)]}
"""What a state field of each type accepts: a number is finite (JSON input may hold NaN)."""
_EMPTY: dict[str, Any] = {"list": list, "object": dict}




def state_model(name: str, inputs: dict[str, FieldSpec], declared: dict[str, FieldSpec],
                written: list[str]) -> type[BaseModel]:
    """The Pydantic state of a YAML workflow: inputs, declared fields, and what nodes write."""
    fields: dict[str, Any] = {}
    for field_name, spec in {**declared, **inputs}.items():
        required = spec.required if spec.required is not None else (
            field_name in inputs and spec.default is None)
        # a required input must hold a value of its type: null is no answer to "question"
        annotation = Any if spec.type == "any" else (
            _CHECKED[spec.type] if required else _CHECKED[spec.type] | None)
        reducer = REDUCERS.get(spec.reducer)
        if reducer is not None:
            annotation = Annotated[annotation, reducer]
        if required:
            fields[field_name] = (annotation, ...)
        elif spec.default is None and spec.type in _EMPTY:
            fields[field_name] = (annotation, _default_factory(spec.type))
        else:
            fields[field_name] = (annotation, spec.default)
    for field_name in written:
        fields.setdefault(field_name, (Any, None))
    title = "".join(p.capitalize() for p in name.replace("-", "_").split("_")) + "State"
    return create_model(title, **fields)


def _default_factory(kind: str) -> Any:
    from pydantic import Field

    return Field(default_factory=_EMPTY[kind])


class StepBuilder:
    """Turns the spec's flow tree into steps, remembering the YAML location of each named step."""

    def __init__(self, nodes: dict[str, NodeStep]) -> None:
        self.nodes = nodes
        self.locs: dict[str, Loc] = {}

    def build(self, spec: Any, loc: Loc) -> Step:
        if isinstance(spec, str):
            self.locs.setdefault(spec, loc)
            return Ref(spec)
        if isinstance(spec, list):
            return Sequence(tuple(self.build(s, (*loc, i)) for i, s in enumerate(spec)))
        if isinstance(spec, RouteStep):
            body, at = spec.route, (*loc, "route")
            cases = {k: (self.build(v, (*at, "cases", k)) if v is not None else None)
                     for k, v in body.cases.items()}
            default = self.build(body.default, (*at, "default")) if body.default is not None else None
            return self._named(Route(on=body.on, cases=cases, default=default, name=body.name), at)
        if isinstance(spec, LoopStep):
            body, at = spec.loop, (*loc, "loop")
            return self._named(Loop(body=self.build(body.body, (*at, "body")), until=body.until,
                                    max_iterations=body.max_iterations, name=body.name), at)
        if isinstance(spec, ParallelStep):
            at = (*loc, "parallel")
            form = spec.parallel
            branches, name = (form.branches, form.name) if isinstance(form, ParallelBody) else (form, None)
            if isinstance(form, ParallelBody):
                at_branches: Loc = (*at, "branches")
            else:
                at_branches = at
            built = tuple(self.build(b, (*at_branches, i)) for i, b in enumerate(branches))
            return self._named(Parallel(built, name=name), at)
        if isinstance(spec, MapStep):
            body, at = spec.map, (*loc, "map")
            return self._named(Map(over=body.over, node=self.build(body.node, (*at, "node")),
                                   item=body.item, max_concurrency=body.max_concurrency,
                                   on_error=body.on_error, into=body.into, errors=body.errors,
                                   name=body.name), at)
        raise GraphBuildError(f"not a step: {spec!r}")

    def _named(self, step: Step, loc: Loc) -> Step:
        if step.name:
            self.locs.setdefault(step.name, loc)
        else:
            self.locs[f"#{id(step)}"] = loc
        return step

    def loc_of(self, step_name: str | None, steps: Step) -> Loc | None:
        """Where a step named in a build error is declared (its node, or its composite)."""
        if step_name is None:
            return None
        base = step_name.split(".")[0]
        if base in self.locs:
            return self.locs[base]
        for step in _walk(steps):
            if step.name == base and f"#{id(step)}" in self.locs:
                return self.locs[f"#{id(step)}"]
        return None


def _walk(step: Step) -> typing.Iterator[Step]:
    yield step
    for child in step.children():
        yield from _walk(child)


# Flow -> spec -----------------------------------------------------------------------------------
def to_yaml(flow: Flow, reg: NodeRegistry | None = None) -> str:
    """A flow as a YAML workflow (its node types must be registered, as YAML names them).

    Loading the YAML gives the same flow: same nodes, configs, shapes and state fields.
    """
    from agentflow.spec.yamlio import dump

    return "# yaml-language-server: $schema=schema.json\n" + dump(flow_to_spec(flow, reg))


def flow_to_spec(flow: Flow, reg: NodeRegistry | None = None) -> dict[str, Any]:
    """The spec (plain data) of a flow made of registered node types."""
    reg = reg or registry
    compiled = flow.compile()  # names every composite
    schema = StateSchema(flow.state)
    nodes: dict[str, dict[str, Any]] = {}
    for n in _node_steps(flow):
        if n.type.name not in reg or reg.get(n.type.name) is not n.type:
            raise GraphBuildError(
                f"node {n.name!r} has type {n.type.name!r}, which is not in the registry YAML "
                "uses; register it with @node (without registry=) to export this flow"
            )
        nodes[n.name] = {"type": n.type.name, **n.config.model_dump(mode="json", exclude_defaults=True)}
    inputs = {f: _field_spec(schema, f, as_input=True) for f in compiled.inputs}
    state = {f: _field_spec(schema, f, as_input=False) for f in schema.fields if f not in inputs}
    return {
        "version": 1,
        "name": flow.name,
        **({"description": flow.description} if flow.description else {}),
        "inputs": inputs,
        "state": {k: v for k, v in state.items() if v},
        "nodes": nodes,
        "flow": _step_spec(flow.steps),
    }


def _node_steps(flow: Flow) -> list[NodeStep]:
    found = {n.name: n for n in flow.nodes}
    for step in _walk(flow.steps):
        if isinstance(step, NodeStep):
            found.setdefault(step.name, step)
    return list(found.values())


def _field_spec(schema: StateSchema, name: str, *, as_input: bool) -> dict[str, Any]:
    info = schema.fields[name]
    spec: dict[str, Any] = {}
    kind = _kind(info.annotation)
    if kind != "any":
        spec["type"] = kind
    if info.reducer is not None:
        reducer = reducer_name(info.reducer)
        if reducer is None:
            raise GraphBuildError(
                f"field {name!r} has reducer {info.reducer!r}, which YAML cannot name; YAML "
                "reducers: append, merge, messages"
            )
        spec["reducer"] = reducer
    if schema.is_pydantic:
        f = schema.schema.model_fields[name]  # type: ignore[attr-defined]
        if not f.is_required() and f.default not in (None, [], {}) and f.default_factory is None:
            spec["default"] = f.default
        if as_input and not f.is_required():
            spec["required"] = False
    return spec


def _kind(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(args[0]) if len(args) == 1 else "any"
    base = origin or annotation
    for kind, py in _TYPES.items():
        if py is not Any and isinstance(base, type) and issubclass(base, py) and not (
                py is int and base is bool):
            return kind
    return "any"


def _step_spec(step: Step) -> Any:
    if isinstance(step, (NodeStep, Ref)):
        return step.name
    if isinstance(step, Sequence):
        return [_step_spec(s) for s in step.steps]
    if isinstance(step, Route):
        if not isinstance(step.on, str):
            raise GraphBuildError(f"route {step.name!r} routes on a Python function, which YAML "
                                  "cannot name; route on a state field instead")
        body: dict[str, Any] = {"name": step.name, "on": step.on,
                                "cases": {k: _step_spec(v) for k, v in step.cases.items() if v}}
        if step.default is not None:
            body["default"] = _step_spec(step.default)
        return {"route": body}
    if isinstance(step, Loop):
        if not isinstance(step.until, str):
            raise GraphBuildError(f"loop {step.name!r}: its until is a Python function, which "
                                  "YAML cannot name; use a state field (a check node's result)")
        return {"loop": {"name": step.name, "body": _step_spec(step.body), "until": step.until,
                         "max_iterations": step.max_iterations}}
    if isinstance(step, Parallel):
        return {"parallel": {"name": step.name, "branches": [_step_spec(b) for b in step.branches]}}
    if isinstance(step, Map):
        body = {"name": step.name, "over": step.over, "item": step.item, "node": _step_spec(step.node)}
        for key in ("max_concurrency", "into", "errors"):
            if getattr(step, key) is not None:
                body[key] = getattr(step, key)
        if step.on_error != "fail_fast":
            body["on_error"] = step.on_error
        return {"map": body}
    raise GraphBuildError(f"not a step: {step!r}")
