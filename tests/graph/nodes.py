"""Node types shared by the engine tests (registered once, in a registry of their own)."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

from pydantic import BaseModel

import agentflow as af
from agentflow.graph.registry import NodeRegistry

REG = NodeRegistry()


class S(BaseModel):
    question: str = ""
    route: str = ""
    queries: list[str] = []
    query: str = ""
    chunks: Annotated[list[str], operator.add] = []
    found: list[Any] = []
    errors: list[dict[str, Any]] = []
    answer: str = ""
    n: int = 0
    log: Annotated[list[str], operator.add] = []


class Tag(af.NodeConfig):
    tag: str = ""
    delay: float = 0.0


@af.node("classify_q", reads=("question",), writes=("route",), registry=REG)
async def classify_q(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    q = state.question
    return {"route": "kb" if q.endswith("?") else ("chat" if q.startswith("hi") else "other")}


@af.node("expand", reads=("question",), writes=("queries",), registry=REG)
async def expand(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    return {"queries": [f"{state.question} #{i}" for i in range(4)]}


@af.node("search", reads=("query",), writes=("chunks",), registry=REG)
async def search(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    await asyncio.sleep(cfg.delay)
    if "boom" in state.query:
        raise ValueError(f"cannot search {state.query!r}")
    return {"chunks": [state.query.upper()]}


@af.node("answer", reads=("question",), writes=("answer", "n", "log"), registry=REG)
async def answer(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    return {"answer": f"{cfg.tag or 'answer'}: {'; '.join(state.chunks)}", "n": state.n + 1,
            "log": [cfg.tag or "answer"]}


@af.node("note", reads=(), writes=("log",), registry=REG)
async def note(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    await asyncio.sleep(cfg.delay)
    ctx.emit("noted", {"tag": cfg.tag})
    return {"log": [cfg.tag]}


@af.node("fail", reads=(), writes=("log",), registry=REG)
async def fail(state: S, cfg: Tag, ctx: af.RunContext) -> dict[str, Any]:
    raise RuntimeError(f"failing on purpose ({cfg.tag})")


MEETING: dict[str, asyncio.Barrier] = {}
"""Barriers that branches wait at together, by name: only branches that run concurrently meet."""


class Meet(af.NodeConfig):
    tag: str = ""
    at: str = "default"


@af.node("meet", reads=(), writes=("log",), registry=REG)
async def meet(state: S, cfg: Meet, ctx: af.RunContext) -> dict[str, Any]:
    """Wait (at most 10 s) until every party of the barrier ``cfg.at`` has arrived."""
    await asyncio.wait_for(MEETING[cfg.at].wait(), timeout=10)
    return {"log": [cfg.tag]}
