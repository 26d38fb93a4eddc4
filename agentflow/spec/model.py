"""``WorkflowSpec``: the Pydantic model of a YAML workflow, and the JSON Schema editors use.

The node part is a discriminated union on ``type`` built from the node registry: every registered
node type contributes its config model, so the schema documents every node's fields.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from typing_extensions import TypeAliasType

from agentflow.graph.registry import NodeRegistry, NodeType, registry
from agentflow.retrieval.chunking import ChunkingConfig
from agentflow.retrieval.loaders import FieldMap

if TYPE_CHECKING:
    from agentflow.retrieval.catalog import CollectionSpec

SPEC_VERSIONS = (1,)
FieldType = Literal["string", "integer", "number", "boolean", "list", "object", "any"]
Reducer = Literal["replace", "append", "merge", "messages"]
STEP_KINDS = ("route", "loop", "parallel", "map")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class FieldSpec(_Strict):
    """A field of the workflow's state."""

    type: FieldType = "any"
    """The field's type; `any` accepts every value."""
    description: str = ""
    """What the field holds."""
    default: Any = None
    """The value a run starts with when the field is not given (inputs without one are required)."""
    required: bool | None = None
    """Inputs only: whether a run must give it (default: when it has no default)."""
    reducer: Reducer = "replace"
    """How writes from parallel branches or map items combine: replace, append (lists), merge
    (dicts) or messages (chat history, LangGraph's add_messages)."""


class CollectionConfig(_Strict):
    """A collection of documents the workflow searches, and where its documents come from."""

    # what the YAML says; resolve() makes the retrieval layer's CollectionSpec of it

    source: str | list[str]
    """A file, a folder or a glob (or a list of them), relative to the workflow file."""
    description: str = ""
    """What the documents are about, for replies such as declining (`{{ collections.NAME.description }}`
    in a reply's text or a chat's purpose); when omitted, "the documents in FOLDER" after the source."""
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embed: str = "embed"
    """The model alias whose embedding model embeds the documents: the profile in force chooses
    it (MiniLM offline, the provider's embedding model with openai or ollama), and a profile with
    another model embeds the collection again."""
    embedder: str | None = None
    """A fixed embedding model instead of the alias, whatever the profile: offline/minilm (minilm
    is the same), hash, or a LiteLLM embedding model name."""
    store: str | None = None
    """A Qdrant URL (server or cluster); the embedded store under .agentflow/ when omitted."""
    field_map: FieldMap | None = None
    """For .jsonl sources: which fields hold the text, title and id."""

    def resolve(self, name: str, base_dir: Path) -> CollectionSpec:
        """The retrieval layer's spec of this collection, its sources taken from ``base_dir``."""
        from agentflow.retrieval.catalog import CollectionSpec

        sources = [self.source] if isinstance(self.source, str) else list(self.source)
        return CollectionSpec(
            name=name, sources=tuple(str((base_dir / s).resolve()) for s in sources),
            description=self.description, chunking=self.chunking, embed=self.embed,
            embedder=self.embedder, store=self.store, field_map=self.field_map)


class ModelsSpec(_Strict):
    """The workflow's model settings."""

    profile: str | None = None
    """The model profile (offline, local, openai, anthropic, ollama, self-hosted or one of yours)."""


# flow steps -------------------------------------------------------------------------------------
class RouteBody(_Strict):
    """Run one case, chosen by the label that a state field holds."""

    on: str
    """The state field whose value picks the case."""
    cases: dict[str, StepSpec | None]
    """Label -> the step that runs when `on` holds that label."""
    default: StepSpec | None = None
    """The step for a label that has no case; without one, such a label fails the run."""
    name: str | None = None
    """The name traces and the trace viewer show (route_1, route_2, ... when omitted)."""


class LoopBody(_Strict):
    """Repeat a body until a state field passes, at most max_iterations times."""

    body: StepSpec
    """The step that runs on every pass."""
    until: str
    """A state field: the loop stops when it is truthy (or has `passed: true`)."""
    max_iterations: int = Field(ge=1, le=1000)
    """Required: loops are bounded."""
    name: str | None = None
    """The name traces and the trace viewer show (loop_1, loop_2, ... when omitted)."""


class ParallelBody(_Strict):
    """Run branches concurrently and wait for all of them."""

    branches: list[StepSpec] = Field(min_length=1)
    """The steps that run concurrently; the next step waits for all of them."""
    name: str | None = None
    """The name traces and the trace viewer show (parallel_1, ... when omitted)."""


class MapBody(_Strict):
    """Run a step once per element of a list field, at most max_concurrency at a time."""

    over: str
    """The list field to map over."""
    node: StepSpec
    """The step that runs once per element (a node name, or any step)."""
    item: str = "item"
    """The field each run sees its element in."""
    max_concurrency: int | None = Field(None, ge=1)
    """How many elements run at once at most; unlimited when omitted."""
    on_error: Literal["fail_fast", "continue", "collect"] = "fail_fast"
    """A failing element: fail_fast fails the run; continue drops it and keeps the others'
    results; collect does the same and records the failures."""
    into: str | None = None
    """A list field that receives one entry per successful element, in element order."""
    errors: str | None = None
    """With on_error collect: a field that receives the failed elements."""
    name: str | None = None
    """The name traces and the trace viewer show (map_1, map_2, ... when omitted)."""


