"""State schemas: Pydantic or TypedDict, reducers, and input checked against the schema."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest

import agentflow as af
from agentflow.errors import InputError
from agentflow.graph.registry import NodeRegistry

REG = NodeRegistry()


class TD(TypedDict, total=False):
    text: str
    words: Annotated[list[str], operator.add]
    count: int


@af.node("split", reads=("text",), writes=("words",), registry=REG)
async def split(state: TD, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    assert isinstance(state, dict)  # TypedDict flows hand nodes a plain dict
    return {"words": state["text"].split()}


@af.node("count", reads=("words",), writes=("count",), registry=REG)
async def count(state: TD, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    return {"count": len(state["words"])}


def test_typeddict_state_with_a_reducer_merges_parallel_writes() -> None:
    flow = af.Flow("td", state=TD, inputs=("text",),
                   steps=[af.parallel(split("a"), split("b")), count])
    result = flow.run({"text": "one two three"})
    assert result["words"] == ["one", "two", "three"] * 2
    assert result["count"] == 6
    assert "_af" not in result.state  # agentflow's bookkeeping stays internal


def test_inputs_are_checked_against_the_schema() -> None:
    flow = af.Flow("td", state=TD, inputs=("text",), steps=[split, count])
    with pytest.raises(InputError, match=r"unknown input field\(s\) 'txet' for state TD; fields: "):
        flow.run({"txet": "x"})
    with pytest.raises(InputError, match=r"missing input\(s\) 'text'"):
        af.Flow("td", state=TD, inputs=("text",), steps=[split, count]).run({})


def test_pydantic_inputs_are_validated() -> None:
    from pydantic import BaseModel

    class P(BaseModel):
        text: str
        words: Annotated[list[str], operator.add] = []
        count: int = 0

    @af.node("split_p", reads=("text",), writes=("words",), registry=REG)
    async def split_p(state: P, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        assert isinstance(state, P)
        return {"words": state.text.split()}

    flow = af.Flow("p", state=P, steps=[split_p])
    assert flow.compile().inputs == ("text",)  # required fields are the default inputs
    assert flow.run({"text": "a b"})["words"] == ["a", "b"]
    with pytest.raises(InputError, match=r"invalid input for state P"):
        flow.run({"text": ["not", "a", "string"]})
    with pytest.raises(InputError, match=r"missing input\(s\) 'text'"):
        flow.run({})


def test_sync_run_refuses_to_run_inside_an_event_loop() -> None:
    import asyncio

    flow = af.Flow("td", state=TD, inputs=("text",), steps=[split])

    async def inside() -> None:
        flow.run({"text": "x"})

    with pytest.raises(af.AgentflowError, match=r"use `await flow.arun\(...\)`"):
        asyncio.run(inside())
