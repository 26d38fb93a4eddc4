"""The typed payloads of trace events: producers and readers agree on one spelling per field."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentflow.checks import CheckResult, record_check
from agentflow.graph.context import NodeTracer
from agentflow.testing.models import FakeRouter
from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.cli import describe_span
from agentflow.tracing.events import Event, EventCollector
from agentflow.tracing.payloads import (
    PAYLOADS,
    CheckPayload,
    LoopPayload,
    ModelCallPayload,
    Payload,
    RetrievalPayload,
    payload_type,
    summarize,
)
from tests.tracing.demo import make_flow

ENGINE_KINDS = ("run", "node", "loop", "loop_pass", "map", "map_item", "branch", "route")


def test_every_event_the_engine_emits_parses_into_declared_fields_only() -> None:
    collector = EventCollector()
    asyncio.run(make_flow().arun({"question": "What is a loop?"}, hooks=[collector]))
    seen = set()
    for event in collector.events:
        payload = event.payload
        assert isinstance(payload, payload_type(event.kind))
        if payload.span_kind in ENGINE_KINDS:
            seen.add(payload.span_kind)
            assert payload.extra == {}, f"{event.kind} carries undeclared keys {payload.extra}"
    assert seen == set(ENGINE_KINDS)


def test_the_payload_type_of_an_event_kind_is_its_span_kinds() -> None:
    assert payload_type("loop_started") is payload_type("loop_finished") is LoopPayload
    assert payload_type("model_call") is ModelCallPayload
    assert payload_type("my_own_event") is Payload and payload_type("custom") is Payload
    assert all(cls.span_kind == kind for kind, cls in PAYLOADS.items())


def test_latency_is_latency_s_and_the_old_spelling_is_still_read() -> None:
    old = ModelCallPayload.from_data({"alias": "large", "latency": 0.25})
    assert old.latency_s == 0.25 and old.extra == {}
    assert old.to_data() == {"alias": "large", "latency_s": 0.25}
    assert summarize("model_call", {"latency": 0.25}) == {"latency_s": 0.25}
    both = ModelCallPayload.from_data({"latency": 9.0, "latency_s": 0.5})
    assert both.latency_s == 0.5  # the current spelling wins over the old one


def test_to_data_keeps_undeclared_keys_and_leaves_out_unset_fields() -> None:
    call = ModelCallPayload(alias="small", tokens={"prompt": 3, "completion": 1, "total": 4},
                            extra={"prompt": "classify.j2"})
    data = call.to_data()
    assert data == {"prompt": "classify.j2", "alias": "small",
                    "tokens": {"prompt": 3, "completion": 1, "total": 4}}
    assert ModelCallPayload.from_data(data) == call
    assert call.summary() == {"alias": "small", "tokens": 4}


def test_a_retrieval_summary_counts_queries_and_hits_and_names_no_collection() -> None:
    data = {"queries": ["a", "b"], "hits": ["c1", "c2", "c3"], "top_k": 3, "collection": "docs"}
    assert summarize("retrieval", data) == {"top_k": 3, "hits": 3, "queries": 2}
    assert RetrievalPayload.from_data(data).extra == {"collection": "docs"}


def test_summaries_clip_long_texts_and_skip_kinds_without_one() -> None:
    check = CheckPayload(kind="faithfulness", score=0.5, verdict="x" * 300, passed=False)
    assert check.summary()["verdict"] == "x" * 200 + "…"
    assert summarize("node", {"update": {"answer": "a"}}) == {}
    assert summarize("custom", {"anything": 1}) == {}


def test_traces_show_reads_a_store_written_with_the_old_spelling(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    store = SQLiteTraceStore(db)
    run = "r" * 32
    for event in (
        Event("run_started", run, run, None, "old", data={"inputs": {}}),
        Event("model_call", run, f"{run}/model_call:1", run, "large",
              data={"alias": "large", "model": "m", "latency": 0.2, "cost": 0.001,
                    "tokens": {"prompt": 5, "completion": 5, "total": 10}}),
        Event("run_finished", run, run, None, "old", status="ok"),
    ):
        store.on_event(event=event)
    store.close()
    # a store written before the payloads were typed summarised the old key under its old name
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE spans SET summary = ? WHERE kind = 'model_call'",
                     ['{"alias": "large", "model": "m", "latency": 0.2, "tokens": 10, "cost": 0.001}'])
    with TraceReader(db) as reader:
        (span,) = reader.spans(run, with_data=True)
    assert describe_span(span).startswith("model_call large -> m  10 tok  $0.0010")
    assert ModelCallPayload.from_data(span["data"]).latency_s == 0.2


def _tracer(collector: EventCollector) -> NodeTracer:
    return NodeTracer(run_id="r", parent_id="r/node:n", node="n",
                      emit_event=lambda e: collector.on_event(event=e))


def test_the_model_routers_calls_parse_into_declared_fields_only() -> None:
    collector = EventCollector()
    router = FakeRouter({"small": ["hello"]})
    asyncio.run(router.complete("small", [{"role": "user", "content": "hi"}],
                                tracer=_tracer(collector)))
    (event,) = collector.of_kind("model_call")
    call = event.payload
    assert isinstance(call, ModelCallPayload) and call.extra == {}
    assert call.alias == "small" and call.latency_s is not None and call.response == "hello"


def test_a_check_results_payload_parses_into_declared_fields_only() -> None:
    collector = EventCollector()
    result = CheckResult(name="faith", kind="faithfulness", score=0.9, passed=True,
                         threshold=0.5, reason="supported")
    record_check(_tracer(collector), result)
    (event,) = collector.of_kind("check")
    check = event.payload
    assert isinstance(check, CheckPayload) and check.extra == {}
    assert check.kind == "faithfulness" and check.summary() == {
        "score": 0.9, "verdict": "pass", "passed": True, "threshold": 0.5}


def test_a_node_records_a_typed_payload_as_its_wire_mapping() -> None:
    collector = EventCollector()
    _tracer(collector).record("retrieval", "docs", data=RetrievalPayload(queries=["q"], top_k=2))
    (event,) = collector.events
    assert event.data == {"queries": ["q"], "top_k": 2}
