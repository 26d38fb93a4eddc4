"""The run context: generic over the state, services typed by the protocols nodes use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import agentflow as af
from agentflow.errors import ConfigError
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.graph.registry import NodeRegistry
from agentflow.prompts.examples import ExampleStore, StaticExampleStore
from agentflow.prompts.templates import PromptSource, PromptStore
from agentflow.retrieval.retriever import Retriever
from agentflow.testing.retrieval import InMemoryRetriever

REG = NodeRegistry()


class Doc(BaseModel):
    question: str = ""
    answer: str = ""


class Echo(af.NodeConfig):
    prefix: str = ">"


@af.node("typed_echo", reads=("question",), writes=("answer",), registry=REG)
async def typed_echo(state: Doc, cfg: Echo, ctx: RunContext[Doc]) -> dict[str, Any]:
    """A node whose context names the state it runs on."""
    return {"answer": f"{cfg.prefix} {state.question} ({ctx.node})"}


def test_a_node_typed_with_its_state_keeps_its_config_and_runs() -> None:
    assert typed_echo.config is Echo  # the annotation RunContext[Doc] resolves at registration
    flow = af.Flow("typed", state=Doc, inputs=("question",),
                   steps=[typed_echo("echo", prefix="#")])
    result = asyncio.run(flow.arun({"question": "why?"}, hooks=[]))
    assert result.state["answer"] == "# why? (echo)"


def test_the_shipped_services_satisfy_the_protocols_the_run_types_them_with() -> None:
    assert isinstance(PromptStore(), PromptSource)
    assert isinstance(InMemoryRetriever.from_texts(["a text"]), Retriever)
    assert isinstance(StaticExampleStore([]), ExampleStore)


def test_services_left_out_say_how_to_configure_them_on_first_use() -> None:
    ctx: RunContext[Doc] = RunContext("r", "t", "n", Services(),
                                      NodeTracer("r", "r/node:n", "n", lambda e: None))
    assert ctx.examples is None
    with pytest.raises(ConfigError, match=r"no prompt store .* Services\(prompts=\.\.\.\)"):
        ctx.prompts.messages("prompts/x.j2")
    with pytest.raises(ConfigError, match=r"no model router"):
        ctx.models.count_tokens("small", [])
    with pytest.raises(ConfigError, match=r"no retriever"):
        ctx.retriever("docs")
