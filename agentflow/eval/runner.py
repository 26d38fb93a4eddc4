"""Run a workflow over a dataset's items, concurrently, one result line per finished item.

Each item is one ``flow.arun`` with the default trace hooks, so it is a run in the trace store
(its ``run_id`` is in the result line and the report links to its page in the trace viewer). Up
to ``concurrency`` items run at once on one event loop. As soon as an item finishes its line goes
to ``results.jsonl`` (flushed), so an interrupted evaluation loses at most the items in flight,
and a rerun skips every id the file holds. An item that fails (its run raises, or scoring it
fails) is recorded with its error and the evaluation goes on; ``retry_errors`` runs such items
again.

Tokens and cost are those of the item's own run: a hook adds up the run's ``model_call`` events
(the router's usage accounting), whatever the trace store does with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentflow.checks import CheckResult, Judge
from agentflow.errors import ConfigError, InputError
from agentflow.eval.formats import Dataset, DatasetError, Item
from agentflow.eval.results import CACHES, ResultsWriter, latest_by_id, read_results, write_json
from agentflow.eval.scoring import abstained, observe, score
from agentflow.eval.setup import Prepared
from agentflow.tracing.defaults import hooks_or_warn
from agentflow.tracing.events import Event
from agentflow.tracing.spans import total_tokens

RETRIEVED_KEPT = 20
"""Retrieved document ids kept per result line (recall@k needs at most the first k)."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How the items are run and scored."""

    concurrency: int = 4
    judge: bool = True
    """Compute the checks the workflow did not run (citations, faithfulness, relevancy)."""
    recall_ks: tuple[int, ...] = (5, 10)
    retry_errors: bool = False
    progress: bool = True
    trace: bool = True


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one invocation did: items found finished, run now, and failed now."""

    skipped: int
    ran: int
    errors: int


class UsageMeter:
    """A trace hook that totals the tokens and cost of one run's model calls."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.tokens = 0
        self.cost: float | None = None
        self.calls = 0
        self.cache_hits = 0
        """Model calls answered from the model cache (record/replay): fast and free, which a
        comparison of two evaluations must know."""

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        if event.kind == "run_started" and self.run_id is None:
            self.run_id = event.run_id
        elif event.kind == "model_call":
            self.calls += 1
            self.cache_hits += bool(event.data.get("cache_hit"))
            self.tokens += _tokens(event.data.get("tokens"))
            cost = event.data.get("cost")
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                self.cost = (self.cost or 0.0) + float(cost)


def _tokens(value: Any) -> int:
    """Total tokens of a model call: the router's ``{"prompt", "completion", "total"}`` or any
    usage shape the trace store reads."""
    if isinstance(value, Mapping) and isinstance(value.get("total"), int):
        return int(value["total"])
    if isinstance(value, Mapping) and {"prompt", "completion"} <= set(value):
        return int(value.get("prompt") or 0) + int(value.get("completion") or 0)
    return total_tokens(value) or 0


def make_judge(services: Any) -> Judge | None:
    """The ``judge`` alias as a judge, or None when the services' router has no such alias."""
    models = getattr(services, "models", None)
    try:
        models.check_alias("judge")
    except (ConfigError, AttributeError):
        return None
    return Judge(models, "judge", embed_alias="embed")


def workflow_inputs(prepared: Prepared, dataset: Dataset) -> tuple[str, ...]:
    """The inputs the workflow declares; a :class:`DatasetError` when the set needs others or the
    first item does not fit them."""
    compiled = prepared.flow.compile()
    missing = [n for n in dataset.needs_inputs if n not in compiled.inputs]
    if missing:
        raise DatasetError(
            f"{dataset.format} items give {', '.join(dataset.needs_inputs)}, but workflow "
            f"{prepared.flow.name!r} does not declare input(s) {', '.join(missing)} (its inputs: "
            f"{', '.join(compiled.inputs)}); evaluate a workflow that takes them")
    if dataset.items:
        first = dataset.items[0]
        given = {k: v for k, v in first.inputs.items() if k in compiled.inputs}
        try:
            compiled.schema.validate_input(given, compiled.inputs)
        except InputError as exc:
            raise DatasetError(
                f"item {first.id!r} of {dataset.format} gives {', '.join(first.inputs)}; workflow "
                f"{prepared.flow.name!r} takes {', '.join(compiled.inputs)}: {exc}") from None
    return compiled.inputs


