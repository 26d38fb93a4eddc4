"""The ``reply`` and ``chat`` nodes say what the documents are about, never a product name."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow.errors import ConfigError, GraphBuildError
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.chat import chat
from agentflow.nodes.reply import reply
from agentflow.prompts import PromptStore
from agentflow.retrieval.catalog import CollectionSpec
from agentflow.testing.models import FakeChatModel, FakeRouter

DECLINE = "I can only answer questions about {{ collections.knowledge.description }}."
PURPOSE = "answering questions about {{ collections.knowledge.description }}"


class Described:
    """A retriever as far as templates look: its description."""

    def __init__(self, description: str) -> None:
        self.description = description


def context(models: Any = None, **retrievers: Any) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/n", node="n", emit_event=lambda e: None)
    services = Services(models=models or build_router(None, env={}, encoder=HashEmbedder.lexical()),
                        prompts=PromptStore(), retrievers=retrievers)
    return RunContext("r1", "t1", "n", services, tracer)


async def test_a_reply_says_what_the_collection_is_about() -> None:
    cfg = reply.make_config({"text": DECLINE}, node="decline")
    out = await reply.fn({}, cfg, context(knowledge=Described("bread and pasta")))
    assert out == {"answer": "I can only answer questions about bread and pasta."}
    plain = reply.make_config({"text": "No."}, node="decline")
    assert await reply.fn({}, plain, context()) == {"answer": "No."}  # no template, no services


def test_a_collection_without_a_description_is_described_by_its_source() -> None:
    assert CollectionSpec(name="k", sources=("/home/me/handbook",)).about() == "the documents in handbook"
    assert CollectionSpec(name="k", sources=("docs/**/*.md",)).about() == "the documents in docs"
    assert CollectionSpec(name="k", sources=("a", "b", "c")).about() == "the documents in a and b and others"
    assert CollectionSpec(name="k", sources=("a",), description=" bikes ").about() == "bikes"


async def test_a_template_naming_an_unknown_collection_says_which_node_and_what_is_valid() -> None:
    cfg = reply.make_config({"text": "About {{ collections.manuals.description }}"}, node="decline")
    with pytest.raises(ConfigError, match=r"node 'n'.*collections\.NAME\.description"):
        await reply.fn({}, cfg, context(knowledge=Described("bread")))


@pytest.mark.parametrize("text", ["{{ collections.__class__ }}", "{{ collections.knowledge", "{% for %}"])
def test_an_unsafe_or_broken_template_is_a_build_error(text: str) -> None:
    with pytest.raises(GraphBuildError, match=r"node 'decline'.*text: .*template, line 1"):
        reply.make_config({"text": text}, node="decline")
    with pytest.raises(GraphBuildError, match=r"node 'chit_chat'.*purpose: .*template, line 1"):
        chat.make_config({"purpose": text}, node="chit_chat")


@pytest.mark.parametrize(("message", "start"), [
    ("hi there", "Hello!"), ("thanks a lot!", "You're welcome!"), ("bye", "Goodbye!"),
])
async def test_the_offline_chat_offers_help_with_the_purpose_and_names_no_product(
    message: str, start: str
) -> None:
    cfg = chat.make_config({"purpose": PURPOSE}, node="chit_chat")
    out = await chat.fn({"question": message}, cfg, context(knowledge=Described("bread and pasta")))
    answer = out["answer"]
    assert answer.startswith(start) and "answering questions about bread and pasta" in answer
    assert "agentflow" not in answer.lower() and "offline" not in answer.lower()


async def test_an_llm_chat_gets_the_rendered_purpose() -> None:
    small = FakeChatModel(["Hi! Ask me about bread."])
    cfg = chat.make_config({"purpose": PURPOSE}, node="chit_chat")
    out = await chat.fn({"question": "hello"}, cfg,
                        context(FakeRouter({"small": small}), knowledge=Described("bread")))
    assert out == {"answer": "Hi! Ask me about bread."}
    system = small.last_request.messages[0]["content"]
    assert "assistant for answering questions about bread." in system
