"""The ``retrieve`` node: one query or several fused, options, tracing, and inside a real flow."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import agentflow as af
from agentflow.documents import Chunk
from agentflow.errors import GraphBuildError, RetrievalError
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.nodes.retrieve import RetrieveConfig, retrieve
from agentflow.testing.retrieval import InMemoryRetriever
from agentflow.tracing.events import Event

TEXTS = {
    "planets.md": "Jupiter is the largest planet. Saturn has bright rings.",
    "baking.md": "Sourdough bread rises with a wild yeast starter.",
    "coffee.md": "Coffee contains caffeine, a mild stimulant.",
    "tea.md": "Green tea contains caffeine too, and antioxidants.",
}


def context(retrievers: dict[str, Any], events: list[Event]) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/search", node="search", emit_event=events.append)
    return RunContext("r1", "t1", "search", Services(retrievers=retrievers), tracer)


def config(**values: Any) -> RetrieveConfig:
    return retrieve.make_config({"collection": "docs", **values}, node="search")  # type: ignore[return-value]


async def call(
    state: Any, cfg: RetrieveConfig, retriever: Any
) -> tuple[dict[str, Any], list[Event]]:
    events: list[Event] = []
    out = await retrieve.fn(state, cfg, context({"docs": retriever}, events))
    return dict(out or {}), events


async def test_one_query_returns_the_top_chunks_and_records_a_retrieval_event() -> None:
    retriever = InMemoryRetriever.from_texts(TEXTS)
    out, events = await call({"query": "largest planet"}, config(top_k=2), retriever)
    chunks = out["chunks"]
    assert len(chunks) == 2 and chunks[0].source == "planets.md"
    (event,) = events
    assert (event.kind, event.name) == ("retrieval", "docs")
    assert event.data["queries"] == ["largest planet"]
    assert event.data["hits"] == [c.id for c in chunks]
    assert event.data["scores"] == [round(c.score, 6) for c in chunks]
    assert "duration_s" in event.data


async def test_several_queries_are_fused_by_reciprocal_rank() -> None:
    retriever = InMemoryRetriever.from_texts(TEXTS)
    state = {"queries": ["caffeine stimulant coffee", "tea caffeine antioxidants", "caffeine"]}
    out, events = await call(state, config(input="queries", output="found", top_k=2), retriever)
    assert {c.source for c in out["found"]} == {"coffee.md", "tea.md"}
    assert retriever.queries == state["queries"]  # searched together, in one batch
    assert out["found"][0].score > out["found"][1].score
    assert events[0].data["queries"] == state["queries"]


async def test_options_reach_the_retriever() -> None:
    retriever = InMemoryRetriever.from_texts(TEXTS)
    cfg = config(
        top_k=3, mode="sparse", filter={"source": {"any": ["tea.md", "baking.md"]}}, mmr=0.5
    )
    out, events = await call({"query": "caffeine"}, cfg, retriever)
    assert [c.source for c in out["chunks"]] == ["tea.md"]  # sparse: only term matches, filtered
    assert events[0].data["mode"] == "sparse" and events[0].data["mmr"] == 0.5
    assert events[0].data["filter"] == {"source": {"any": ["tea.md", "baking.md"]}}


async def test_top_k_can_come_from_the_state() -> None:
    retriever = InMemoryRetriever.from_texts(TEXTS)
    cfg = config(top_k=1, top_k_from="width")
    assert retrieve.reads(cfg) == ("query", "width")
    out, _ = await call({"query": "caffeine", "width": 3}, cfg, retriever)
    assert len(out["chunks"]) == 3
    with pytest.raises(RetrievalError, match="'width' must be a positive integer"):
        await call({"query": "caffeine", "width": 0}, cfg, retriever)


async def test_the_fuse_node_widens_with_the_state_like_retrieve() -> None:
    """A loop's verdict raises ``retrieval_k`` on retry: the fused context grows with it."""
    from agentflow.nodes.fuse import fuse

    rankings = [[Chunk(id=f"{q}{i}", text=f"{q}{i}") for i in range(5)] for q in "ab"]
    cfg = fuse.make_config({"input": "ranked", "top_k": 2, "top_k_from": "width"}, node="fuse")
    assert fuse.reads(cfg) == ("ranked", "width")
    ctx = context({}, [])
    first = await fuse.fn({"ranked": rankings}, cfg, ctx)
    wider = await fuse.fn({"ranked": rankings, "width": 6}, cfg, ctx)
    assert [c.id for c in first["chunks"]] == ["a0", "b0"]
    assert [c.id for c in wider["chunks"]] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    with pytest.raises(RetrievalError, match="fuse node 'search': state field 'width' must be a "
                       "positive integer, got 'six'"):
        await fuse.fn({"ranked": rankings, "width": "six"}, cfg, ctx)


async def test_a_plain_retriever_with_only_search_works() -> None:
    class Plain:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        async def search(self, query: str, top_k: int = 8) -> list[Chunk]:
            self.calls.append((query, top_k))
            return [Chunk(id=f"{query}:{i}", text=query) for i in range(top_k)]

    plain = Plain()
    out, _ = await call({"queries": ["a", "b"]}, config(input="queries", top_k=2), plain)
    assert plain.calls == [("a", 2), ("b", 2)]
    assert [c.id for c in out["chunks"]] == ["a:0", "b:0"]


async def test_empty_and_invalid_queries() -> None:
    retriever = InMemoryRetriever.from_texts(TEXTS)
    out, events = await call({"query": "   "}, config(), retriever)
    assert out == {"chunks": []} and events[0].data["queries"] == []
    with pytest.raises(
        RetrievalError, match="'query' must hold a string or a list of strings, got int"
    ):
        await call({"query": 42}, config(), retriever)


def test_config_is_validated_at_build_time() -> None:
    assert retrieve.writes(config(output="docs")) == ("docs",)
    with pytest.raises(GraphBuildError, match="top_k"):
        config(top_k=0)
    with pytest.raises(GraphBuildError, match="unknown operator"):
        config(filter={"lang": {"like": "en"}})
    with pytest.raises(GraphBuildError, match="fields of 'retrieve'"):
        config(colection="docs")
    schema = RetrieveConfig.model_json_schema()
    assert "list of strings" in schema["properties"]["input"]["description"]


class RagState(BaseModel):
    question: str = ""
    queries: list[str] = []
    chunks: list[Chunk] = []


async def test_retrieve_runs_inside_a_flow_with_a_typed_state() -> None:
    flow = af.Flow(
        "rag",
        state=RagState,
        steps=[retrieve("search", collection="docs", input="queries", top_k=2)],
        inputs=("queries",),
    )
    services = Services(retrievers={"docs": InMemoryRetriever.from_texts(TEXTS)})
    collector = af.EventCollector()
    result = await flow.arun(
        {"queries": ["bread yeast", "sourdough"]}, services=services, hooks=[collector]
    )
    assert result["chunks"][0].source == "baking.md"
    (event,) = collector.of_kind("retrieval")
    assert event.data["queries"] == ["bread yeast", "sourdough"]
