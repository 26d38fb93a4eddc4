"""OpenTelemetry export: GenAI / OpenInference attributes, stable ids, a real OTLP/HTTP round trip."""

from __future__ import annotations

import argparse
import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentflow.tracing import OTelExporter, SQLiteTraceStore, TraceReader
from agentflow.tracing.otel import export_spans, span_id_of
from agentflow.tracing.query import run_records

from .demo import API_KEY, make_flow


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], str, Path]:
    memory = InMemorySpanExporter()
    hook = OTelExporter(memory)
    db = tmp_path_factory.mktemp("otel") / "t.db"
    store = SQLiteTraceStore(db)
    result = asyncio.run(make_flow().arun({"question": "What is a loop?"}, hooks=[hook, store]))
    hook.close()
    store.close()
    return list(memory.get_finished_spans()), result.run_id, db


def _one(spans: list[Any], **attrs: Any) -> list[Any]:
    return [s for s in spans if all(s.attributes.get(k) == v for k, v in attrs.items())]


def test_every_span_is_exported_in_one_trace_with_parent_links(exported) -> None:
    spans, run_id, _ = exported
    assert len(spans) == 36  # the run and its 35 spans
    assert {s.context.trace_id for s in spans} == {int(run_id, 16)}
    ids = {s.context.span_id for s in spans}
    (root,) = [s for s in spans if s.parent is None]
    assert all(s.parent.span_id in ids for s in spans if s is not root)
    assert root.name == "invoke_workflow demo_rag"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "demo_rag"
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert '"question":"What is a loop?"' in root.attributes["input.value"]
    assert root.end_time > root.start_time


def test_model_calls_follow_the_genai_and_openinference_conventions(exported) -> None:
    spans, _, _ = exported
    calls = _one(spans, **{"openinference.span.kind": "LLM"})
    assert len(calls) == 4
    (answer,) = [c for c in calls if c.attributes.get("agentflow.pass_index") == 2]
    a = answer.attributes
    assert answer.name == "chat offline/extractive"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "offline/extractive"
    assert a["llm.model_name"] == "offline/extractive" and a["agentflow.model.alias"] == "large"
    assert a["gen_ai.request.temperature"] == 0.3 and a["gen_ai.request.seed"] == 7
    assert a["gen_ai.usage.input_tokens"] == a["llm.token_count.prompt"] == 220
    assert a["gen_ai.usage.output_tokens"] == 40 and a["llm.token_count.total"] == 260
    assert a["llm.cost.total"] == pytest.approx(0.0021)
    assert a["llm.input_messages.0.message.role"] == "system"
    assert "Cite them as [DOC n]" in a["llm.input_messages.0.message.content"]
    assert a["llm.output_messages.0.message.content"].startswith("A loop repeats its body")
    assert a["agentflow.model.retries"] == 1


def test_retrievals_and_checks_carry_their_documents_and_verdicts(exported) -> None:
    spans, _, _ = exported
    retrievals = _one(spans, **{"openinference.span.kind": "RETRIEVER"})
    assert len(retrievals) == 3
    r = retrievals[0].attributes
    assert r["gen_ai.operation.name"] == "retrieval"
    assert r["retrieval.documents.0.document.id"].endswith("#0")
    assert r["retrieval.documents.0.document.content"] and r["retrieval.documents.1.document.score"] > 0
    checks = _one(spans, **{"openinference.span.kind": "EVALUATOR"})
    failing = [c for c in checks if c.attributes["gen_ai.evaluation.score.label"] == "fail"]
    assert {c.attributes["gen_ai.evaluation.name"] for c in failing} == {"citations", "faithfulness"}
    faith = [c for c in checks if c.attributes["gen_ai.evaluation.name"] == "faithfulness"]
    assert sorted(c.attributes["gen_ai.evaluation.score.value"] for c in faith) == [0.4, 0.93]
    passes = [s for s in spans if s.attributes["agentflow.span.kind"] == "loop_pass"]
    assert [(s.name, s.attributes["agentflow.loop_pass.passed"]) for s in passes] == [
        ("refine pass 1", False), ("refine pass 2", True)]


def test_secrets_are_redacted_in_exported_attributes(exported) -> None:
    spans, _, _ = exported
    text = repr([dict(s.attributes) for s in spans])
    assert API_KEY not in text


def test_a_stored_run_exports_to_the_same_trace_and_span_ids(exported) -> None:
    spans, run_id, db = exported
    with TraceReader(db) as reader:
        records = run_records(reader.run(run_id, with_data=True))
    memory = InMemorySpanExporter()
    assert export_spans(records, memory) == 36
    replayed = memory.get_finished_spans()
    assert {(s.context.trace_id, s.context.span_id, s.name) for s in replayed} == {
        (s.context.trace_id, s.context.span_id, s.name) for s in spans}
    assert span_id_of(f"{run_id}/node:classify") in {s.context.span_id for s in replayed}


class _Collector(BaseHTTPRequestHandler):
    requests: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_traces_export_sends_a_stored_run_to_an_otlp_http_collector(exported) -> None:
    from agentflow.tracing import cli

    _, run_id, db = exported
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers())
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        args = parser.parse_args(["traces", "export", run_id[:8], "--db", str(db), "--otlp", url])
        assert args.handler(args) == 0
    finally:
        server.shutdown()
    spans = [s for req in _Collector.requests for rs in req.resource_spans
             for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 36
    assert {s.trace_id.hex() for s in spans} == {run_id}
    names = {s.name for s in spans}
    assert {"invoke_workflow demo_rag", "chat offline/extractive", "refine pass 2"} <= names
    service = _Collector.requests[0].resource_spans[0].resource.attributes
    assert any(a.key == "service.name" and a.value.string_value == "agentflow" for a in service)
