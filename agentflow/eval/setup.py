"""Fit a workflow to a dataset: the set's corpus as its ``knowledge`` collection, the set's
routing defaults on its ``classify`` node, the services of the runs.

What the set brings is applied as ``--set`` overrides *before* the user's own, so a user's
``--set`` always wins. For a YAML workflow:

- corpus: ``collections.knowledge.source`` becomes the set's .jsonl file, with its ``field_map``
  (the record id is the set's document id, which gold ids name) and the set's ``chunking``; the
  collection is stored under ``.agentflow/eval/corpora/<format>/`` (never in the project's own
  ``knowledge`` store, which it would otherwise replace), so it is ingested once and reused;
- routing: each label the set describes (``knowledge`` for the QA sets) gets the set's
  description and example questions; an intent set replaces all labels. The route node is the
  first ``classify`` node, or ``--route-node``.

A Python flow (``module:attr``) keeps its own services; the set's corpus and routing do not apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow.errors import did_you_mean, known
from agentflow.eval.formats import Dataset, DatasetError
from agentflow.eval.scoring import Outputs
from agentflow.graph.context import Services
from agentflow.graph.flow import Flow
from agentflow.graph.steps import NodeStep, Step

CORPORA = Path(".agentflow") / "eval" / "corpora"


@dataclass(slots=True)
class Prepared:
    """A workflow ready to be evaluated on a dataset."""

    flow: Flow
    services: Services
    outputs: Outputs
    applied: list[str] = field(default_factory=list)
    """The overrides that came from the dataset."""
    notes: list[str] = field(default_factory=list)
    """What the dataset could not apply to this workflow, and why."""


def node_steps(flow: Flow) -> Iterator[NodeStep]:
    """Every node of a flow, declared or inline, each once."""
    seen: set[str] = set()
    stack: list[Step] = [*flow.nodes, flow.steps]
    while stack:
        step = stack.pop(0)
        if isinstance(step, NodeStep):
            if step.name not in seen:
                seen.add(step.name)
                yield step
            continue
        stack.extend(step.children())


def route_node(flow: Flow, name: str | None) -> NodeStep | None:
    """The ``classify`` node routing accuracy scores: ``name``, or the flow's first one."""
    nodes = [n for n in node_steps(flow) if n.type.name == "classify"]
    if name is None:
        return nodes[0] if nodes else None
    found = next((n for n in nodes if n.name == name), None)
    if found is None:
        names = [n.name for n in nodes]
        raise DatasetError(f"--route-node {name!r} is no classify node of {flow.name!r}."
                           f"{did_you_mean(name, names)} Classify nodes: {known(names)}")
    return found


def outputs_of(flow: Flow, *, answer: str, chunks: str | None, route: NodeStep | None) -> Outputs:
    """Where the flow's state holds the metrics' inputs (fields it does not have are None)."""
    fields = flow.compile().schema.fields
    if answer not in fields:
        raise DatasetError(f"--answer-field {answer!r} is no field of {flow.name!r}'s state."
                           f"{did_you_mean(answer, fields)} Fields: {known(fields)}")
    config = route.config if route is not None else None
    return Outputs(
        answer=answer,
        chunks=chunks if chunks in fields else None,
        route=getattr(config, "output", None),
        out_of_scope=getattr(config, "out_of_scope", None),
    )


def dataset_overrides(data: dict[str, Any], dataset: Dataset, *, collection: str,
                      route: str | None) -> tuple[list[str], list[str]]:
    """``(overrides, notes)``: the dataset's settings as ``--set`` items for a workflow whose
    YAML (with the user's overrides applied) is ``data``."""
    overrides: list[str] = []
    notes: list[str] = []
    corpus = dataset.corpus
    if corpus is not None:
        if collection in (data.get("collections") or {}):
            base = f"collections.{collection}"
            overrides += [
                f"{base}.source={corpus.path.resolve()}",
                f"{base}.field_map={json.dumps(dict(corpus.field_map))}",
                f"{base}.chunking={json.dumps(dict(corpus.chunking))}",
                f"{base}.store=embedded",
            ]
        else:
            notes.append(f"the workflow declares no collection {collection!r}, so the corpus of "
                         f"{dataset.format} is not used (choose one with --collection)")
    routing = dataset.routing
    nodes = data.get("nodes") or {}
    if routing is None:
        return overrides, notes
    if route is None:
        notes.append(f"the workflow has no classify node, so {dataset.format}'s labels are not "
                     "applied")
        return overrides, notes
    base = f"nodes.{route}"
    labels = nodes[route].get("labels")
    described = len(overrides)
    if routing.replace:
        specs = {name: label.as_spec() for name, label in routing.labels.items()}
        overrides.append(f"{base}.labels={json.dumps(specs, ensure_ascii=False)}")
    else:
        for name, label in routing.labels.items():
            if isinstance(labels, dict) and isinstance(labels.get(name), dict):
                # field by field: what else the label declares (``from_collection``) is kept
                overrides.extend(f"{base}.labels.{name}.{key}={json.dumps(value, ensure_ascii=False)}"
                                 for key, value in label.as_spec().items())
            elif isinstance(labels, dict) and name in labels:
                overrides.append(f"{base}.labels.{name}="
                                 f"{json.dumps(label.as_spec(), ensure_ascii=False)}")
            else:
                notes.append(f"classify node {route!r} has no label {name!r} to re-describe; its "
                             "labels are kept")
    if len(overrides) == described:  # no label of the set applies: leave the node alone
        return overrides, notes
    if routing.threshold is not None:
        overrides.append(f"{base}.threshold={routing.threshold}")
    if routing.out_of_scope is not None:
        overrides.append(f"{base}.out_of_scope={routing.out_of_scope}")
    return overrides, notes


