"""The ``llm`` node: a free-form template filled from the state, text or validated JSON out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentflow.documents import Chunk
from agentflow.errors import ConfigError, ModelError
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.llm import LlmConfig, llm
from agentflow.prompts import PromptStore
from agentflow.testing.models import FakeChatModel, FakeRouter


def context(models: Any, prompts: PromptStore | None = None) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/rewrite", node="rewrite", emit_event=lambda e: None)
    return RunContext("r1", "t1", "rewrite", Services(models=models, prompts=prompts or PromptStore()), tracer)


def config(**values: Any) -> LlmConfig:
    return llm.make_config(values, node="rewrite")  # type: ignore[return-value]


async def test_variables_come_from_state_fields_and_the_schema_validates_the_reply() -> None:
    small = FakeChatModel(['["qdrant language", "qdrant rust", "vector db implementation"]'])
    cfg = config(prompt="prompts/multi_query.j2", variables={"question": "user_question"},
                 output="queries", model="small",
                 output_schema={"type": "array", "items": {"type": "string"}, "minItems": 1})
    out = await llm.fn({"user_question": "What is Qdrant written in?"}, cfg,
                       context(FakeRouter({"small": small})))
    assert out == {"queries": ["qdrant language", "qdrant rust", "vector db implementation"]}
    assert "Question: What is Qdrant written in?" in small.last_request.messages[-1]["content"]
    assert llm.reads(cfg) == ("user_question",) and llm.writes(cfg) == ("queries",)


async def test_text_output_loses_its_reasoning(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "summary.j2").write_text("Summarize: {{ text }}", encoding="utf-8")
    large = FakeChatModel(["<think>short</think> A summary."])
    out = await llm.fn({"doc": "long text"}, config(prompt="prompts/summary.j2", variables={"text": "doc"}),
                       context(FakeRouter({"large": large}), PromptStore([tmp_path])))
    assert out == {"output": "A summary."}
    assert large.last_request.messages == [{"role": "user", "content": "Summarize: long text"}]


async def test_a_variable_the_template_needs_but_nobody_gives_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "two.j2").write_text("{{ a }} and {{ b }}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'b' is undefined.*variables given: a"):
        await llm.fn({"x": 1}, config(prompt="prompts/two.j2", variables={"a": "x"}),
                     context(FakeRouter({"large": ["unused"]}), PromptStore([tmp_path])))
    with pytest.raises(ConfigError, match="reads the state field 'missing'"):
        await llm.fn({"x": 1}, config(prompt="prompts/two.j2", variables={"a": "missing"}),
                     context(FakeRouter({"large": ["unused"]}), PromptStore([tmp_path])))


async def test_an_invalid_reply_is_an_error_after_one_repair() -> None:
    small = FakeChatModel(["no json here", "still none"])
    cfg = config(prompt="prompts/multi_query.j2", variables={"question": "q"},
                 output_schema={"type": "array", "items": {"type": "string"}})
    with pytest.raises(ModelError, match="after one repair"):
        await llm.fn({"q": "x"}, cfg, context(FakeRouter({"large": small})))


async def test_offline_answers_free_prompts_only_with_a_query_and_documents(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "ask.j2").write_text(
        "{% for d in documents %}{{ d.text }}\n{% endfor %}Q: {{ query }}", encoding="utf-8")
    router = build_router(None, env={}, encoder=HashEmbedder.lexical())
    ctx = context(router, PromptStore([tmp_path]))
    chunks = [Chunk(id="a", text="Qdrant is a vector database written in Rust.")]
    out = await llm.fn({"q": "What is Qdrant written in?", "c": chunks},
                       config(prompt="prompts/ask.j2", variables={"query": "q", "documents": "c"}), ctx)
    assert out["output"] == "Qdrant is a vector database written in Rust [DOC 1]."
    with pytest.raises(ModelError, match="no language model"):
        await llm.fn({"doc": "x"}, config(prompt="prompts/multi_query.j2",
                                          variables={"question": "doc"}),
                     context(router))
