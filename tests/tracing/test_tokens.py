"""Token counts from the model router reach the trace store, `agentflow traces`, and OTel export.

The router records a model call's usage as ``{"prompt", "completion", "total", "estimated"}``:
these tests run a real flow (a real ``generate`` node, the real router over a fake model that
reports its usage) so that what the router records and what the readers read cannot drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from agentflow.documents import Chunk
from agentflow.graph import Flow
from agentflow.graph.context import Services
from agentflow.models.types import ChatResponse, Usage
from agentflow.nodes.generate import generate
from agentflow.prompts import PromptStore
from agentflow.testing.models import FakeChatModel, FakeRouter
from agentflow.tracing import OTelExporter, SQLiteTraceStore, TraceReader, cli
from agentflow.tracing.spans import summarize, token_counts, total_tokens

CHUNKS = [Chunk(id="q1", text="Qdrant is a vector database written in Rust.",
                source="docs/qdrant.md", score=0.9)]


class Rag(BaseModel):
    question: str
    chunks: list[Chunk] = []
    answer: str = ""
    draft: str = ""


def reply(text: str, prompt: int, completion: int) -> ChatResponse:
    return ChatResponse(text=text, usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
                        finish_reason="stop")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list]:
    """One run of two model calls (120 + 30 and 200 + 50 tokens), stored and exported."""
    db = tmp_path_factory.mktemp("tokens") / "traces.db"
    large = FakeChatModel([reply("Rust [DOC 1].", 120, 30), reply("It is Rust [DOC 1].", 200, 50)])
    flow = Flow("tokens", state=Rag, inputs=["question", "chunks"],
                steps=[generate("draft", output="draft"), generate("answer")])
    store, memory = SQLiteTraceStore(db), InMemorySpanExporter()
    otel = OTelExporter(memory)
    result = asyncio.run(flow.arun(
        {"question": "Language?", "chunks": CHUNKS},
        services=Services(models=FakeRouter({"large": large}), prompts=PromptStore()),
        hooks=[store, otel]))
    store.close()
    otel.close()
    assert result.status == "ok" and large.calls == 2
    return db, result.run_id, list(memory.get_finished_spans())


def traces(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="agentflow")
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["traces", *argv])
    return int(args.handler(args))


def test_the_stored_run_counts_the_tokens_the_router_recorded(traced) -> None:
    db, run_id, _ = traced
    with TraceReader(db) as reader:
        run = reader.run(run_id, with_data=True)
    assert (run.summary.model_calls, run.summary.tokens) == (2, 400)
    calls = [sp for sp in run.spans if sp["kind"] == "model_call"]
    assert [c["data"]["tokens"] for c in calls] == [
        {"prompt": 120, "completion": 30, "total": 150, "estimated": False},
        {"prompt": 200, "completion": 50, "total": 250, "estimated": False}]
    assert [c["summary"]["tokens"] for c in calls] == [150, 250]  # what the UI adds up per node
    assert all(c["summary"]["latency_s"] >= 0 for c in calls)


def test_traces_list_and_show_print_the_tokens(traced, capsys: pytest.CaptureFixture[str]) -> None:
    db, run_id, _ = traced
    assert traces("list", "--db", str(db)) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-4:] == ["TOKENS", "COST", "ORIGIN", "FEEDBACK"]
    assert row.split()[0] == run_id[:8] and row.split()[-3] == "400"
    assert traces("show", run_id, "--db", str(db)) == 0
    out = capsys.readouterr().out
    assert "2 model calls, 400 tokens" in out
    assert "150 tok" in out and "250 tok" in out


def test_otel_export_carries_the_prompt_completion_and_total(traced) -> None:
    _, _, spans = traced
    calls = sorted((s for s in spans if s.attributes.get("openinference.span.kind") == "LLM"),
                   key=lambda s: s.start_time)
    a = calls[0].attributes
    assert a["gen_ai.usage.input_tokens"] == a["llm.token_count.prompt"] == 120
    assert a["gen_ai.usage.output_tokens"] == a["llm.token_count.completion"] == 30
    assert a["llm.token_count.total"] == 150
    assert calls[1].attributes["llm.token_count.total"] == 250


@pytest.mark.parametrize(("tokens", "expected"), [
    ({"prompt": 12, "completion": 3, "total": 15, "estimated": True}, (12, 3, 15)),
    ({"prompt": 12, "completion": 3}, (12, 3, 15)),
    ({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}, (12, 3, 15)),
    ({"prompt_tokens": 12, "completion_tokens": 3}, (12, 3, 15)),
    ({"input_tokens": 12, "output_tokens": 3}, (12, 3, 15)),
    ({"completion": 3}, (None, 3, 3)),
    (42, (None, None, 42)),
    ({"prompt": True, "completion": "3"}, (None, None, None)),
    (None, (None, None, None)),
])
def test_token_counts_read_the_documented_shape_and_provider_spellings(tokens, expected) -> None:
    assert token_counts(tokens) == expected
    assert total_tokens(tokens) == expected[2]
    summary = summarize("model_call", {"tokens": tokens})
    assert summary.get("tokens") == expected[2]
