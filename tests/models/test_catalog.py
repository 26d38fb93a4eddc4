"""The model catalogue: facts from LiteLLM's list, the model server's /v1/models and agentflow.yaml's model_info
(unknown where none says), measured columns from real traces, ``agentflow models --output json`` and
``agentflow models bench`` against a real model server over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentflow.cli import main
from agentflow.errors import ConfigError
from agentflow.models.catalog import FIELDS, catalogue, describe, family_of, measured, read_overrides
from agentflow.models.profiles import ModelEntry, ModelsConfig, Price

CONTRACT = ("context_window", "max_output_tokens", "input_per_million", "output_per_million", "training_cutoff",
            "parameters")


def test_litellm_facts_and_unknowns_are_never_guessed() -> None:
    row = describe("judge", 0, ModelEntry(model="openai/gpt-4.1-mini"), {}, ask_servers=False)
    assert (row.input_per_million, row.output_per_million) == (0.4, 1.6)
    assert row.context_window == 1047576 and row.max_output_tokens == 32768 and row.family == "openai"
    assert row.parameters is None and row.training_cutoff is None
    assert row.sources["parameters"] == row.sources["training_cutoff"] == "unknown"
    assert row.sources["input_per_million"] == "litellm"


def test_a_self_hosted_model_knows_only_what_its_entry_and_name_say() -> None:
    entry = ModelEntry(model="hosted_vllm/smollm2-135m", context_window=2048, price=Price())
    row = describe("large", 0, entry, {}, ask_servers=False)
    assert row.family == "huggingface" and row.sources["family"] == "name"
    assert row.context_window == 2048 and row.input_per_million == 0.0
    assert row.parameters is None and row.max_output_tokens is None and row.sources["parameters"] == "unknown"


@pytest.mark.parametrize("model, family", [
    ("ollama_chat/llama3.2:3b", "meta"), ("hosted_vllm/Qwen2.5-7B-Instruct", "alibaba"),
    ("anthropic/claude-haiku-4-5", "anthropic"), ("hosted_vllm/default", None),
])
def test_provider_families(model: str, family: str | None) -> None:
    assert family_of(model) == family


def test_model_info_in_agentflow_yaml_overrides_and_a_misspelt_field_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "agentflow.yaml"
    config.write_text("model_info:\n  openai/gpt-4.1-mini: {training_cutoff: '2024-06', parameters: 8000000000}\n")
    overrides = read_overrides(config)
    row = describe("judge", 0, ModelEntry(model="openai/gpt-4.1-mini"), overrides, ask_servers=False)
    assert row.training_cutoff == "2024-06" and row.parameters == 8_000_000_000
    assert row.sources["training_cutoff"] == "model_info"
    config.write_text("model_info:\n  openai/gpt-4.1-mini: {cutoff: '2024-06'}\n")
    with pytest.raises(ConfigError, match=r"model_info.openai/gpt-4.1-mini\): unknown field\(s\) \['cutoff'\]"):
        read_overrides(config)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("torch", reason="the model server needs the 'model-server' extra")
    from tests.model_server.conftest import STORIES, serve

    for served in serve(STORIES, max_batch=2, max_len=256):
        yield served.base


def test_the_model_servers_v1_models_gives_parameters_and_context(server_url: str) -> None:
    entry = ModelEntry(model="hosted_vllm/stories260K", api_base=server_url)
    row = describe("small", 0, entry, {})
    assert row.parameters is not None and 200_000 < row.parameters < 400_000
    assert row.context_window == 256 and row.sources["parameters"] == row.sources["context_window"] == "model server"


class Rag(BaseModel):
    question: str
    chunks: list = []
    answer: str = ""


def traced_store(path: Path) -> None:
    """Two real runs through the router, recorded in a real SQLite trace store."""
    from agentflow.graph import Flow
    from agentflow.models.types import ChatResponse, Usage
    from agentflow.graph.context import Services
    from agentflow.nodes.generate import generate
    from agentflow.prompts import PromptStore
    from agentflow.testing.models import FakeChatModel, FakeRouter
    from agentflow.tracing import SQLiteTraceStore

    replies = [ChatResponse(text=f"Rust {i}.", usage=Usage(prompt_tokens=100, completion_tokens=40), cost=0.002,
                            ttft_s=0.05 * (i + 1)) for i in range(2)]
    large = FakeChatModel(replies, name="hosted_vllm/stories260K")
    flow = Flow("t", state=Rag, inputs=["question", "chunks"], steps=[generate("answer")])
    store = SQLiteTraceStore(path)
    for _ in range(2):
        asyncio.run(flow.arun({"question": "Language?", "chunks": []}, hooks=[store],
                              services=Services(models=FakeRouter({"large": large}), prompts=PromptStore())))
    store.close()


def test_measured_columns_come_from_the_recorded_model_calls(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    traced_store(db)
    stats = measured(db)["hosted_vllm/stories260K"]
    assert stats["calls"] == 2 and stats["runs"] == 2
    assert stats["cost_per_run"] == pytest.approx(0.002)
    assert stats["p50_latency_s"] >= 0 and stats["ttft_s"] == pytest.approx(0.075)  # the servers' own TTFT
    config = ModelsConfig.model_validate({"profiles": {"p": {"api_base": "http://127.0.0.1:9/v1",
                                                               "aliases": {"large": "hosted_vllm/stories260K"}}}})
    [row] = catalogue(config, "p", config_path=None, traces=db, ask_servers=False)
    assert row.measured["calls"] == 2


def test_models_output_json_names_the_contract_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["models", "--profile", "openai", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    judge = next(r for r in report["catalog"] if r["alias"] == "judge")
    assert set(CONTRACT) <= set(judge) and set(FIELDS) <= set(judge)
    assert judge["input_per_million"] == 0.4 and judge["training_cutoff"] is None
    assert main(["models", "--profile", "openai"]) == 0
    text = capsys.readouterr().out
    assert "unknown" in text and "$/M in" in text and "TTFT s" in text


@pytest.fixture(scope="module")
def smol_url() -> Iterator[str]:
    pytest.importorskip("torch", reason="the model server needs the 'model-server' extra")
    from tests.model_server.conftest import serve

    for served in serve(Path("smollm2-135m"), max_batch=2, max_len=512):
        yield served.base


def test_models_bench_measures_the_real_local_model_live(smol_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    tiny:\n      aliases:\n        small: {model: hosted_vllm/smollm2-135m, "
        f"api_base: '{smol_url}'}}\n")
    assert main(["models", "bench", "small", "--profile", "tiny", "--runs", "2", "--output", "json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["alias"] == "small" and result["runs"] == 2
    assert 0 < result["ttft_s"] < result["latency_s"] and result["tokens_per_s"] > 0
    assert main(["models", "bench", "large", "--profile", "offline"]) == 2
    assert "offline backend, not a language model" in capsys.readouterr().err


def test_a_call_to_the_model_server_records_the_time_to_first_token_it_reports(smol_url: str, tmp_path: Path) -> None:
    """Not streamed, yet timed: the model server reports ``timings.ttft_s`` (as llama.cpp's server does), LiteLLM
    keeps it, and the router puts it on the model call's span, where the catalogue reads it."""
    import httpx

    from agentflow.graph.context import NodeTracer
    from agentflow.models import Sampling, build_router
    from agentflow.models.types import ChatResponse

    raw = httpx.post(f"{smol_url}/chat/completions", json={
        "model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).json()
    assert 0 < raw["timings"]["ttft_s"] < 60
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    tiny:\n      aliases:\n        small: {model: hosted_vllm/smollm2-135m, "
        f"api_base: '{smol_url}'}}\n")
    router = build_router(tmp_path / "agentflow.yaml", profile="tiny", root=tmp_path)
    events: list[Any] = []

    async def call() -> ChatResponse:
        tracer = NodeTracer(run_id="r", parent_id="r/n", node="n", emit_event=events.append)
        return await router.complete("small", [{"role": "user", "content": "Hi"}],
                                     sampling=Sampling.greedy(max_tokens=4), tracer=tracer, node="n")
    try:
        response = asyncio.run(call())
    finally:
        router.close()
    assert response.ttft_s is not None and 0 < response.ttft_s <= response.latency_s
    (span,) = [e for e in events if e.kind == "model_call"]
    assert span.data["ttft_s"] == response.ttft_s