class RouteStep(_Strict):
    route: RouteBody


class LoopStep(_Strict):
    loop: LoopBody


def _parallel_form(value: Any) -> str | None:
    if isinstance(value, list):
        return "branches"
    if isinstance(value, (dict, ParallelBody)):
        return "body"
    return None


class ParallelStep(_Strict):
    parallel: Annotated[
        Union[Annotated[list[StepSpec], Tag("branches")], Annotated[ParallelBody, Tag("body")]],
        Discriminator(_parallel_form, custom_error_type="invalid_parallel",
                      custom_error_message="parallel takes a list of branches, or a mapping "
                      "with branches (and a name)"),
    ]


class MapStep(_Strict):
    map: MapBody


def _step_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "node"
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in STEP_KINDS else None
    if isinstance(value, BaseModel):
        return {RouteStep: "route", LoopStep: "loop", ParallelStep: "parallel",
                MapStep: "map"}.get(type(value))
    return None


StepSpec = TypeAliasType(
    "StepSpec",
    Annotated[
    Union[
        Annotated[str, Tag("node")],
        Annotated[list["StepSpec"], Tag("sequence")],
        Annotated[RouteStep, Tag("route")],
        Annotated[LoopStep, Tag("loop")],
        Annotated[ParallelStep, Tag("parallel")],
        Annotated[MapStep, Tag("map")],
    ],
    Discriminator(
        _step_kind,
        custom_error_type="invalid_step",
        custom_error_message="a step is a node name, a list of steps, or a mapping with one key: "
        "route, loop, parallel or map",
    ),
    ],
)

for _model in (RouteBody, LoopBody, ParallelBody, MapBody, ParallelStep):
    _model.model_rebuild()


# the workflow -----------------------------------------------------------------------------------
class WorkflowBase(_Strict):
    version: Literal[1]
    """The spec version; 1 is the only one so far."""
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """The workflow's name, shown in traces and in `agentflow traces list`."""
    description: str = ""
    """What the workflow does, in a sentence or two."""
    inputs: dict[str, FieldSpec] = Field(default_factory=dict)
    """The fields a run is given (-i key=value); required unless they have a default."""
    outputs: list[str] = Field(default_factory=list)
    """The fields `--output json` prints (all fields when empty)."""
    state: dict[str, FieldSpec] = Field(default_factory=dict)
    """Other state fields that need a type, default or reducer; fields nodes write are added."""
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    """Model settings of the workflow: the profile its aliases resolve through."""
    collections: dict[str, CollectionConfig] = Field(default_factory=dict)
    """The document collections retrieve nodes search, ingested before a run when changed."""
    flow: StepSpec
    """The steps: a node name, a list of steps (a sequence), or route, loop, parallel or map."""


def _subclass(base: type[BaseModel], name: str, doc: str | None, **fields: tuple[Any, Any]) -> type[BaseModel]:
    """``create_model(name, __base__=base, **fields)``, minus the attribute-docstring lookup.

    The base classes' docstrings are already read; for a class built at run time pydantic would
    walk the stack and parse source it cannot find (a third of a second for the node types).
    """
    namespace: dict[str, Any] = {
        "__module__": __name__, "__qualname__": name, "__doc__": doc,
        "__annotations__": {key: annotation for key, (annotation, _) in fields.items()},
        "model_config": ConfigDict(use_attribute_docstrings=False),
    }
    namespace.update({key: default for key, (_, default) in fields.items()})
    return type(base)(name, (base,), namespace)


@lru_cache(maxsize=256)
def node_model(node_type: NodeType) -> type[BaseModel]:
    """The YAML form of a node type: its config plus ``type``."""
    title = "".join(p.capitalize() for p in node_type.name.replace("-", "_").split("_")) + "Node"
    return _subclass(
        node_type.config, title, node_type.description or f"A node of type {node_type.name!r}.",
        type=(Literal[node_type.name], Field(description=node_type.description or None)),  # type: ignore[valid-type]
    )


def workflow_model(reg: NodeRegistry | None = None) -> type[WorkflowBase]:
    """``WorkflowSpec`` for the node types registered now (cached per set of types)."""
    reg = reg or registry
    return _workflow_model(reg, tuple(t.name for t in reg))


@lru_cache(maxsize=16)
def _workflow_model(reg: NodeRegistry, names: tuple[str, ...]) -> type[WorkflowBase]:
    models = [node_model(reg.get(n)) for n in sorted(names)]
    if not models:
        node_union: Any = dict[str, Any]
    else:
        union = Union[tuple(models)] if len(models) > 1 else models[0]  # type: ignore[valid-type]
        node_union = dict[str, Annotated[union, Field(discriminator="type")]]  # type: ignore[valid-type]
    return _subclass(  # type: ignore[return-value]
        WorkflowBase, "WorkflowSpec", WorkflowBase.__doc__,
        nodes=(node_union, Field(default_factory=dict, description=(
            "The named nodes: each is a mapping with a `type` (a registered node type) and "
            "that type's fields."))),
    )


def json_schema(reg: NodeRegistry | None = None) -> dict[str, Any]:
    schema = workflow_model(reg).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentflow workflow"
    return schema
