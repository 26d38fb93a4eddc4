"""Declared collections: first run ingests, later runs reuse, changes re-ingest; store locations."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentflow.errors import RetrievalError
from agentflow.graph.context import Services
from agentflow.retrieval.catalog import (
    CollectionSpec,
    ensure_collection,
    open_store,
    prepare_retrievers,
)
from agentflow.retrieval.edge import EdgeStore
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.server import QdrantServerStore


def spec(**kwargs: object) -> CollectionSpec:
    values: dict[str, object] = {"name": "docs", "sources": ("*.md", "*.txt"), "embedder": "hash"}
    values.update(kwargs)
    return CollectionSpec.model_validate(values)


async def test_first_run_ingests_later_runs_reuse_and_changes_are_incremental(corpus: Path) -> None:
    first = await ensure_collection(spec(), base_dir=corpus, progress=False)
    assert (first.added, first.documents) == (2, 2)
    assert (corpus / ".agentflow" / "qdrant" / "docs").is_dir()  # the embedded default
    again = await ensure_collection(spec(), base_dir=corpus, progress=False)
    assert (again.unchanged, again.chunks_written, again.changed) == (2, 0, False)
    (corpus / "solar.txt").write_text("Venus is the hottest planet.")
    (corpus / "extra.md").write_text("# Extra\n\nNew notes.")
    changed = await ensure_collection(spec(), base_dir=corpus, progress=False)
    assert (changed.added, changed.updated, changed.unchanged) == (1, 1, 1)
    (corpus / "extra.md").unlink()
    pruned = await ensure_collection(spec(), base_dir=corpus, progress=False)  # prune is on
    assert pruned.removed_sources == ["extra.md"]
    await EdgeStore("docs", corpus / ".agentflow" / "qdrant").close()


async def test_prepare_retrievers_gives_services_a_retriever_per_collection(corpus: Path) -> None:
    specs = [
        spec(name="guides", sources="guide.md", store="memory"),
        spec(
            name="papers",
            sources=("papers.jsonl",),
            store="memory",
            field_map={"text": "abstract", "title": "title", "id": "doc_id"},
        ),
    ]
    retrievers = await prepare_retrievers(specs, base_dir=corpus, progress=False)
    services = Services(retrievers=retrievers)
    (hit,) = await services.retriever("papers").search("sleep memory", 1)
    assert hit.title == "Sleep and memory"
    guide = await services.retriever("guides").search("install pip", 1)
    assert guide[0].source == "guide.md"
    with pytest.raises(RetrievalError, match="declared twice: guides"):
        await prepare_retrievers([specs[0], specs[0]], base_dir=corpus)


async def test_a_collection_without_sources_must_already_exist(corpus: Path) -> None:
    with pytest.raises(RetrievalError, match=r"agentflow ingest PATH\.\.\. --collection empty"):
        await ensure_collection(spec(name="empty", sources=(), store="memory"), base_dir=corpus)


def test_open_store_locations(tmp_path: Path) -> None:
    assert isinstance(open_store("a", None, base_dir=tmp_path), EdgeStore)
    assert isinstance(open_store("a", "embedded", base_dir=tmp_path), EdgeStore)
    assert open_store("a", "memory") is open_store("a", "memory")
    assert isinstance(open_store("a", "memory"), MemoryStore)
    server = open_store("a", "http://localhost:6333", api_key="k")
    assert isinstance(server, QdrantServerStore) and server.location == "http://localhost:6333"
    local = open_store("a", "local:qdrant", base_dir=tmp_path)
    assert isinstance(local, QdrantServerStore) and local.location == str(tmp_path / "qdrant")
    with pytest.raises(RetrievalError, match=r"unknown store 'ftp://x'.*Qdrant URL"):
        open_store("a", "ftp://x")


def test_collection_spec_validates() -> None:
    assert spec(sources="a.md").sources == ("a.md",)
    with pytest.raises(ValidationError, match="invalid collection name"):
        spec(name="bad name")
    with pytest.raises(ValidationError, match="extra"):
        spec(chunk_size=3)
    schema = CollectionSpec.model_json_schema()
    assert "Files, folders or glob patterns" in schema["properties"]["sources"]["description"]
