"""The ``generate`` node: the augmented prompt, citations, few-shot, chain-of-thought, budget."""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from agentflow.documents import Chunk, Example
from agentflow.errors import ModelError
from agentflow.graph import Flow
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.models import Sampling, build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.models.offline import ABSTAIN_TEXT
from agentflow.nodes.generate import GenerateConfig, generate
from agentflow.prompts import PromptStore, StaticExampleStore
from agentflow.testing.models import FakeChatModel, FakeRouter
from agentflow.tracing.events import Event

CHUNKS = [
    Chunk(id="q1", text="Qdrant is a vector database written in Rust.", source="docs/qdrant.md",
          title="Qdrant", score=0.9),
    Chunk(id="l1", text="LangGraph checkpointers save state after every step.",
          source="docs/langgraph.md", score=0.4),
]


def context(models: Any, events: list[Event] | None = None, examples: Any = None) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/answer", node="answer",
                        emit_event=(events if events is not None else []).append)
    services = Services(models=models, prompts=PromptStore(), examples=examples)
    return RunContext("r1", "t1", "answer", services, tracer)


def config(**values: Any) -> GenerateConfig:
    return generate.make_config(values, node="answer")  # type: ignore[return-value]


async def test_the_augmented_prompt_has_instructions_documents_sources_and_the_query() -> None:
    large = FakeChatModel(["Qdrant is written in Rust [DOC 1]."])
    state = {"question": "What is Qdrant written in?", "chunks": CHUNKS}
    out = await generate.fn(state, config(), context(FakeRouter({"large": large})))
    assert out == {"answer": "Qdrant is written in Rust [DOC 1]."}
    system, user = large.last_request.messages
    assert system["role"] == "system"
    for phrase in ("only the information in the retrieved documents", "[DOC n]",
                   "do not contain the information"):
        assert phrase in system["content"]
    assert "[DOC 1] Qdrant is a vector database written in Rust.\nSource: docs/qdrant.md (Qdrant)" in user["content"]
    assert "[DOC 2] LangGraph" in user["content"] and "Source: docs/langgraph.md" in user["content"]
    assert user["content"].rstrip().endswith("Question: What is Qdrant written in?")
    assert large.last_request.inputs.documents == tuple(CHUNKS)


