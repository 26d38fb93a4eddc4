"""Retrieval: ingest files, chunk, embed (dense + BM25), store in Qdrant, search with hybrid fusion.

Names are loaded on first use, so importing this package (as ``agentflow --help`` does through
the CLI) loads neither numpy nor Qdrant nor a model.
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

_EXPORTS = {
    "Bm25Encoder": "sparse",
    "ChunkingConfig": "chunking",
    "CollectionSpec": "catalog",
    "Condition": "store",
    "Document": "loaders",
    "EdgeStore": "edge",
    "Embedder": "agentflow.models.embeddings",
    "FieldMap": "loaders",
    "Filter": "store",
    "HashEmbedder": "agentflow.models.embeddings",
    "Hit": "store",
    "IngestReport": "ingestion",
    "LiteLLMEmbedder": "agentflow.models.embeddings",
    "MemoryStore": "memory",
    "MiniLMEmbedder": "agentflow.models.embeddings",
    "QdrantExampleStore": "examples",
    "QdrantRetriever": "retriever",
    "QdrantServerStore": "server",
    "Record": "store",
    "Retriever": "retriever",
    "SearchSettings": "retriever",
    "SparseVector": "store",
    "StoreQuery": "store",
    "VectorStore": "store",
    "ensure_collection": "catalog",
    "ingest": "ingestion",
    "make_embedder": "agentflow.models.embeddings",
    "open_retriever": "catalog",
    "open_store": "catalog",
    "parse_filter": "store",
    "prepare_collections": "catalog",
    "prepare_retrievers": "catalog",
    "rrf_fuse": "retriever",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(
    __name__, {k: v if v.startswith("agentflow.") else f".{v}" for k, v in _EXPORTS.items()}
)