async def run_items(prepared: Prepared, dataset: Dataset, folder: Path,
                    options: RunOptions = RunOptions()) -> RunStats:
    """Run every item of ``dataset`` that ``folder/results.jsonl`` does not hold yet."""
    from tqdm import tqdm

    inputs = workflow_inputs(prepared, dataset)
    done = latest_by_id(read_results(folder))
    todo = [(i, item) for i, item in enumerate(dataset.items)
            if item.id not in done or (options.retry_errors and done[item.id].get("status") != "ok")]
    skipped = len(dataset.items) - len(todo)
    judge = make_judge(prepared.services) if options.judge else None
    hooks = hooks_or_warn("the evaluation's items") if options.trace else []
    writer = ResultsWriter(folder)
    bar = tqdm(total=len(dataset.items), initial=skipped, desc=f"eval {dataset.format}",
               unit="item", disable=not options.progress, file=sys.stderr, dynamic_ncols=True)
    limit = asyncio.Semaphore(max(1, options.concurrency))
    errors = 0
    cache_file = embedding_cache_file(prepared.services.models)
    vectors_before = embedding_vectors(cache_file)

    async def one(index: int, item: Item) -> None:
        nonlocal errors
        async with limit:
            record = await run_one(index, item, prepared, inputs=inputs, judge=judge,
                                   hooks=hooks, recall_ks=options.recall_ks)
        writer.write(record)
        errors += record["status"] != "ok"
        bar.update(1)
        if errors:
            bar.set_postfix(errors=errors, refresh=False)

    try:
        await asyncio.gather(*(one(i, item) for i, item in todo))
    finally:
        writer.close()
        bar.close()
        record_caches(folder, vectors_before, embedding_vectors(cache_file), ran=len(todo))
        if hooks:
            from agentflow.tracing import flush_default_hooks

            flush_default_hooks()
    return RunStats(skipped=skipped, ran=len(todo), errors=errors)


async def run_one(index: int, item: Item, prepared: Prepared, *, inputs: Sequence[str],
                  judge: Judge | None, hooks: Sequence[Any],
                  recall_ks: Sequence[int]) -> dict[str, Any]:
    """Run and score one item; its result line (never raises for the item's own failures)."""
    meter = UsageMeter()
    state: Mapping[str, Any] | None = None
    error: str | None = None
    run_id: str | None = None
    started = time.perf_counter()
    try:
        result = await prepared.flow.arun({k: v for k, v in item.inputs.items() if k in inputs},
                                          services=prepared.services, hooks=[*hooks, meter],
                                          tags={"origin": "eval"})
        state, run_id = result.state, result.run_id
    except Exception as exc:  # one failing item must not stop the evaluation
        run_id = getattr(getattr(exc, "result", None), "run_id", None)
        error = f"{type(exc).__name__}: {exc}"
    record: dict[str, Any] = {
        "index": index, "id": item.id, "status": "ok", "error": None,
        "inputs": dict(item.inputs), "gold": _gold(item),
        "run_id": run_id or meter.run_id, "latency_s": round(time.perf_counter() - started, 4),
        "tokens": meter.tokens, "cost": meter.cost, "model_calls": meter.calls,
        "cache_hits": meter.cache_hits,
    }
    if state is not None:
        try:
            record.update(await _scored(item, state, prepared, judge, recall_ks))
        except Exception as exc:  # a scoring failure is this item's error, not the run's
            error = f"scoring failed: {type(exc).__name__}: {exc}"
    if error is not None:
        record.update(status="error", error=error)
    record["finished"] = time.time()
    return record


async def _scored(item: Item, state: Mapping[str, Any], prepared: Prepared, judge: Judge | None,
                  recall_ks: Sequence[int]) -> dict[str, Any]:
    observed = observe(state, prepared.outputs)
    metrics, checks = await score(item, observed, prepared.outputs, judge=judge,
                                  recall_ks=recall_ks)
    return {
        "prediction": observed.answer, "route": observed.route, "answer_status": observed.status,
        "abstained": abstained(observed, prepared.outputs),
        "retrieved": observed.retrieved[:RETRIEVED_KEPT],
        "checks": {kind: _check(r, computed=kind not in {c.kind for c in observed.checks.values()})
                   for kind, r in checks.items()},
        "metrics": metrics,
    }


def embedding_cache_file(models: Any) -> Path | None:
    """The on-disk embedding cache the run's router writes (``models.embedding_cache.path``, or
    ``$AGENTFLOW_EMBEDDING_CACHE`` where the router was built); None when it has none."""
    path = getattr(getattr(models, "backends", None), "embedding_cache", None)
    return Path(path) if path else None


def embedding_vectors(path: Path | None) -> int | None:
    """How many vectors the on-disk embedding cache at ``path`` holds (None without one); read
    only, so an evaluation that embeds nothing creates no cache file."""
    import sqlite3

    if path is None or not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro",
                                                uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
    except sqlite3.Error:
        return None


def record_caches(folder: Path, before: int | None, after: int | None, *, ran: int) -> None:
    """Add this invocation's embedding-cache use to ``folder/caches.json``: how many texts it
    embedded anew (a cold cache) for how many items. A comparison reads it to tell a latency
    drop that comes from a warm cache."""
    path = folder / CACHES
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    runs = data.get("runs") if isinstance(data.get("runs"), list) else []
    runs.append({"items": ran, "embedding_cache_before": before, "embedding_cache_after": after,
                 "embedded": None if before is None and after is None else (after or 0) - (before or 0),
                 "at": time.time()})
    write_json(path, {"runs": runs})


def _check(result: CheckResult, *, computed: bool) -> dict[str, Any]:
    return {"score": result.score, "passed": result.passed, "computed": computed,
            "reason": result.reason[:300], "error": result.error}


def _gold(item: Item) -> dict[str, Any]:
    return {k: v for k, v in asdict(item.gold).items() if v not in (None, ())}


