"""Test doubles for retrieval: a deterministic hash embedder and an in-memory retriever.

.. code-block:: python

    from agentflow.testing.retrieval import InMemoryRetriever

    retriever = InMemoryRetriever.from_texts({"a.md": "Qdrant is a vector database.",
                                              "b.md": "LangGraph runs graphs."})
    services = Services(retrievers={"docs": retriever})

:class:`InMemoryRetriever` is the real :class:`~agentflow.retrieval.retriever.QdrantRetriever`
over a :class:`~agentflow.retrieval.memory.MemoryStore` with the :class:`HashEmbedder`: the same
chunking, BM25, fusion, filters and MMR as production, with no model and no disk. It records every
query it receives in ``queries``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentflow.documents import Chunk
from agentflow.models.embeddings.base import Embedder
from agentflow.models.embeddings.hashing import HashEmbedder
from agentflow.retrieval.chunking import ChunkingConfig, chunk
from agentflow.retrieval.ingestion import embed_text
from agentflow.retrieval.loaders import Document
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.retriever import QdrantRetriever, SearchSettings
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import Record

__all__ = ["HashEmbedder", "InMemoryRetriever", "MemoryStore"]


class InMemoryRetriever(QdrantRetriever):
    """A retriever over chunks held in memory; add chunks, then search as in production."""

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        settings: SearchSettings | None = None,
        collection: str = "memory",
    ) -> None:
        super().__init__(
            MemoryStore(collection),
            embedder=embedder or HashEmbedder(),
            sparse=Bm25Encoder(),
            settings=settings,
        )
        self.queries: list[str] = []
        """Every query searched, in order."""

    @classmethod
    def from_texts(
        cls,
        texts: Mapping[str, str] | Sequence[str],
        *,
        chunking: ChunkingConfig | None = None,
        **kwargs: Any,
    ) -> InMemoryRetriever:
        """A retriever over texts, keyed by source name (``doc-<i>`` for a plain list), chunked."""
        items = (
            texts.items()
            if isinstance(texts, Mapping)
            else ((f"doc-{i}", t) for i, t in enumerate(texts))
        )
        retriever = cls(**kwargs)
        config = chunking or ChunkingConfig()
        chunks = []
        for source, text in items:
            doc = Document(text, source, source, "", "text")
            for position, piece in enumerate(chunk(doc, config)):
                chunks.append(
                    Chunk(
                        id=f"{source}:{position}",
                        text=piece.text,
                        source=source,
                        position=position,
                        heading=piece.heading,
                    )
                )
        retriever.add_sync(chunks)
        return retriever

    def add_sync(self, chunks: Iterable[Chunk]) -> None:
        """Index chunks (by id; a chunk with a known id replaces the old one)."""
        items = list(chunks)
        if not items:
            return
        texts = [embed_text(c.title, c.heading, c.text) for c in items]
        encode = getattr(self.embedder, "encode", None)
        if encode is None:
            raise TypeError("add_sync needs an embedder with a synchronous encode(); use add()")
        self._index(items, texts, encode(texts))

    async def add(self, chunks: Iterable[Chunk]) -> None:
        """Index chunks with any embedder (async)."""
        items = list(chunks)
        if items:
            texts = [embed_text(c.title, c.heading, c.text) for c in items]
            self._index(items, texts, await self.embedder.embed(texts))

    def _index(self, items: list[Chunk], texts: list[str], vectors: Any) -> None:
        store = self.store
        assert isinstance(store, MemoryStore)
        sparse = self.sparse.documents(texts)
        store.put(
            [
                Record(
                    str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentflow-test:{c.id}")),
                    [float(x) for x in vector],
                    sv,
                    {
                        "chunk_id": c.id,
                        "text": c.text,
                        "source": c.source,
                        "file": c.source,
                        "title": c.title,
                        "heading": c.heading,
                        "position": c.position,
                        "doc_hash": "",
                        "metadata": dict(c.metadata),
                    },
                )
                for c, vector, sv in zip(items, vectors, sparse, strict=False)
            ]
        )

    async def search_many(
        self, queries: Sequence[str], top_k: int = 8, **options: Any
    ) -> list[list[Chunk]]:
        self.queries.extend(queries)
        return await super().search_many(queries, top_k, **options)
