"""The retriever over every backend, reciprocal rank fusion of chunk lists, the test doubles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agentflow.documents import Chunk
from agentflow.errors import RetrievalError
from agentflow.models.embeddings import HashEmbedder
from agentflow.retrieval.ingestion import ingest
from agentflow.retrieval.retriever import (
    QdrantRetriever,
    Retriever,
    SearchSettings,
    rrf_fuse,
)
from agentflow.retrieval.store import VectorStore
from agentflow.testing.retrieval import InMemoryRetriever


async def filled(corpus: Path, store: VectorStore) -> QdrantRetriever:
    await ingest(
        ["."],
        store,
        embedder=HashEmbedder(),
        root=corpus,
        progress=False,
        field_map="text=abstract,title=title,id=doc_id",
    )
    return QdrantRetriever(store, embedder=HashEmbedder())


async def test_every_mode_finds_the_matching_chunk_on_every_backend(
    corpus: Path, store: VectorStore
) -> None:
    retriever = await filled(corpus, store)
    assert isinstance(retriever, Retriever)
    for mode in ("hybrid", "dense", "sparse"):
        hits = await retriever.search("sourdough wild yeast starter", 3, mode=mode)  # type: ignore[arg-type]
        assert hits[0].source == "kitchen.html", mode
        assert len(hits) <= 3 and all(isinstance(h, Chunk) for h in hits)
    filtered = await retriever.search("planet", 5, filter={"source": {"ne": "solar.txt"}})
    assert all(h.source != "solar.txt" for h in filtered)


async def test_search_many_answers_each_query_in_order(corpus: Path, store: VectorStore) -> None:
    retriever = await filled(corpus, store)
    results = await retriever.search_many(["Jupiter largest planet", "coffee mortality"], 1)
    assert [r[0].source for r in results] == ["solar.txt", "papers.jsonl#103"]


async def test_query_embeddings_are_cached(corpus: Path) -> None:
    calls: list[list[str]] = []

    class Counting(HashEmbedder):
        async def embed(self, texts: Sequence[str]) -> np.ndarray:
            calls.append(list(texts))
            return self.encode(texts)

    from agentflow.retrieval.memory import MemoryStore

    store = MemoryStore("c")
    await ingest(
        ["."],
        store,
        embedder=HashEmbedder(),
        root=corpus,
        progress=False,
        field_map="text=abstract,id=doc_id",
    )
    retriever = QdrantRetriever(store, embedder=Counting(), cache_size=2)
    await retriever.search("planet", 2)
    await retriever.search("planet", 2)
    await retriever.search_many(["planet", "bread"], 2)
    assert calls == [["planet"], ["bread"]]
    assert (await retriever.search("bread", 2, mode="sparse"))[0].source == "kitchen.html"
    assert calls == [["planet"], ["bread"]]  # sparse search embeds nothing dense


async def test_settings_are_defaults_and_bad_options_are_explained(corpus: Path) -> None:
    retriever = InMemoryRetriever.from_texts(
        {"a": "alpha beta", "b": "gamma delta"}, settings=SearchSettings(mode="sparse")
    )
    assert [c.source for c in await retriever.search("gamma", 5)] == ["b"]  # sparse: only matches
    with pytest.raises(RetrievalError, match="unknown search mode 'fuzzy'"):
        await retriever.search("x", 2, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="top_k must be at least 1"):
        await retriever.search("x", 0)
    with pytest.raises(RetrievalError, match="unknown operator"):
        await retriever.search("x", 2, filter={"source": {"like": "a"}})


def chunk(cid: str) -> Chunk:
    return Chunk(id=cid, text=cid)


def test_rrf_fuse_rewards_chunks_found_by_several_lists() -> None:
    fused = rrf_fuse([[chunk("a"), chunk("b"), chunk("c")], [chunk("c"), chunk("d")]], k=60)
    assert [c.id for c in fused] == ["c", "a", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 60)
    assert [c.id for c in rrf_fuse([[chunk("a")], [chunk("b")]], weights=[1, 2])] == ["b", "a"]
    assert [c.id for c in rrf_fuse([[chunk("a"), chunk("b")]], top_k=1)] == ["a"]
    assert rrf_fuse([]) == []
    with pytest.raises(RetrievalError, match="2 fusion weights for 1 result lists"):
        rrf_fuse([[chunk("a")]], weights=[1, 1])


async def test_in_memory_retriever_records_queries_and_supports_mmr_and_filters() -> None:
    retriever = InMemoryRetriever.from_texts(
        ["cats purr softly", "cats purr loudly", "cats purr at night", "dogs bark at night"]
    )
    plain = await retriever.search("cats purr", 2)
    assert {c.source for c in plain} <= {"doc-0", "doc-1", "doc-2"}
    diverse = await retriever.search("cats purr at night", 2, mmr=0.9, mode="dense")
    assert len({c.text.split()[0] for c in diverse}) == 2
    only = await retriever.search("night", 5, filter={"source": "doc-3"})
    assert [c.source for c in only] == ["doc-3"]
    assert retriever.queries == ["cats purr", "cats purr at night", "night"]
    await retriever.add([Chunk(id="new:0", text="parrots talk", source="new")])
    assert (await retriever.search("parrots", 1))[0].id == "new:0"
