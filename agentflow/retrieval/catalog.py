"""Collections a workflow declares: where the documents come from, and the store they live in.

The spec layer turns each declared collection into a :class:`CollectionSpec` and calls
:func:`prepare_retrievers` before a run, with the run's model router::

    specs = [CollectionSpec(name="docs", sources=("docs/**/*.md",))]
    retrievers = await prepare_retrievers(specs, base_dir=workflow_dir, models=router)
    services = Services(models=router, retrievers=retrievers)

A collection embeds through the router's ``embed`` alias (or the alias its ``embed`` names), so
the profile in force chooses its embedding model, with the router's retries, accounting and
tracing; the collection records the model, so another profile's model re-embeds it.

The first run ingests the sources with a progress bar; later runs find every document unchanged
and write nothing; a changed, added or deleted source file is re-ingested incrementally.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentflow.errors import ModelError, RetrievalError
from agentflow.models.embeddings.base import Embedder
from agentflow.retrieval.chunking import ChunkingConfig
from agentflow.retrieval.ingestion import IngestReport, ingest
from agentflow.retrieval.loaders import FieldMap
from agentflow.retrieval.retriever import QdrantRetriever, SearchSettings
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import VectorStore, check_collection_name

EMBEDDED_ROOT = Path(".agentflow") / "qdrant"
"""Where embedded collections live, relative to the base directory."""


class CollectionSpec(BaseModel):
    """A collection a workflow searches, and the files it is built from."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    """Collection name, used by ``retrieve`` nodes (``collection: docs``)."""
    description: str = ""
    """What the documents are about (replies say it); :meth:`about` derives one when empty."""
    sources: tuple[str, ...] = ()
    """Files, folders or glob patterns, relative to the workflow's folder. Empty: the collection
    is filled some other way (``agentflow ingest``) and only opened."""
    chunking: ChunkingConfig = ChunkingConfig()
    embed: str = "embed"
    """The model alias whose embedding model embeds the collection: the profile in force
    resolves it (``offline/minilm`` offline, ``openai/text-embedding-3-small`` with ``openai``)."""
    embedder: str | None = None
    """A fixed embedding model instead of the alias, whatever the profile: ``offline/minilm``
    (``minilm`` is the same), ``hash`` (tests) or a LiteLLM embedding model name."""
    field_map: FieldMap | None = None
    """For .jsonl sources: which fields hold the text, title and id."""
    store: str | None = None
    """Where the collection lives: None for the embedded store under ``.agentflow/qdrant``,
    ``embedded:PATH`` for the embedded store under another folder (another disk, say),
    ``http(s)://host:6333`` for a Qdrant server or cluster, ``memory`` for tests, or
    ``local:PATH`` for qdrant-client's local mode."""
    prune: bool = True
    """Remove the chunks of files that are no longer among the sources."""
    search: SearchSettings = SearchSettings()
    bm25_avg_len: float = Field(256.0, gt=0)
    """Expected document length (in words) for BM25's length normalisation."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        try:
            return check_collection_name(name)
        except RetrievalError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sources", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def about(self) -> str:
        """The description, or one derived from the sources: "the documents in handbook"."""
        if self.description.strip():
            return self.description.strip()
        names = list(dict.fromkeys(_source_name(s) for s in self.sources)) or [self.name]
        shown = " and ".join(names[:2]) + (" and others" if len(names) > 2 else "")
        return f"the documents in {shown}"


def _source_name(source: str) -> str:
    """The folder or file a source names, without its glob part: ``docs/**/*.md`` -> ``docs``."""
    parts = Path(source).parts
    plain = [p for p in parts if not any(ch in p for ch in "*?[")]
    kept = plain[: next((i for i, p in enumerate(parts) if p not in plain), len(parts))]
    return Path(*kept).name if kept and Path(*kept).name else source


def open_store(
    collection: str,
    store: str | None = None,
    *,
    base_dir: str | Path = ".",
    api_key: str | None = None,
) -> VectorStore:
    """The store of a collection at a location (see :attr:`CollectionSpec.store`).

    A server's API key is ``api_key`` or the ``QDRANT_API_KEY`` environment variable.
    """
    check_collection_name(collection)
    if store is None or store == "embedded":
        from agentflow.retrieval.edge import EdgeStore

        return EdgeStore(collection, Path(base_dir) / EMBEDDED_ROOT)
    if store.startswith("embedded:") and store.removeprefix("embedded:"):
        from agentflow.retrieval.edge import EdgeStore

        return EdgeStore(collection, Path(base_dir) / store.removeprefix("embedded:"))
    if store == "memory":
        from agentflow.retrieval.memory import MemoryStore

        return MemoryStore.shared(collection)
    if store.startswith(("http://", "https://")):
        from agentflow.retrieval.server import QdrantServerStore

        key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY")
        return QdrantServerStore(collection, url=store, api_key=key)
    if store.startswith("local:"):
        from agentflow.retrieval.server import QdrantServerStore

        path = Path(store.removeprefix("local:"))
        return QdrantServerStore(
            collection, path=path if path.is_absolute() else Path(base_dir) / path
        )
    raise RetrievalError(
        f"unknown store {store!r} for collection {collection!r}; use 'embedded' (the default), "
        "'embedded:PATH', 'memory', 'local:PATH' or a Qdrant URL (http://host:6333)"
    )


_EMBEDDERS: dict[str, Embedder] = {}


def shared_embedder(name: str) -> Embedder:
    """One embedder per name per process (``minilm`` and ``offline/minilm`` are one), so a model
    is loaded once for all collections. MiniLM keeps its vectors in the embedding cache of the
    default models config (``$AGENTFLOW_EMBEDDING_CACHE`` overrides it, read now)."""
    from agentflow.models.embeddings.cache import cache_path, shared_cache
    from agentflow.models.embeddings.names import canonical_name, make_embedder

    key = canonical_name(name)
    embedder = _EMBEDDERS.get(key)
    if embedder is None:
        try:
            made = make_embedder(key, cache=shared_cache(cache_path()))
        except ModelError as exc:
            raise RetrievalError(str(exc)) from exc
        embedder = _EMBEDDERS[key] = made
    return embedder


class EmbeddingRouter(Protocol):
    """What a collection needs of the model router: an embedder for an alias
    (:meth:`~agentflow.models.router.ModelRouter.embedder`)."""

    def embedder(self, alias: str) -> Embedder: ...


DEFAULT_EMBEDDER = "offline/minilm"
"""What the ``embed`` alias resolves to without a router: the default (offline) profile's model."""