async def test_history_sits_between_instructions_and_the_question_without_reasoning() -> None:
    large = FakeChatModel(["It is written in Rust [DOC 1]."])
    history = [HumanMessage(content="What is Qdrant?"),
               AIMessage(content="<scratchpad>look at DOC 1</scratchpad>A vector database [DOC 1].")]
    state = {"question": "And its language?", "chunks": CHUNKS, "messages": history}
    events: list[Event] = []
    out = await generate.fn(state, config(history="messages", history_output="new_turns"),
                            context(FakeRouter({"large": large}), events))
    roles = [m["role"] for m in large.last_request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert large.last_request.messages[2]["content"] == "A vector database [DOC 1]."
    new_user, new_ai = out["new_turns"]
    assert isinstance(new_user, HumanMessage) and new_user.content == "And its language?"
    assert isinstance(new_ai, AIMessage) and new_ai.content == "It is written in Rust [DOC 1]."
    (call,) = [e for e in events if e.kind == "model_call"]
    assert call.data["context_budget"]["stripped_reasoning"] == 1


async def test_chain_of_thought_keeps_the_scratchpad_out_of_the_answer() -> None:
    large = FakeChatModel(["<scratchpad>DOC 1 says Rust.</scratchpad>\nRust [DOC 1]."])
    out = await generate.fn({"question": "Language?", "chunks": CHUNKS},
                            config(chain_of_thought=True), context(FakeRouter({"large": large})))
    assert out == {"answer": "Rust [DOC 1]."}
    assert "<scratchpad>" in large.last_request.messages[0]["content"]


async def test_an_answer_that_is_all_scratchpad_is_an_error() -> None:
    large = FakeChatModel(["<scratchpad>thinking and thinking, then cut off"])
    with pytest.raises(ModelError, match="no answer outside its scratchpad"):
        await generate.fn({"question": "q", "chunks": CHUNKS}, config(chain_of_thought=True),
                          context(FakeRouter({"large": large})))


async def test_few_shot_examples_fixed_and_retrieved() -> None:
    store = StaticExampleStore([
        Example(question="What is BM25?", answer="A ranking function [DOC 1].", reasoning="DOC 1."),
        Example(question="What is a vector database?", answer="A store of vectors [DOC 2]."),
    ])
    fixed = Example(question="Fixed question?", answer="Fixed answer [DOC 1].")
    large = FakeChatModel(["ok [DOC 1]."])
    cfg = config(examples=[fixed.model_dump()], few_shot_k=1, chain_of_thought=True)
    await generate.fn({"question": "What is Qdrant, a vector database?", "chunks": CHUNKS}, cfg,
                      context(FakeRouter({"large": large}), examples=store))
    messages = large.last_request.messages
    assert [m["content"] for m in messages[1:5]] == [
        "Fixed question?", "Fixed answer [DOC 1].",
        "What is a vector database?", "A store of vectors [DOC 2]."]


async def test_documents_that_do_not_fit_are_dropped_lowest_ranked_first_with_stable_numbers() -> None:
    many = [Chunk(id=f"c{i}", text=f"fact {i} " + "filler " * 80, score=1.0 - i / 10) for i in range(6)]
    large = FakeChatModel(["fact 0 [DOC 1]."], context_window=1200)
    events: list[Event] = []
    await generate.fn({"question": "q", "chunks": many}, config(sampling={"max_tokens": 300}),
                      context(FakeRouter({"large": large}), events))
    budget = events[-1].data["context_budget"]
    assert budget["dropped_documents"] and budget["prompt_tokens"] <= 1200 - 300
    assert budget["kept_documents"] == list(range(len(budget["kept_documents"])))
    user = large.last_request.messages[-1]["content"]
    assert "[DOC 1] fact 0" in user and f"[DOC {len(many)}]" not in user


async def test_n_samples_are_all_written_when_asked() -> None:
    large = FakeChatModel(["<think>x</think>A [DOC 1]."])
    out = await generate.fn({"question": "q", "chunks": CHUNKS},
                            config(sampling={"n": 3}, samples_output="samples"),
                            context(FakeRouter({"large": large})))
    assert out["samples"] == ["A [DOC 1]."] * 3 and large.last_request.sampling == Sampling(n=3)


async def test_the_offline_answerer_cites_or_abstains() -> None:
    router = build_router(None, env={}, encoder=HashEmbedder.lexical())
    ctx = context(router)
    out = await generate.fn({"question": "Which language is Qdrant written in?", "chunks": CHUNKS},
                            config(), ctx)
    assert out["answer"] == "Qdrant is a vector database written in Rust [DOC 1]."
    out = await generate.fn({"question": "Who painted the Mona Lisa?", "chunks": CHUNKS}, config(), ctx)
    assert out["answer"] == ABSTAIN_TEXT


class RagState(BaseModel):
    question: str
    chunks: list[Chunk] = []
    answer: str = ""
    messages: Annotated[list[Any], operator.add] = []


async def test_generate_runs_in_a_flow_and_appends_the_turn_to_history() -> None:
    flow = Flow("answer", state=RagState, inputs=["question", "chunks", "messages"],
                steps=[generate("answer", history="messages", history_output="messages")])
    large = FakeChatModel(["Rust [DOC 1]."])
    result = await flow.arun({"question": "Language?", "chunks": CHUNKS, "messages": []},
                             services=Services(models=FakeRouter({"large": large}), prompts=PromptStore()))
    assert result["answer"] == "Rust [DOC 1]."
    assert [m.content for m in result["messages"]] == ["Language?", "Rust [DOC 1]."]
