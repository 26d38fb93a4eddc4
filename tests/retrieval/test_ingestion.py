"""Ingestion: chunk metadata, content hashing, incremental updates, pruning and interruptions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentflow.errors import RetrievalError
from agentflow.models.embeddings import HashEmbedder
from agentflow.retrieval.chunking import ChunkingConfig, chunk
from agentflow.retrieval.ingestion import IngestReport, ingest
from agentflow.retrieval.loaders import FieldMap, discover, load
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.retriever import QdrantRetriever
from agentflow.retrieval.store import Filter, Record, VectorStore

from .retrieval_helpers import write_pdf

FIELDS = "text=abstract,title=title,id=doc_id"


class CountingStore:
    """Wraps a store and counts the write operations that reach it."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.collection, self.location = inner.collection, inner.location
        self.ops: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upsert(self, records: Sequence[Record]) -> None:
        self.ops["upsert"] += 1
        await self.inner.upsert(records)

    async def delete(self, filter: Filter) -> None:
        self.ops["delete"] += 1
        await self.inner.delete(filter)

    async def optimize(self) -> None:
        self.ops["optimize"] += 1
        await self.inner.optimize()


async def run(corpus: Path, store: Any, **kwargs: Any) -> IngestReport:
    kwargs.setdefault("embedder", HashEmbedder())
    kwargs.setdefault("field_map", FIELDS)
    kwargs.setdefault("progress", False)
    return await ingest(["."], store, root=corpus, **kwargs)


async def sources(store: VectorStore) -> Counter[str]:
    return Counter(row["source"] for row in await store.scan(["source"]))


def expected_chunks(corpus: Path, config: ChunkingConfig | None = None) -> Counter[str]:
    out: Counter[str] = Counter()
    for path in discover(["."], root=corpus):
        for doc in load(path, root=corpus, field_map=FieldMap.parse(FIELDS)):
            out[doc.source] = len(chunk(doc, config or ChunkingConfig()))
    return out


async def test_first_ingest_writes_every_chunk_with_metadata(
    corpus: Path, store: VectorStore
) -> None:
    write_pdf(corpus / "bio.pdf", ["Photosynthesis feeds plants.", "Respiration releases energy."])
    report = await run(corpus, store, chunking=ChunkingConfig(size=3, overlap=0))
    assert (report.files, report.documents, report.added, report.unchanged) == (5, 7, 7, 0)
    assert await sources(store) == expected_chunks(corpus, ChunkingConfig(size=3, overlap=0))
    assert report.chunks_written == await store.count()
    retriever = QdrantRetriever(store, embedder=HashEmbedder())
    (hit,) = await retriever.search("Kneading dough", 1, filter={"source": "kitchen.html"})
    assert (hit.title, hit.source) == ("Bread Baking", "kitchen.html")
    assert hit.heading == "Bread Baking > Kneading" and hit.id == f"kitchen.html:{hit.position}"
    pdf = await retriever.search("respiration energy", 5, filter={"source": "bio.pdf"})
    assert {c.metadata["page"] for c in pdf} == {1, 2}
    (paper,) = await retriever.search("calcium absorption", 1, filter={"record_id": "101"})
    assert paper.metadata["year"] == 2019 and paper.source == "papers.jsonl#101"


async def test_reingesting_unchanged_files_writes_nothing(corpus: Path, store: VectorStore) -> None:
    await run(corpus, store)
    counting = CountingStore(store)
    report = await run(corpus, counting)
    assert (report.unchanged, report.added, report.updated, report.chunks_written) == (6, 0, 0, 0)
    assert not report.changed
    assert counting.ops == Counter()


async def test_a_changed_file_replaces_its_chunks(corpus: Path, store: VectorStore) -> None:
    await run(corpus, store)
    (corpus / "solar.txt").write_text("Neptune is the windiest planet.\n")
    counting = CountingStore(store)
    report = await run(corpus, counting)
    assert (report.updated, report.unchanged, report.added) == (1, 5, 0)
    assert (await sources(store))["solar.txt"] == 1
    retriever = QdrantRetriever(store, embedder=HashEmbedder())
    hits = await retriever.search("Jupiter Saturn Mars", 10, filter={"source": "solar.txt"})
    assert [h.text for h in hits] == ["Neptune is the windiest planet."]
    assert counting.ops["upsert"] == 1


