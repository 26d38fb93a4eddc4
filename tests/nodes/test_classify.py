"""The ``classify`` node: labels in the prompt, a validated label out, offline or through an LLM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from agentflow.errors import GraphBuildError, ModelError
from agentflow.graph import Flow, route
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.graph.registry import NodeRegistry, node
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.classify import ClassifyConfig, classify
from agentflow.prompts import PromptStore
from agentflow.testing.models import FakeChatModel, FakeRouter
from agentflow.tracing.events import Event

LABELS = {
    "knowledge": {"description": "a question about the product documentation",
                  "examples": ["how do I ingest PDF files", "what does the retrieve node return"]},
    "chit_chat": {"description": "greetings and small talk", "examples": ["hi there", "thanks a lot"]},
}


def context(models: Any, events: list[Event]) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/route_q", node="route_q", emit_event=events.append)
    return RunContext("r1", "t1", "route_q", Services(models=models, prompts=PromptStore()), tracer)


def config(**values: Any) -> ClassifyConfig:
    return classify.make_config({"labels": LABELS, **values}, node="route_q")  # type: ignore[return-value]


async def test_an_llm_sees_labels_descriptions_and_examples_and_returns_a_label() -> None:
    small = FakeChatModel(['{"label": "knowledge"}'])
    events: list[Event] = []
    out = await classify.fn({"question": "How do I chunk markdown?"}, config(),
                            context(FakeRouter({"small": small}), events))
    assert out == {"route": "knowledge"}
    system, user = small.last_request.messages
    assert "knowledge: a question about the product documentation" in system["content"]
    assert '"thanks a lot"' in system["content"] and "out_of_scope" in system["content"]
    assert user == {"role": "user", "content": "How do I chunk markdown?"}
    schema = small.last_request.response_schema
    assert schema is not None and schema["properties"]["label"]["enum"] == [
        "knowledge", "chit_chat", "out_of_scope"]
    assert small.last_request.sampling.temperature == 0.0
    (call,) = [e for e in events if e.kind == "model_call"]
    assert call.data["alias"] == "small" and call.data["response"] == '{"label": "knowledge"}'


async def test_a_label_outside_the_set_is_repaired_once_then_an_error() -> None:
    small = FakeChatModel(['{"label": "weather"}', '{"label": "chit_chat"}'])
    out = await classify.fn({"question": "hey"}, config(), context(FakeRouter({"small": small}), []))
    assert out == {"route": "chit_chat"} and small.calls == 2
    stubborn = FakeChatModel(['{"label": "weather"}'] * 2)
    with pytest.raises(ModelError, match="does not match the schema"):
        await classify.fn({"question": "hey"}, config(), context(FakeRouter({"small": stubborn}), []))


async def test_the_offline_classifier_routes_by_similarity_and_declines_the_unrelated() -> None:
    router = build_router(None, env={}, encoder=HashEmbedder.lexical())
    ctx = context(router, [])
    cfg = config(threshold=0.2)
    assert (await classify.fn({"question": "how do I ingest PDF files into the index"}, cfg, ctx)) == {
        "route": "knowledge"}
    assert (await classify.fn({"question": "hi there, thanks"}, cfg, ctx)) == {"route": "chit_chat"}
    assert (await classify.fn({"question": "zebra migration patterns"}, cfg, ctx)) == {
        "route": "out_of_scope"}


async def test_config_fields_name_the_state_fields_and_the_alias() -> None:
    tiny = FakeChatModel(['{"label": "b"}'])
    cfg = classify.make_config({"labels": ["a", "b"], "input": "text", "output": "kind",
                                "model": "tiny", "out_of_scope": None}, node="c")
    out = await classify.fn({"text": "x"}, cfg, context(FakeRouter({"tiny": tiny}), []))
    assert out == {"kind": "b"}
    assert classify.reads(cfg) == ("text",) and classify.writes(cfg) == ("kind",)
    assert tiny.last_request.response_schema["properties"]["label"]["enum"] == ["a", "b"]


def test_bad_configs_are_build_errors() -> None:
    with pytest.raises(GraphBuildError, match="labels"):
        classify.make_config({"labels": []}, node="c")
    with pytest.raises(GraphBuildError, match="also a label"):
        classify.make_config({"labels": ["a", "out_of_scope"]}, node="c")
    with pytest.raises(GraphBuildError, match="modle"):
        classify.make_config({"labels": ["a"], "modle": "small"}, node="c")


class RouteState(BaseModel):
    question: str
    route: str = ""
    answer: str = ""


TEST_NODES = NodeRegistry()  # test-only node types stay out of the global registry


@node("canned_answer", reads=("route",), writes=("answer",), registry=TEST_NODES)
async def canned_answer(state: Any, cfg: Any, ctx: RunContext) -> dict[str, Any]:
    return {"answer": f"handled as {state.route}"}


async def test_classify_drives_a_route_in_a_flow() -> None:
    flow = Flow(
        "router",
        state=RouteState,
        steps=[
            classify("route_q", labels=LABELS),
            route(on="route", cases={"knowledge": canned_answer("kb"),
                                     "chit_chat": canned_answer("chat")},
                  default=canned_answer("decline")),
        ],
    )
    small = FakeChatModel(lambda request: json.dumps({"label": "chit_chat"}))
    result = await flow.arun({"question": "hello!"},
                             services=Services(models=FakeRouter({"small": small}), prompts=PromptStore()))
    assert result["route"] == "chit_chat" and result["answer"] == "handled as chit_chat"
