"""Declaring node types, the one way: an async function, a config model and a registration.

.. code-block:: python

    class RetrieveConfig(NodeConfig):
        collection: str
        top_k: int = Field(8, ge=1, le=100)

    @node("retrieve", reads=("query",), writes=("chunks",))
    async def retrieve(state: RagState, cfg: RetrieveConfig, ctx: RunContext) -> dict[str, Any]:
        return {"chunks": await ctx.retriever(cfg.collection).search(state.query, cfg.top_k)}

The decorator returns a :class:`NodeType`. Calling it makes a step of a flow:
``retrieve("search", collection="docs")`` is a node named ``search`` with that config. The registry
turns the config models into the YAML schema (a discriminated union on ``type``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agentflow.errors import GraphBuildError, did_you_mean, known


class NodeConfig(BaseModel):
    """Base of every node config: unknown keys are errors, and a config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


FieldsSpec = tuple[str, ...] | Callable[[Any], tuple[str, ...]]
NodeFn = Callable[[Any, Any, Any], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True, eq=False)
class NodeType:
    """A registered node type. Call it to make a named node of a flow."""

    name: str
    fn: NodeFn
    config: type[NodeConfig]
    reads_spec: FieldsSpec
    writes_spec: FieldsSpec
    description: str

    def reads(self, cfg: NodeConfig) -> tuple[str, ...]:
        """The state fields a node of this type reads, for a given config."""
        spec = self.reads_spec
        return tuple(spec(cfg)) if callable(spec) else spec

    def writes(self, cfg: NodeConfig) -> tuple[str, ...]:
        """The state fields a node of this type may write, for a given config."""
        spec = self.writes_spec
        return tuple(spec(cfg)) if callable(spec) else spec

    def make_config(self, values: Mapping[str, Any], *, node: str) -> NodeConfig:
        try:
            return self.config.model_validate(dict(values))
        except ValidationError as exc:
            fields = known(self.config.model_fields)
            raise GraphBuildError(
                f"invalid config for node {node!r} (type {self.name!r}): {_first_error(exc)}; "
                f"fields of {self.name!r}: {fields}",
                step=node,
            ) from exc

    def __call__(self, name: str | None = None, /, **config: Any) -> Any:
        from agentflow.graph.steps import NodeStep  # the step classes live with the graph

        step_name = name or self.name
        return NodeStep(type=self, name=step_name, config=self.make_config(config, node=step_name))

    def __repr__(self) -> str:
        return f"<node type {self.name!r}>"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    return f"{where}: {err['msg']}"


class NodeRegistry:
    """Node types by name. The global one, :data:`registry`, is what YAML workflows can use."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}

    def register(self, node_type: NodeType) -> NodeType:
        existing = self._types.get(node_type.name)
        if existing is not None and _qualname(existing.fn) != _qualname(node_type.fn):
            raise GraphBuildError(
                f"node type {node_type.name!r} is already registered by "
                f"{_qualname(existing.fn)}; choose another name for {_qualname(node_type.fn)}"
            )
        self._types[node_type.name] = node_type
        return node_type

    def get(self, name: str) -> NodeType:
        try:
            return self._types[name]
        except KeyError:
            raise GraphBuildError(
                f"unknown node type {name!r}.{did_you_mean(name, self._types)} "
                f"Registered: {known(self._types)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[NodeType]:
        return iter(self._types.values())

    def names(self) -> list[str]:
        return sorted(self._types)


registry = NodeRegistry()
"""The global registry: built-in node types and every ``@node`` without ``registry=``."""


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _config_from_signature(fn: Callable[..., Any]) -> type[NodeConfig]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 3:
        raise GraphBuildError(
            f"node function {_qualname(fn)} must take (state, cfg, ctx); "
            f"it takes ({', '.join(p.name for p in params)})"
        )
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        hints = {}
    cfg_type = hints.get(params[1].name)
    if isinstance(cfg_type, type) and issubclass(cfg_type, NodeConfig):
        return cfg_type
    return NodeConfig


def node(
    name: str,
    *,
    reads: FieldsSpec = (),
    writes: FieldsSpec = (),
    config: type[NodeConfig] | None = None,
    registry: NodeRegistry | None = None,
) -> Callable[[NodeFn], NodeType]:
    """Register an async function ``(state, cfg, ctx) -> dict`` as the node type ``name``.

    ``reads`` and ``writes`` name the state fields the node reads and may write, or are functions
    of the config that return them. The config model is taken from the ``cfg`` annotation unless
    ``config`` is given. Returning a field not in ``writes`` is an error at run time.
    """

    def decorate(fn: NodeFn) -> NodeType:
        if not inspect.iscoroutinefunction(fn):
            raise GraphBuildError(
                f"node function {_qualname(fn)} must be `async def` (node type {name!r})"
            )
        cfg_model = config or _config_from_signature(fn)
        node_type = NodeType(
            name=name,
            fn=fn,
            config=cfg_model,
            reads_spec=reads if callable(reads) else tuple(reads),
            writes_spec=writes if callable(writes) else tuple(writes),
            description=inspect.getdoc(fn) or "",
        )
        return (registry if registry is not None else globals()["registry"]).register(node_type)

    return decorate
