"""Evaluate a workflow on a dataset, from Python: what ``agentflow eval`` does.

.. code-block:: python

    from agentflow.eval import evaluate, load_dataset

    data = load_dataset("../shared/data/clapnq_dev", "clapnq", limit=20)
    outcome = await evaluate("graphs/agentic_rag.yaml", data, "eval-out/clapnq")
    outcome.summary["metrics"]["token_f1"]

A flow with services of its own (test doubles, say) goes through :func:`evaluate_prepared` with
:func:`prepared_flow`. Either way the folder gets ``eval.json``, ``results.jsonl``,
``metrics.json`` and ``report.html``; running again into the same folder resumes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow.eval import report
from agentflow.eval.formats import Dataset
from agentflow.eval.results import (
    MANIFEST,
    METRICS,
    REPORT,
    check_resumable,
    read_results,
    start_fresh,
    write_json,
)
from agentflow.eval.runner import RunOptions, RunStats, run_items
from agentflow.eval.setup import Prepared, outputs_of, prepare, route_node
from agentflow.eval.summary import select, summarize
from agentflow.graph.context import Services
from agentflow.graph.flow import Flow
from agentflow.redaction import redact


@dataclass(slots=True)
class Outcome:
    """What an evaluation wrote and did."""

    folder: Path
    summary: dict[str, Any]
    stats: RunStats


def prepared_flow(flow: Flow, services: Services, *, route: str | None = None,
                  answer: str = "answer", chunks: str | None = "chunks") -> Prepared:
    """A flow and its services as they are, ready for :func:`evaluate_prepared`."""
    return Prepared(flow=flow, services=services,
                    outputs=outputs_of(flow, answer=answer, chunks=chunks,
                                       route=route_node(flow, route)))


async def evaluate(
    target: str,
    dataset: Dataset,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    profile: str | None = None,
    options: RunOptions = RunOptions(),
    collection: str = "knowledge",
    route: str | None = None,
    answer: str = "answer",
    chunks: str | None = "chunks",
    use_defaults: bool = True,
    fresh: bool = False,
    ui_url: str = report.UI_URL,
) -> Outcome:
    """Fit the workflow ``target`` to ``dataset`` (see :mod:`agentflow.eval.setup`), run the items
    ``out`` does not hold yet, and write the metrics and the report there."""
    folder = Path(out)
    manifest = {"workflow": target, "overrides": list(overrides), "profile": profile,
                **_dataset_fields(dataset)}
    _begin(folder, manifest, fresh)
    prepared = await prepare(target, dataset, overrides=overrides, profile=profile,
                             collection=collection, route=route, answer=answer, chunks=chunks,
                             use_defaults=use_defaults, progress=options.progress)
    manifest.update(applied=prepared.applied, notes=[*dataset.notes, *prepared.notes])
    return await _run(prepared, dataset, folder, manifest, options, ui_url)


async def evaluate_prepared(prepared: Prepared, dataset: Dataset, out: str | Path, *,
                            options: RunOptions = RunOptions(), fresh: bool = False,
                            ui_url: str = report.UI_URL) -> Outcome:
    """Evaluate a flow whose services are already built (see :func:`prepared_flow`)."""
    folder = Path(out)
    manifest = {"workflow": prepared.flow.name, "overrides": [], "profile": None,
                **_dataset_fields(dataset), "applied": prepared.applied,
                "notes": [*dataset.notes, *prepared.notes]}
    _begin(folder, manifest, fresh)
    return await _run(prepared, dataset, folder, manifest, options, ui_url)


def write_outputs(folder: Path, dataset: Dataset, manifest: dict[str, Any], *,
                  ui_url: str = report.UI_URL) -> dict[str, Any]:
    """Summarise the folder's results for the dataset's items into ``metrics.json`` and
    ``report.html``; returns the summary. Also used after an interruption."""
    records = select(read_results(folder), [item.id for item in dataset.items])
    summary = summarize(records, planned=len(dataset.items), manifest=manifest)
    write_json(folder / METRICS, summary)
    # redacted again: a folder written before redaction existed may hold credentials
    (folder / REPORT).write_text(report.render(redact(summary), redact(records), ui_url=ui_url),
                                 encoding="utf-8")
    return summary


def _dataset_fields(dataset: Dataset) -> dict[str, Any]:
    return {"format": dataset.format, "dataset": str(dataset.source.resolve()),
            "split": dataset.split, "description": dataset.description,
            "notes": list(dataset.notes)}


def _begin(folder: Path, manifest: dict[str, Any], fresh: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if fresh:
        start_fresh(folder)
    check_resumable(folder, manifest)
    manifest["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(folder / MANIFEST, manifest)


async def _run(prepared: Prepared, dataset: Dataset, folder: Path, manifest: dict[str, Any],
               options: RunOptions, ui_url: str) -> Outcome:
    declared = prepared.flow.compile().inputs
    unused = sorted({k for item in dataset.items for k in item.inputs} - set(declared))
    if unused:
        manifest["notes"] = [*manifest.get("notes", []), (
            f"item field(s) {', '.join(unused)} are no inputs of the workflow (inputs: "
            f"{', '.join(declared)}) and are not passed to it")]
    write_json(folder / MANIFEST, manifest)
    stats = await run_items(prepared, dataset, folder, options)
    summary = write_outputs(folder, dataset, manifest, ui_url=ui_url)
    return Outcome(folder=folder, summary=summary, stats=stats)
