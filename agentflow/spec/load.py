"""Load a YAML workflow: parse, apply ``--set`` overrides, validate, build the flow.

Every problem is a :class:`SpecError` with the file, line and column, the YAML path, what was
expected and the valid options (with a did-you-mean for names).
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentflow.errors import GraphBuildError, SpecError, SpecErrors, did_you_mean, known
from agentflow.graph.flow import Flow
from agentflow.graph.registry import NodeRegistry, registry
from agentflow.spec.build import StepBuilder, state_model
from agentflow.spec.model import SPEC_VERSIONS, STEP_KINDS, WorkflowBase, workflow_model
from agentflow.spec.yamlio import Located, dotted, load, load_file, safe_load

SCHEMA_COMMENT = "# yaml-language-server: $schema={path}"
MAX_ERRORS = 20
EMPTY_OUTPUT = {"list": list, "object": dict, "string": str}
"""The value of an output no node wrote, by its declared type (others stay null)."""
"""How many problems of a workflow one error lists (``agentflow validate --max-errors``)."""


@dataclass
class Workflow:
    """A loaded workflow: its spec, the flow built from it, and where it came from."""

    spec: WorkflowBase
    flow: Flow
    path: Path | None
    located: Located = field(repr=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def collections(self) -> list[Any]:
        """The declared collections, their sources made absolute (they are relative to the file)."""
        return [c.resolve(name, self.base_dir) for name, c in self.spec.collections.items()]

    def outputs_of(self, state: dict[str, Any]) -> dict[str, Any]:
        """The workflow's ``outputs`` from a final state, the same keys on every route: a field
        no node wrote holds the empty value of its declared type ([] for a list, {} for an
        object, "" for a string) rather than null. Without ``outputs``, the whole state."""
        if not self.spec.outputs:
            return dict(state)
        declared = {**self.spec.state, **self.spec.inputs}
        out = {}
        for key in self.spec.outputs:
            value = state.get(key)
            kind = declared[key].type if key in declared else "any"
            out[key] = EMPTY_OUTPUT[kind]() if value is None and kind in EMPTY_OUTPUT else value
        return out

    def ingested_collections(self) -> list[Any]:
        """The collections nodes search without the workflow declaring them: ones filled with
        ``agentflow ingest``, opened (never ingested) from the embedded store."""
        from agentflow.errors import RetrievalError
        from agentflow.retrieval.catalog import DEFAULT_EMBEDDER, CollectionSpec
        from agentflow.retrieval.store import check_collection_name

        out = []
        for name in searched_collections(self.spec):
            try:
                check_collection_name(name)
            except RetrievalError:
                continue  # no store can hold it: the node says so when it runs
            if name not in self.spec.collections:
                # filled by `agentflow ingest` with its --embedder (MiniLM by default), not by
                # the profile's embed alias: searched with the model it was embedded with
                out.append(CollectionSpec(name=name, embedder=DEFAULT_EMBEDDER))
        return out

    async def aservices(self, *, profile: str | None = None, root: str | Path = ".",
                        progress: bool = True) -> Any:
        """The services of a run: models and prompts from configuration, and the declared
        collections, ingested first where their sources changed (with a progress bar)."""
        from agentflow.retrieval.catalog import prepare_collections
        from agentflow.spec.services import default_services

        prepared = {}
        services = default_services(profile=profile, workflow_profile=self.spec.models.profile,
                                    root=root, base=self.flow.services)
        specs = [*self.collections(), *self.ingested_collections()]
        if specs:  # embedded through the run's router: the profile chooses the embedding model
            prepared = await prepare_collections(specs, base_dir=root, progress=progress,
                                                 models=services.models)
            services = default_services(
                root=root, base=services, retrievers={name: r for name, (r, _) in prepared.items()})
        changed = [r for r, report in prepared.values() if report.chunks_written]
        wants = getattr(services.models, "prepares_passages", None)
        if changed and wants is not None and wants():  # new passages: backends that score them locally get ready
            passages = [row.get("text", "") for r in changed for row in await r.store.scan(["text"])]
            await asyncio.to_thread(services.models.prepare, passages, progress=progress)
        return services

    def services(self, *, profile: str | None = None, root: str | Path = ".",
                 progress: bool = True) -> Any:
        """:meth:`aservices`, for code that is not async."""
        import asyncio

        return asyncio.run(self.aservices(profile=profile, root=root, progress=progress))


def load_workflow(
    source: str | Path,
    *,
    overrides: Sequence[str] = (),
    reg: NodeRegistry | None = None,
    text: str | None = None,
    profile: str | None = None,
    check_stores: bool = False,
    max_errors: int = MAX_ERRORS,
) -> Workflow:
    """Load and build a workflow from a file (or from ``text``, named ``source``).

    ``profile`` is the one the run will use (``--profile``), when it overrides the workflow's:
    the model aliases the nodes name are checked against it. ``check_stores``: every collection
    a ``retrieve`` node searches must be declared under ``collections:`` or exist in the embedded
    store, as for runs whose retrievers come from the workflow (the command line); code that
    passes its own ``Services(retrievers=...)`` leaves it off.

    Every problem found is reported at once (at most ``max_errors`` of them listed): a
    :class:`SpecErrors` when there are several.
    """
    from agentflow.nodes import load_builtins
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.project import python_allowlist

    load_builtins()
    allow_modules(python_allowlist("."))  # the project's own allowlist, in ./agentflow.yaml
    reg = reg or registry
    located = load(text, str(source)) if text is not None else load_file(source)
    for item in overrides:
        apply_override(located, item)
    problems = _check_top(located) + _non_finite(located.data, (), located)
    try:
        spec: Any = workflow_model(reg).model_validate(located.data)
    except ValidationError as exc:
        problems += _spec_errors(exc, located, reg, skip=("version",) if problems else ())
        spec = _valid_parts(located.data, reg)
    problems += reference_problems(spec, located, profile=profile, check_stores=check_stores)
    if not problems:  # the graph is built from a valid spec only
        try:
            flow = build_flow(spec, located, reg)
        except SpecError as exc:
            problems.append(exc)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise SpecErrors.combine(problems, limit=max_errors)
    path = Path(source) if text is None else None
    return Workflow(spec=spec, flow=flow, path=path, located=located)


@dataclass
class _Parts:
    """What of an invalid workflow validates on its own: the references of these parts are
    still checked, so that one report lists every problem."""

    nodes: dict[str, Any]
    models: Any
    collections: dict[str, Any]


def _valid_parts(data: dict[str, Any], reg: NodeRegistry) -> _Parts:
    from agentflow.spec.model import ModelsSpec, node_model

    nodes: dict[str, Any] = {}
    raw_nodes = data.get("nodes")
    for name, raw in (raw_nodes.items() if isinstance(raw_nodes, dict) else ()):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind in reg:
            try:
                nodes[name] = node_model(reg.get(kind)).model_validate(raw)
            except ValidationError:
                pass  # reported already
    try:
        models = ModelsSpec.model_validate(data.get("models") or {})
    except ValidationError:
        models = ModelsSpec()
    declared = data.get("collections")  # declared, even where a declaration has errors
    return _Parts(nodes, models, declared if isinstance(declared, dict) else {})


def build_flow(spec: WorkflowBase, located: Located, reg: NodeRegistry) -> Flow:
    nodes = {}
    for name, node_spec in getattr(spec, "nodes", {}).items():
        node_type = reg.get(node_spec.type)
        values = node_spec.model_dump(exclude={"type"}, exclude_unset=True)
        try:
            nodes[name] = node_type(name, **values)
        except GraphBuildError as exc:
            raise located.error(str(exc), ("nodes", name)) from None
    builder = StepBuilder(nodes)
    steps = builder.build(spec.flow, ("flow",))
    written = [w for n in nodes.values() for w in (*n.writes, *n.reads)]
    written += [s.item for s in _maps(spec.flow)]
    state = state_model(spec.name, spec.inputs, spec.state, written)
    for out in spec.outputs:
        if out not in state.model_fields:
            raise located.error(
                f"output {out!r} is no field of the workflow's state.{did_you_mean(out, state.model_fields)} "
                f"Fields: {known(state.model_fields)}", ("outputs", spec.outputs.index(out)))
    flow = Flow(spec.name, state=state, steps=steps, nodes=list(nodes.values()),
                inputs=tuple(spec.inputs), description=spec.description)
    try:
        flow.compile()
    except GraphBuildError as exc:
        loc = builder.loc_of(exc.step, flow.steps)
        if loc is None and exc.step in nodes:
            loc = ("nodes", exc.step)
        raise located.error(str(exc), loc or ("flow",)) from None
    return flow


ALIAS_FIELDS = ("model", "embed_model")


def check_references(spec: WorkflowBase, located: Located, root: str | Path = ".", *,
                     profile: str | None = None, check_stores: bool = False) -> None:
    """Model aliases, prompt files and template variables the nodes name must exist (and, with
    ``check_stores``, the collections they search); raises every problem at once."""
    problems = reference_problems(spec, located, root, profile=profile, check_stores=check_stores)
    if problems:
        raise SpecErrors.combine(problems)


def reference_problems(spec: WorkflowBase | _Parts, located: Located, root: str | Path = ".", *,
                       profile: str | None = None, check_stores: bool = False) -> list[SpecError]:
    """Every model alias, prompt file, template variable (and collection) the nodes name that
    does not exist.

    Aliases are those of the workflow's profile (``agentflow.yaml`` and the built-in profiles);
    prompts are looked up like at run time (the project, then agentflow's own templates).
    """
    from agentflow.errors import ConfigError
    from agentflow.models import build_router
    from agentflow.prompts import PromptStore

    nodes = getattr(spec, "nodes", {})
    if not nodes:
        return []
    problems: list[SpecError] = []
    try:
        router: Any = build_router(Path(root) / "agentflow.yaml", profile=profile,
                                   workflow_profile=spec.models.profile, root=root)
    except ConfigError as exc:
        problems.append(located.error(str(exc), ("models", "profile")))
        router = None
    prompts = PromptStore.for_project(root)
    for name, node_spec in nodes.items():
        for field_name in ALIAS_FIELDS:
            alias = getattr(node_spec, field_name, None)
            if isinstance(alias, str) and router is not None:
                try:
                    router.check_alias(alias)
                except ConfigError as exc:
                    problems.append(located.error(str(exc), ("nodes", name, field_name)))
        problems += _prompt_problems(name, node_spec, located, prompts, root)
    for name, collection in getattr(spec, "collections", {}).items():
        embed = getattr(collection, "embed", None)  # None: a declaration with errors (reported)
        if router is not None and isinstance(embed, str) and collection.embedder is None:
            try:
                router.check_alias(embed)
            except ConfigError as exc:
                problems.append(located.error(str(exc), ("collections", name, "embed")))
    if check_stores:
        problems += collection_problems(spec, located, root)
    return problems


def _prompt_problems(name: str, node_spec: Any, located: Located, prompts: Any,
                     root: str | Path) -> list[SpecError]:
    """The node's prompt template must exist, be safe, and get every variable it uses."""
    from agentflow.errors import ConfigError
    from agentflow.prompts.templates import unknown_variables

    prompt = getattr(node_spec, "prompt", None)
    if not isinstance(prompt, str) or "{" in prompt:
        return []
    try:
        prompts.template(prompt)
    except ConfigError as exc:
        return [located.error(str(exc), ("nodes", name, "prompt"))]
    variables = getattr(node_spec, "variables", None)
    if isinstance(variables, dict):
        missing, _unused = unknown_variables(prompt, list(variables), root=root)
        if missing:
            return [located.error(
                f"template {prompt!r} uses variable(s) {known(missing)}, which the node does "
                f"not give; variables given: {known(variables)}. Map each to a state field "
                "under variables:", ("nodes", name, "variables"))]
    return []


def searched_collections(spec: WorkflowBase | _Parts) -> dict[str, list[str]]:
    """Collection name -> the nodes that search it (every node config with a ``collection``,
    and classify nodes whose labels take their meaning ``from_collection``)."""
    out: dict[str, list[str]] = {}
    for name, node_spec in getattr(spec, "nodes", {}).items():
        collection = getattr(node_spec, "collection", None)
        if isinstance(collection, str):
            out.setdefault(collection, []).append(name)
        label_collections = getattr(node_spec, "collections", None)
        if callable(label_collections):
            for collection in dict.fromkeys(label_collections().values()):
                out.setdefault(collection, []).append(name)
    return out


def collection_problems(spec: WorkflowBase | _Parts, located: Located,
                        root: str | Path = ".") -> list[SpecError]:
    """A searched collection must be declared under ``collections:`` or exist in the embedded
    store; where the store cannot be read, a warning says which collection went unchecked."""
    import warnings

    from agentflow.errors import RetrievalError
    from agentflow.retrieval.store import check_collection_name

    problems: list[SpecError] = []
    for collection, searchers in searched_collections(spec).items():
        if collection in spec.collections:
            continue
        try:
            check_collection_name(collection)
        except RetrievalError as exc:
            problems += [located.error(str(exc), ("nodes", name, "collection"))
                         for name in searchers]
            continue
        found = _in_embedded_store(collection, root)
        if found is None:
            warnings.warn(f"{located.file}: cannot check whether collection {collection!r} "
                          f"(searched by {known(searchers)}) exists in the store under {root}; "
                          "it is not declared under collections:", stacklevel=3)
        elif not found:
            problems += [located.error(
                f"collection {collection!r} is not declared under collections: and does not "
                f"exist in the store ({_store_location(collection, root)}). Declared: "
                f"{known(spec.collections)}.{did_you_mean(collection, spec.collections)} Declare "
                f"it with its source, or run `agentflow ingest PATH... --collection {collection}`",
                ("nodes", name, "collection")) for name in searchers]
    return problems


def _store_location(collection: str, root: str | Path) -> str:
    from agentflow.retrieval.catalog import open_store

    return open_store(collection, None, base_dir=root).location


def _in_embedded_store(collection: str, root: str | Path) -> bool | None:
    """Whether the embedded store holds ``collection`` (None: it cannot be read). Looks at its
    folder only: opening the store would lock it against a run in progress."""
    try:
        where = Path(_store_location(collection, root))
        return where.is_dir() and any(where.iterdir())
    except OSError:
        return None


def _maps(step: Any) -> Iterable[Any]:
    from agentflow.spec.model import LoopStep, MapStep, ParallelBody, ParallelStep, RouteStep

    if isinstance(step, list):
        for s in step:
            yield from _maps(s)
    elif isinstance(step, MapStep):
        yield step.map
        yield from _maps(step.map.node)
    elif isinstance(step, LoopStep):
        yield from _maps(step.loop.body)
    elif isinstance(step, RouteStep):
        for case in (*step.route.cases.values(), step.route.default):
            yield from _maps(case)
    elif isinstance(step, ParallelStep):
        form = step.parallel
        yield from _maps(form.branches if isinstance(form, ParallelBody) else form)


# overrides --------------------------------------------------------------------------------------
def apply_override(located: Located, item: str) -> None:
    """Apply ``dotted.path=value`` (value read as YAML) to the loaded document."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SpecError(f"--set expects dotted.path=value, got {item!r}")
    parts = key.split(".")
    node = located.data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict) or part not in node:
            options = list(node) if isinstance(node, dict) else []
            where = ".".join(parts[:i]) or "the top"
            valid = (f" Fields there: {known(options)}" if options else
                     f" {where} is a list of {len(node)}" if isinstance(node, list) else "")
            raise SpecError(f"--set {key}: no field {part!r} at {where}."
                            f"{did_you_mean(part, options)}{valid}", file=located.file)
        node = node[part]
    try:
        value = safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (dict, list)) and not raw.lstrip().startswith(("{", "[")):
        value = raw  # `prefix=A: ` is the text "A: ", not a mapping
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"--set {key}: {'.'.join(parts[:-1])} is not a mapping", file=located.file)


# errors -----------------------------------------------------------------------------------------
def _check_top(located: Located) -> list[SpecError]:
    """The document must be a mapping (else nothing more can be checked) of a known version."""
    data = located.data
    if not isinstance(data, dict):
        raise located.error("a workflow is a mapping with version, name, nodes and flow", ())
    version = data.get("version")
    if version is None:
        return [located.error(f"missing required field 'version'; supported: "
                              f"{', '.join(map(str, SPEC_VERSIONS))}", ())]
    if version not in SPEC_VERSIONS:
        return [located.error(f"unknown version {version!r}; supported: "
                              f"{', '.join(map(str, SPEC_VERSIONS))}", ("version",))]
    return []


def _non_finite(value: Any, loc: tuple[str | int, ...], located: Located) -> list[SpecError]:
    """NaN and infinity (YAML's ``.nan``, ``.inf``) are no setting of any field: a threshold of
    NaN compares false with everything and would silently change what a node does."""
    if isinstance(value, float) and not math.isfinite(value):
        return [located.error(f"expected a finite number, got {value!r}: NaN and infinity are "
                              "not valid values in a workflow (give a number such as 0.5, or "
                              "leave the field out for its default)", loc)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, (*loc, k), located)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, (*loc, i), located)]
    return []


_TAGS = {"node", "sequence", "branches", "body", *STEP_KINDS}


def _real_loc(loc: Sequence[str | int], data: Any, type_names: Iterable[str]) -> list[str | int]:
    """Drop the union tags Pydantic puts in error locations (``sequence``, node types...)."""
    tags = _TAGS | set(type_names)
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and part in tags and i < len(loc) - 1:
            continue
        else:
            out.append(part)
            node = None
    return out


def _spec_errors(exc: ValidationError, located: Located, reg: NodeRegistry, *,
                 skip: Sequence[str | int] = ()) -> list[SpecError]:
    """One located error per problem Pydantic found (those at ``skip`` already reported)."""
    out: list[SpecError] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors():
        loc = _real_loc(err["loc"], located.data, reg.names())
        if skip and tuple(loc) == tuple(skip):
            continue
        error = located.error(_explain(err, loc, located, reg), loc)
        key = (dotted(loc), error.detail)
        if key not in seen:
            seen.add(key)
            out.append(error)
    return out


def _explain(err: dict[str, Any], loc: list[str | int], located: Located, reg: NodeRegistry) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    field_name = loc[-1] if loc else ""
    if kind == "missing":
        if field_name == "max_iterations":
            return ("a loop needs max_iterations (an integer from 1 to 1000): loops are bounded, "
                    "there is no default")
        return f"missing required field {field_name!r}"
    if kind == "extra_forbidden":
        parent = _model_fields(loc[:-1], located, reg)
        hint = did_you_mean(str(field_name), parent) if parent else ""
        valid = f" Valid fields: {known(parent)}" if parent else ""
        return f"unknown field {field_name!r}.{hint}{valid}"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return (f"unknown node type {tag!r}.{did_you_mean(tag, reg.names())} "
                f"Registered node types: {known(reg.names())}")
    if kind == "union_tag_not_found":
        return f"missing required field 'type'; registered node types: {known(reg.names())}"
    if kind == "literal_error":
        return f"{err['msg']} (got {err.get('input')!r})"
    return f"{err['msg']} (got {err.get('input')!r})" if "input" in err else err["msg"]


def _model_fields(loc: Sequence[str | int], located: Located, reg: NodeRegistry) -> list[str]:
    """The valid field names of the mapping at ``loc`` (a node's config, or a spec section)."""
    from agentflow.spec import model as m

    node: Any = located.data
    for part in loc:
        node = node[part] if isinstance(node, (dict, list)) else None
    if len(loc) == 2 and loc[0] == "nodes" and isinstance(node, dict) and node.get("type") in reg:
        return ["type", *reg.get(node["type"]).config.model_fields]
    if not loc:
        return [*m.WorkflowBase.model_fields, "nodes"]
    last = loc[-1]
    by_key = {"route": m.RouteBody, "loop": m.LoopBody, "map": m.MapBody, "parallel": m.ParallelBody,
              "chunking": m.ChunkingConfig, "models": m.ModelsSpec}
    if last in by_key:
        return list(by_key[last].model_fields)
    if len(loc) == 2 and loc[0] in ("inputs", "state"):
        return list(m.FieldSpec.model_fields)
    if len(loc) == 2 and loc[0] == "collections":
        return list(m.CollectionConfig.model_fields)
    return []


def import_allowed(modules: Iterable[str]) -> None:
    """Import the user's modules that register node types (only those the user allows)."""
    import sys

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise SpecError(f"cannot import allowed module {name!r}: {exc}") from None


__all__ = ["MAX_ERRORS", "SCHEMA_COMMENT", "Workflow", "apply_override", "dotted",
           "import_allowed", "load_workflow"]
