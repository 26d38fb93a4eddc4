"""Load a YAML workflow: parse, apply ``--set`` overrides, validate, build the flow.

Every problem is a :class:`SpecError` with the file, line and column, the YAML path, what was
expected and the valid options (with a did-you-mean for names).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentflow.errors import GraphBuildError, SpecError, did_you_mean, known
from agentflow.graph.flow import Flow
from agentflow.nodes.registry import NodeRegistry, registry
from agentflow.spec.build import StepBuilder, state_model
from agentflow.spec.model import SPEC_VERSIONS, STEP_KINDS, WorkflowBase, workflow_model
from agentflow.spec.yamlio import Located, dotted, load, load_file

SCHEMA_COMMENT = "# yaml-language-server: $schema={path}"


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
        from agentflow.retrieval.catalog import CollectionSpec

        out = []
        for name, c in self.spec.collections.items():
            sources = [c.source] if isinstance(c.source, str) else list(c.source)
            out.append(CollectionSpec(
                name=name, sources=tuple(str((self.base_dir / s).resolve()) for s in sources),
                chunking=c.chunking, embedder=c.embedder, store=c.store, field_map=c.field_map))
        return out

    async def aservices(self, *, profile: str | None = None, root: str | Path = ".",
                        progress: bool = True) -> Any:
        """The services of a run: models and prompts from configuration, and the declared
        collections, ingested first where their sources changed (with a progress bar)."""
        from agentflow.retrieval.catalog import prepare_collections
        from agentflow.spec.services import default_services

        prepared = {}
        if self.spec.collections:
            prepared = await prepare_collections(self.collections(), base_dir=root,
                                                 progress=progress)
        services = default_services(
            profile=profile, workflow_profile=self.spec.models.profile, root=root,
            base=self.flow.services,
            retrievers={name: r for name, (r, _) in prepared.items()} if prepared else None)
        changed = [r for r, report in prepared.values() if report.chunks_written]
        prepare = getattr(services.models, "prepare", None)
        if changed and prepare is not None:  # new passages: local models get ready for them
            passages = [row.get("text", "") for r in changed for row in await r.store.scan(["text"])]
            await asyncio.to_thread(prepare, passages, progress=progress)
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
) -> Workflow:
    """Load and build a workflow from a file (or from ``text``, named ``source``).

    ``profile`` is the one the run will use (``--profile``), when it overrides the workflow's:
    the model aliases the nodes name are checked against it.
    """
    from agentflow.nodes import load_builtins

    load_builtins()
    reg = reg or registry
    located = load(text, str(source)) if text is not None else load_file(source)
    for item in overrides:
        apply_override(located, item)
    _check_top(located)
    try:
        spec = workflow_model(reg).model_validate(located.data)
    except ValidationError as exc:
        raise _spec_error(exc, located, reg) from None
    check_references(spec, located, profile=profile)
    flow = build_flow(spec, located, reg)
    path = Path(source) if text is None else None
    return Workflow(spec=spec, flow=flow, path=path, located=located)


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
                     profile: str | None = None) -> None:
    """Model aliases, prompt files and template variables the nodes name must exist.

    Aliases are those of the workflow's profile (``agentflow.yaml`` and the built-in profiles);
    prompts are looked up like at run time (the project, then agentflow's own templates).
    """
    from agentflow.errors import ConfigError
    from agentflow.models import build_router
    from agentflow.prompts import PromptStore
    from agentflow.prompts.templates import unknown_variables

    nodes = getattr(spec, "nodes", {})
    if not nodes:
        return
    try:
        router = build_router(Path(root) / "agentflow.yaml", profile=profile,
                              workflow_profile=spec.models.profile, root=root)
    except ConfigError as exc:
        raise located.error(str(exc), ("models", "profile")) from None
    prompts = PromptStore.for_project(root)
    for name, node_spec in nodes.items():
        for field_name in ALIAS_FIELDS:
            alias = getattr(node_spec, field_name, None)
            if isinstance(alias, str):
                try:
                    router.check_alias(alias)
                except ConfigError as exc:
                    raise located.error(str(exc), ("nodes", name, field_name)) from None
        prompt = getattr(node_spec, "prompt", None)
        if not isinstance(prompt, str) or "{" in prompt:
            continue
        try:
            prompts.template(prompt)
        except ConfigError as exc:
            raise located.error(str(exc), ("nodes", name, "prompt")) from None
        variables = getattr(node_spec, "variables", None)
        if isinstance(variables, dict):
            missing, _unused = unknown_variables(prompt, list(variables), root=root)
            if missing:
                raise located.error(
                    f"template {prompt!r} uses variable(s) {known(missing)}, which the node does "
                    f"not give; variables given: {known(variables)}. Map each to a state field "
                    "under variables:", ("nodes", name, "variables"))


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
        value = yaml.safe_load(raw) if raw else ""
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
def _check_top(located: Located) -> None:
    data = located.data
    if not isinstance(data, dict):
        raise located.error("a workflow is a mapping with version, name, nodes and flow", ())
    version = data.get("version")
    if version is None:
        raise located.error(f"missing required field 'version'; supported: "
                            f"{', '.join(map(str, SPEC_VERSIONS))}", ())
    if version not in SPEC_VERSIONS:
        raise located.error(f"unknown version {version!r}; supported: "
                            f"{', '.join(map(str, SPEC_VERSIONS))}", ("version",))


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


def _spec_error(exc: ValidationError, located: Located, reg: NodeRegistry) -> SpecError:
    errors = exc.errors()
    err = errors[0]
    loc = _real_loc(err["loc"], located.data, reg.names())
    message = _explain(err, loc, located, reg)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return located.error(message, loc)


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
        return list(m.CollectionSpec.model_fields)
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


__all__ = ["SCHEMA_COMMENT", "Workflow", "apply_override", "dotted", "import_allowed",
           "load_workflow"]
