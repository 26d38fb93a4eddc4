"""Search: the retriever a workflow's nodes call, and reciprocal rank fusion over result lists.

:class:`QdrantRetriever` embeds the query (dense and BM25), runs one query on a
:class:`~agentflow.retrieval.store.VectorStore` (hybrid fusion, filters and MMR happen in Qdrant's
query API) and returns :class:`~agentflow.documents.Chunk` objects.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentflow.documents import Chunk
from agentflow.errors import RetrievalError
from agentflow.models.embeddings.base import Embedder
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import (
    SEARCH_MODES,
    Filter,
    FilterSpec,
    Hit,
    SearchMode,
    StoreQuery,
    VectorStore,
    parse_filter,
)


@runtime_checkable
class Retriever(Protocol):
    """What the ``retrieve`` node needs: ``await search(query, top_k, ...)``, best chunks first."""

    async def search(self, query: str, top_k: int = 8, **options: Any) -> list[Chunk]: ...


class SearchSettings(BaseModel):
    """Defaults of a retriever's searches; each can be overridden per call.

    The fusion defaults (k=2, weights 1 : 1.25) were tuned on SciFact's train claims and hold on
    its dev claims (benchmarks/retrieval.py, docs/benchmarks.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mode: SearchMode = "hybrid"
    """``hybrid`` (dense and BM25 fused), ``dense`` or ``sparse`` (BM25 only)."""
    rrf_k: int = Field(2, ge=1)
    """The k of reciprocal rank fusion, ``1 / (rank + k)``: small trusts each leg's top hits
    more, large flattens the ranks (60 is the classic choice; 2 is Qdrant's default)."""
    weights: tuple[float, float] | None = (1.0, 1.25)
    """Fusion weights (dense, sparse); BM25 weighs a little more by default."""
    candidates: int = Field(100, ge=1, le=10_000)
    """Points each leg (dense, sparse) fetches before fusion or MMR."""
    mmr: float | None = Field(None, ge=0.0, le=1.0)
    """MMR diversity in [0, 1] (0 = pure relevance); None turns MMR off."""


class QdrantRetriever:
    """Hybrid search over one collection of a :class:`VectorStore`."""

    def __init__(
        self,
        store: VectorStore,
        *,
        embedder: Embedder,
        sparse: Bm25Encoder | None = None,
        settings: SearchSettings | None = None,
        cache_size: int = 512,
        description: str = "",
    ) -> None:
        self.store = store
        self.description = description or f"the documents in collection {store.collection!r}"
        """What the documents are about, for replies (a reply's ``collections.NAME.description``)."""
        self.embedder = embedder
        self.sparse = sparse or Bm25Encoder()
        self.settings = settings or SearchSettings()
        self.collection = store.collection
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    async def search(
        self,
        query: str,
        top_k: int = 8,
        *,
        mode: SearchMode | None = None,
        filter: FilterSpec | Filter | None = None,
        mmr: float | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        candidates: int | None = None,
    ) -> list[Chunk]:
        """The ``top_k`` chunks for ``query``, best first; options override the settings."""
        results = await self.search_many(
            [query],
            top_k,
            mode=mode,
            filter=filter,
            mmr=mmr,
            weights=weights,
            rrf_k=rrf_k,
            candidates=candidates,
        )
        return results[0]

    async def search_many(
        self,
        queries: Sequence[str],
        top_k: int = 8,
        *,
        mode: SearchMode | None = None,
        filter: FilterSpec | Filter | None = None,
        mmr: float | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        candidates: int | None = None,
    ) -> list[list[Chunk]]:
        """One result list per query; the queries are embedded in one batch."""
        if top_k < 1:
            raise RetrievalError(f"top_k must be at least 1, got {top_k}")
        s = self.settings
        mode = mode or s.mode
        if mode not in SEARCH_MODES:
            raise RetrievalError(f"unknown search mode {mode!r}; valid: {', '.join(SEARCH_MODES)}")
        mmr = mmr if mmr is not None else s.mmr
        need_dense = mode != "sparse" or mmr is not None
        dense = await self.embed_queries(queries) if need_dense else None
        base = StoreQuery(
            top_k=top_k,
            mode=mode,
            filter=parse_filter(filter),
            rrf_k=rrf_k or s.rrf_k,
            weights=weights if weights is not None else s.weights,
            candidates=max(candidates or s.candidates, top_k),
            mmr=mmr,
        )
        requests = [
            replace(
                base,
                dense=dense[i].tolist() if dense is not None else None,
                sparse=self.sparse.query(q) if mode != "dense" else None,
            )
            for i, q in enumerate(queries)
        ]
        hits = await asyncio.gather(*(self.store.query(r) for r in requests))
        return [[to_chunk(h) for h in result] for result in hits]

    async def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Dense vectors of queries, with a small LRU cache (loops re-ask the same questions)."""
        missing = [q for q in dict.fromkeys(queries) if q not in self._cache]
        if missing:
            vectors = np.asarray(await self.embedder.embed(missing), dtype=np.float32)
            for q, v in zip(missing, vectors, strict=False):
                self._cache[q] = v
        rows = []
        for q in queries:
            self._cache.move_to_end(q)
            rows.append(self._cache[q])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    async def close(self) -> None:
        await self.store.close()


def to_chunk(hit: Hit) -> Chunk:
    """A store hit as a :class:`Chunk`."""
    p = hit.payload
    return Chunk(
        id=str(p.get("chunk_id", hit.id)),
        text=str(p.get("text", "")),
        source=str(p.get("source", "")),
        title=str(p.get("title", "")),
        heading=str(p.get("heading", "")),
        position=int(p.get("position", 0)),
        score=hit.score,
        metadata=dict(p.get("metadata") or {}),
    )


def rrf_fuse(
    rankings: Sequence[Sequence[Chunk]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> list[Chunk]:
    """Fuse ranked chunk lists by reciprocal rank fusion (Qdrant's weighted form, by chunk id).

    A chunk scores ``sum(1 / ((rank + 1) / w + k - 1))`` over the lists it appears in (rank from
    0); the result carries the fused score. Ties keep first-seen order.
    """
    if weights is not None and len(weights) != len(rankings):
        raise RetrievalError(f"{len(weights)} fusion weights for {len(rankings)} result lists")
    scores: dict[str, float] = {}
    first: dict[str, Chunk] = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[i])
        if w <= 0:
            continue
        for rank, chunk in enumerate(ranking):
            first.setdefault(chunk.id, chunk)
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / ((rank + 1) / w + k - 1)
    ordered = sorted(scores, key=lambda cid: -scores[cid])
    fused = [first[cid].model_copy(update={"score": scores[cid]}) for cid in ordered]
    return fused[:top_k] if top_k is not None else fused