async def test_deleted_files_stay_until_pruned(corpus: Path, store: VectorStore) -> None:
    await run(corpus, store)
    (corpus / "guide.md").unlink()
    kept = await run(corpus, store)
    assert kept.removed == 0 and "guide.md" in await sources(store)
    pruned = await run(corpus, store, prune=True)
    assert pruned.removed_sources == ["guide.md"]
    assert "guide.md" not in await sources(store)
    assert await sources(store) == expected_chunks(corpus)


async def test_a_record_removed_from_a_jsonl_file_is_deleted(
    corpus: Path, store: VectorStore
) -> None:
    await run(corpus, store)
    path = corpus / "papers.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    report = await run(corpus, store)
    assert report.removed_sources == ["papers.jsonl#103"]
    assert "papers.jsonl#103" not in await sources(store)


async def test_changing_the_chunking_reingests_everything(corpus: Path) -> None:
    store = MemoryStore("c")
    await run(corpus, store)
    report = await run(corpus, store, chunking=ChunkingConfig(size=5, overlap=1))
    assert report.updated == report.documents == 6
    assert await sources(store) == expected_chunks(corpus, ChunkingConfig(size=5, overlap=1))


class FailingEmbedder(HashEmbedder):
    """Embeds ``budget`` texts, then raises: an ingest interrupted midway."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.budget -= len(texts)
        if self.budget < 0:
            raise KeyboardInterrupt
        return self.encode(texts)


async def test_an_interrupted_ingest_leaves_only_whole_documents(
    corpus: Path, store: VectorStore
) -> None:
    config = ChunkingConfig(size=4, overlap=1)
    expected = expected_chunks(corpus, config)
    half = FailingEmbedder(sum(expected.values()) // 2)
    with pytest.raises(KeyboardInterrupt):
        await run(corpus, store, chunking=config, embedder=half, window=8, batch_size=4)
    partial = await sources(store)
    assert 0 < sum(partial.values()) < sum(expected.values())
    for source, count in partial.items():  # every visible document is complete
        assert count == expected[source], source
    report = await run(corpus, store, chunking=config)
    assert report.unchanged == len(partial)
    assert report.added == len(expected) - len(partial)
    assert await sources(store) == expected


async def test_an_update_interrupted_before_the_old_version_went_is_repaired(corpus: Path) -> None:
    store = MemoryStore("c")
    await run(corpus, store)
    (corpus / "solar.txt").write_text("Neptune is the windiest planet.\n")

    class DeleteFails(CountingStore):
        async def delete(self, filter: Filter) -> None:
            raise RetrievalError("connection lost")

    with pytest.raises(RetrievalError, match="connection lost"):
        await run(corpus, DeleteFails(store))
    assert (await sources(store))["solar.txt"] > 1  # both versions, each whole
    report = await run(corpus, store)
    assert report.unchanged == 6 and (await sources(store))["solar.txt"] == 1


async def test_empty_documents_are_counted_and_emptied_files_lose_their_chunks(
    corpus: Path,
) -> None:
    store = MemoryStore("c")
    (corpus / "blank.txt").write_text("   \n")
    first = await run(corpus, store)
    assert first.empty == 1 and "blank.txt" not in await sources(store)
    (corpus / "solar.txt").write_text("")
    second = await run(corpus, store)
    assert second.removed_sources == ["solar.txt"] and "solar.txt" not in await sources(store)


async def test_embedding_batches_are_bounded_and_length_sorted(corpus: Path) -> None:
    sizes: list[list[int]] = []

    class Recording(HashEmbedder):
        async def embed(self, texts: Sequence[str]) -> np.ndarray:
            sizes.append([len(t) for t in texts])
            return self.encode(texts)

    await run(
        corpus,
        MemoryStore("c"),
        embedder=Recording(),
        chunking=ChunkingConfig(size=6, overlap=0),
        batch_size=5,
    )
    assert all(len(batch) <= 5 for batch in sizes)
    flat = [n for batch in sizes for n in batch]
    assert flat == sorted(flat)  # one window here: sorted by length across batches


async def test_progress_bar_reports_chunks(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(corpus, MemoryStore("c"), progress=True)
    err = capsys.readouterr().err
    assert "ingest c" in err and "chunk" in err


async def test_duplicate_sources_are_rejected(corpus: Path) -> None:
    (corpus / "dupes.jsonl").write_text('{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n')
    with pytest.raises(RetrievalError, match=r"two documents have the source 'dupes\.jsonl#1'"):
        await run(corpus, MemoryStore("c"), field_map="text=text,id=id")
