"""The runner end to end on a tiny dataset and a small YAML workflow with the offline models (a
hashing encoder instead of MiniLM): results, traces, failures, resume, the report, compare."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agentflow.errors import InputError
from agentflow.eval import RunOptions, compare, evaluate_prepared, load_dataset, prepared_flow
from agentflow.eval.formats import DatasetError
from agentflow.eval.results import read_results
from agentflow.eval.setup import Prepared
from agentflow.graph.context import Services
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.python import allow_modules
from agentflow.spec.load import load_workflow
from agentflow.spec.services import default_services
from agentflow.testing import InMemoryRetriever
from agentflow.tracing.query import TraceReader
from tests.eval import flows

QUIET = RunOptions(progress=False, concurrency=3)


@pytest.fixture()
def traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "traces.db"
    monkeypatch.setenv("AGENTFLOW_TRACES_DB", str(db))
    return db


def prepared(corpus: dict[str, str] = flows.CORPUS) -> Prepared:
    allow_modules([flows.ALLOWED])
    workflow = load_workflow("tiny_rag.yaml", text=flows.WORKFLOW)
    services = default_services(base=Services(
        models=build_router(None, env={}, encoder=HashEmbedder.lexical()),
        retrievers={"knowledge": InMemoryRetriever.from_texts(corpus)}))
    return prepared_flow(workflow.flow, services)


def dataset(tmp_path: Path, limit: int | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "animals.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in flows.ITEMS))
    return load_dataset(path, "jsonl", limit=limit)


def lines(folder: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_results(folder)}


async def test_every_item_is_scored_stored_and_linked_to_its_trace(tmp_path: Path,
                                                                   traces: Path) -> None:
    out = tmp_path / "out"
    outcome = await evaluate_prepared(prepared(), dataset(tmp_path), out, options=QUIET)
    records = lines(out)
    assert set(records) == {"cats", "owls", "crash", "whales", "hello"}
    cats = records["cats"]
    assert cats["status"] == "ok" and cats["route"] == "knowledge"
    assert cats["prediction"] == "Cats sleep for about fifteen hours a day [DOC 1]."
    assert cats["retrieved"][0] == "cats.md" and cats["metrics"]["recall@5"] == 1.0
    assert cats["metrics"]["answer_contains"] == 1.0 and cats["metrics"]["exact_match"] == 0.0
    assert cats["checks"]["faithfulness"]["computed"] is False  # the workflow's own check
    assert cats["checks"]["citations"]["computed"] is True  # computed by the evaluation
    assert cats["tokens"] > 0 and cats["model_calls"] >= 2 and cats["cost"] == 0.0
    assert records["whales"]["abstained"] and records["whales"]["metrics"]["abstention_accuracy"] == 1.0
    assert records["hello"]["route"] == "chitchat" and records["hello"]["metrics"]["routing_accuracy"] == 1.0
    crash = records["crash"]  # a failing item is recorded, and the others still ran
    assert crash["status"] == "error" and "cannot answer 'crash the workflow please'" in crash["error"]
    with TraceReader(traces) as reader:
        for record in records.values():  # each line names a run of the trace store
            assert reader.summary(record["run_id"]).status == record["status"]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary == outcome.summary
    assert summary["items"] == {"planned": 5, "finished": 5, "ok": 4, "errors": 1}
    assert summary["metrics"]["error_rate"] == 0.2 and summary["metrics"]["routing_accuracy"] == 1.0
    assert summary["counts"]["recall@5"] == 2


async def test_the_report_is_one_self_contained_page_with_plots_and_trace_links(
        tmp_path: Path, traces: Path) -> None:
    out = tmp_path / "out"
    await evaluate_prepared(prepared(), dataset(tmp_path), out, options=QUIET,
                            ui_url="http://127.0.0.1:9999")
    html = (out / "report.html").read_text()
    records = lines(out)
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert "src=" not in html and "<link" not in html  # nothing fetched
    assert html.count("<svg") == 3  # metric bars, latency histogram, cost (tokens) per item
    assert "<title>latency per item</title>" in html and "tokens per item" in html
    for record in records.values():
        assert f'href="http://127.0.0.1:9999/runs/{record["run_id"]}"' in html
    assert "error: NodeError: node &#x27;gate&#x27;" in html
    assert "routing accuracy" in html and "recall@5" in html


async def test_an_evaluation_resumes_where_it_stopped_and_retries_failures_on_request(
        tmp_path: Path, traces: Path) -> None:
    out = tmp_path / "out"
    first = await evaluate_prepared(prepared(), dataset(tmp_path, limit=2), out, options=QUIET)
    assert (first.stats.ran, first.stats.skipped) == (2, 0)
    assert first.summary["items"]["planned"] == 2
    second = await evaluate_prepared(prepared(), dataset(tmp_path), out, options=QUIET)
    assert (second.stats.ran, second.stats.skipped, second.stats.errors) == (3, 2, 1)
    assert len(read_results(out)) == 5  # no item ran twice
    again = await evaluate_prepared(prepared(), dataset(tmp_path), out, options=QUIET)
    assert (again.stats.ran, again.stats.skipped) == (0, 5)  # an error is a result too
    retried = await evaluate_prepared(
        prepared(), dataset(tmp_path), out,
        options=RunOptions(progress=False, retry_errors=True))
    assert (retried.stats.ran, retried.stats.skipped) == (1, 4)
    assert lines(out)["crash"]["status"] == "error"
    assert retried.summary["items"]["finished"] == 5  # the retried item's latest line counts


async def test_an_interrupted_evaluation_keeps_finished_items_and_drops_a_torn_line(
        tmp_path: Path, traces: Path) -> None:
    out = tmp_path / "out"
    data = dataset(tmp_path)
    flows.SLOW[data.items[3].question] = asyncio.Event()  # "whales" waits until cancelled
    try:
        task = asyncio.create_task(evaluate_prepared(
            prepared(), data, out, options=RunOptions(progress=False, concurrency=1)))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if len(read_results(out)) == 3:
                break
        task.cancel()  # what Ctrl-C does to the event loop
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        flows.SLOW.clear()
    assert set(lines(out)) == {"cats", "owls", "crash"}
    with (out / "results.jsonl").open("a") as handle:
        handle.write('{"id": "whales", "status": "ok", "metr')  # a write cut by a crash
    resumed = await evaluate_prepared(prepared(), data, out, options=QUIET)
    assert (resumed.stats.ran, resumed.stats.skipped) == (2, 3)
    assert [r["id"] for r in read_results(out)].count("whales") == 1


async def test_a_folder_holding_another_evaluation_is_not_mixed_up(tmp_path: Path,
                                                                   traces: Path) -> None:
    out = tmp_path / "out"
    await evaluate_prepared(prepared(), dataset(tmp_path, limit=1), out, options=QUIET)
    other = load_dataset(flows_jsonl(tmp_path), "jsonl")
    with pytest.raises(DatasetError, match="holds an evaluation with another dataset"):
        await evaluate_prepared(prepared(), other, out, options=QUIET)
    fresh = await evaluate_prepared(prepared(), other, out, options=QUIET, fresh=True)
    assert fresh.stats.skipped == 0 and set(lines(out)) == {"solo"}


def flows_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"id": "solo", "question": "How do owls hunt?"}) + "\n")
    return path


async def test_items_that_do_not_fit_the_workflows_inputs_are_refused_up_front(
        tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"inputs": {"query": "q"}}) + "\n")
    with pytest.raises(InputError, match="takes question: missing input"):
        await evaluate_prepared(prepared(), load_dataset(path, "jsonl"), tmp_path / "o",
                                options=QUIET)
    checker = load_dataset(Path(__file__).resolve().parents[2].parent / "shared" / "data"
                           / "halueval_qa", "halueval", limit=2)
    with pytest.raises(DatasetError, match="does not declare input.* answer, context"):
        await evaluate_prepared(prepared(), checker, tmp_path / "h", options=QUIET)


async def test_compare_marks_deltas_by_direction_and_lists_changed_items(tmp_path: Path,
                                                                         traces: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    await evaluate_prepared(prepared(), dataset(tmp_path), a, options=QUIET)
    renamed = {f"old/{name}.txt": text for name, text in flows.CORPUS.items()}  # gold ids miss
    await evaluate_prepared(prepared(renamed), dataset(tmp_path), b, options=QUIET)
    ea, eb = compare.load(a), compare.load(b)
    rows = {r.name: r for r in compare.rows(ea.summary, eb.summary)}
    assert rows["recall@5"].a == 1.0 and rows["recall@5"].b == 0.0
    assert rows["recall@5"].delta == -1.0 and rows["recall@5"].verdict == "worse"
    text = compare.table(list(rows.values()), "A", "B")
    assert "recall@5" in text and "-1.0000  worse" in text
    html = compare.render(ea, eb)
    assert "<script" not in html and html.count("<svg") == 1
    assert "By token F1: B is better on 0 items, worse on 0, the same on 2" in html
    assert "recall@5: 1.00 &rarr; <span class=\"worse\">0.00</span>" in html
    assert f"/runs/{ea.records['cats']['run_id']}" in html
    assert f"/runs/{eb.records['cats']['run_id']}" in html
    with pytest.raises(DatasetError, match="no evaluation folder"):
        compare.load(tmp_path)


async def test_a_checker_workflow_is_scored_on_halueval_by_hallucination_detection(
        tmp_path: Path, traces: Path) -> None:
    data = load_dataset(Path(__file__).resolve().parents[2].parent / "shared" / "data"
                        / "halueval_qa", "halueval", limit=4)
    checker = load_workflow(Path(__file__).resolve().parents[2] / "examples" / "evaluate"
                            / "check_answer.yaml")
    services = default_services(base=Services(
        models=build_router(None, env={}, encoder=HashEmbedder.lexical())))
    outcome = await evaluate_prepared(prepared_flow(checker.flow, services, chunks=None), data,
                                      tmp_path / "out", options=QUIET)
    records = lines(tmp_path / "out")
    for item in data.items:
        record = records[item.id]
        passed = record["checks"]["faithfulness"]["passed"]
        assert record["checks"]["faithfulness"]["computed"] is False
        assert record["metrics"]["hallucination_detection"] == float(passed == item.gold.faithful)
    assert outcome.summary["counts"]["hallucination_detection"] == 4