async def prepare(
    target: str,
    dataset: Dataset,
    *,
    overrides: Sequence[str] = (),
    profile: str | None = None,
    collection: str = "knowledge",
    route: str | None = None,
    answer: str = "answer",
    chunks: str | None = "chunks",
    use_defaults: bool = True,
    root: str | Path = ".",
    progress: bool = True,
) -> Prepared:
    """Load the workflow ``target`` (a YAML file or ``module:attr``) for ``dataset``, ingest what
    it searches, and build its services."""
    if not target.endswith((".yaml", ".yml")):
        return _python_flow(target, dataset, profile=profile, route=route, answer=answer,
                            chunks=chunks, overrides=overrides)
    from agentflow.spec.load import apply_override, load_workflow
    from agentflow.spec.yamlio import load_file

    located = load_file(target)
    for item in overrides:
        apply_override(located, item)
    data = located.data if isinstance(located.data, dict) else {}
    classify = [n for n, spec in (data.get("nodes") or {}).items()
                if isinstance(spec, dict) and spec.get("type") == "classify"]
    chosen = route or (classify[0] if classify else None)
    applied, notes = ([], []) if not use_defaults else dataset_overrides(
        data, dataset, collection=collection, route=chosen if chosen in classify else None)
    workflow = load_workflow(target, overrides=[*applied, *overrides])
    flow = workflow.flow
    outputs = outputs_of(flow, answer=answer, chunks=chunks, route=route_node(flow, route))
    services = await _services(workflow, dataset, collection=collection, profile=profile,
                               root=Path(root), own_store=any(a.startswith(
                                   f"collections.{collection}.source=") for a in applied),
                               progress=progress)
    return Prepared(flow=flow, services=services, outputs=outputs, applied=applied, notes=notes)


async def _services(workflow: Any, dataset: Dataset, *, collection: str, profile: str | None,
                    root: Path, own_store: bool, progress: bool) -> Services:
    from agentflow.retrieval.catalog import prepare_retrievers
    from agentflow.spec.services import default_services

    services = default_services(profile=profile, workflow_profile=workflow.spec.models.profile,
                                root=root, base=workflow.flow.services)
    specs = workflow.collections()
    retrievers: dict[str, Any] = {}
    mine = [s for s in specs if own_store and s.name == collection]
    rest = [s for s in specs if s not in mine]
    if mine:  # embedded through the run's router: the profile chooses the embedding model
        retrievers |= await prepare_retrievers(mine, base_dir=root / CORPORA / dataset.format,
                                               progress=progress, models=services.models)
    if rest:
        retrievers |= await prepare_retrievers(rest, base_dir=root, progress=progress,
                                               models=services.models)
    return default_services(root=root, base=services, retrievers=retrievers or None)


def _python_flow(target: str, dataset: Dataset, *, profile: str | None, route: str | None,
                 answer: str, chunks: str | None, overrides: Sequence[str]) -> Prepared:
    from agentflow.spec.services import default_services
    from agentflow.spec.targets import load_flow

    if overrides:
        raise DatasetError("--set applies to YAML workflows only; "
                           f"{target} is a Python flow")
    flow = load_flow(target)
    notes = []
    if dataset.corpus is not None or dataset.routing is not None:
        notes.append(f"{target} is a Python flow: {dataset.format}'s corpus and labels are not "
                     "applied (its own services are used)")
    outputs = outputs_of(flow, answer=answer, chunks=chunks, route=route_node(flow, route))
    services = default_services(profile=profile, base=flow.services)
    return Prepared(flow=flow, services=services, outputs=outputs, notes=notes)