def collection_embedder(spec: CollectionSpec, models: EmbeddingRouter | None = None) -> Embedder:
    """The embedder of a collection: its fixed ``embedder`` when it names one, else the router's
    embedder for its ``embed`` alias. Without a router, the ``embed`` alias is the default
    profile's (:data:`DEFAULT_EMBEDDER`); another alias needs the router to resolve it."""
    if spec.embedder is not None:
        return shared_embedder(spec.embedder)
    if models is not None:
        return models.embedder(spec.embed)
    if spec.embed == "embed":
        return shared_embedder(DEFAULT_EMBEDDER)
    raise RetrievalError(
        f"collection {spec.name!r} embeds with the model alias {spec.embed!r}, which only a model "
        "router resolves: pass the run's router (models=...), or name a fixed embedder "
        "(embedder: offline/minilm)"
    )


def open_retriever(
    spec: CollectionSpec, *, base_dir: str | Path = ".", models: EmbeddingRouter | None = None
) -> QdrantRetriever:
    """The retriever of a declared collection (nothing is ingested or checked); ``models`` is
    the run's router, which resolves the collection's embedding alias."""
    return QdrantRetriever(
        open_store(spec.name, spec.store, base_dir=base_dir),
        embedder=collection_embedder(spec, models),
        sparse=Bm25Encoder(avg_len=spec.bm25_avg_len),
        settings=spec.search,
        description=spec.about(),
    )


async def ensure_collection(
    spec: CollectionSpec,
    *,
    base_dir: str | Path = ".",
    progress: bool = True,
    models: EmbeddingRouter | None = None,
) -> IngestReport:
    """Bring a declared collection up to date with its sources; return what changed.

    With no sources, only checks that the collection exists. The chunks are embedded by
    :func:`collection_embedder` (through ``models``, the run's router, when given); a collection
    embedded by another model is embedded again.
    """
    store = open_store(spec.name, spec.store, base_dir=base_dir)
    if not spec.sources:
        if not await store.exists():
            raise RetrievalError(
                f"collection {spec.name!r} has no sources and does not exist at {store.location}; "
                f"declare its sources or run `agentflow ingest PATH... --collection {spec.name}`"
            )
        return IngestReport(spec.name, store.location)
    return await ingest(
        spec.sources,
        store,
        embedder=collection_embedder(spec, models),
        sparse=Bm25Encoder(avg_len=spec.bm25_avg_len),
        chunking=spec.chunking,
        field_map=spec.field_map,
        root=base_dir,
        prune=spec.prune,
        progress=progress,
    )


async def prepare_retrievers(
    specs: Sequence[CollectionSpec],
    *,
    base_dir: str | Path = ".",
    progress: bool = True,
    models: EmbeddingRouter | None = None,
) -> dict[str, QdrantRetriever]:
    """Ensure every declared collection, and return ``{name: retriever}`` for ``Services``."""
    prepared = await prepare_collections(specs, base_dir=base_dir, progress=progress,
                                         models=models)
    return {name: retriever for name, (retriever, _) in prepared.items()}


async def prepare_collections(
    specs: Sequence[CollectionSpec],
    *,
    base_dir: str | Path = ".",
    progress: bool = True,
    models: EmbeddingRouter | None = None,
) -> dict[str, tuple[QdrantRetriever, IngestReport]]:
    """Ensure every declared collection; ``{name: (retriever, what its ingestion changed)}``.
    ``models`` (the run's router) resolves the collections' embedding aliases."""
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RetrievalError(f"collection(s) declared twice: {', '.join(duplicates)}")
    prepared: dict[str, tuple[QdrantRetriever, IngestReport]] = {}
    for spec in specs:
        report = await ensure_collection(spec, base_dir=base_dir, progress=progress, models=models)
        prepared[spec.name] = (open_retriever(spec, base_dir=base_dir, models=models), report)
    return prepared
