"""Ingestion of bad inputs: nothing to ingest, corrupt PDFs, binary data, endless lines."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from agentflow.errors import RetrievalError, UnreadableDocumentError
from agentflow.models.embeddings import HashEmbedder
from agentflow.retrieval.chunking import MAX_WORD_CHARS, ChunkingConfig, chunk
from agentflow.retrieval.edge import EdgeStore
from agentflow.retrieval.ingestion import IngestReport, ingest
from agentflow.retrieval.loaders import Document, load
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.store import VectorStore

from .retrieval_helpers import write_pdf


async def _ingest(folder: Path, store: VectorStore, **kwargs: object) -> IngestReport:
    return await ingest(["."], store, embedder=HashEmbedder(), root=folder, progress=False,
                        **kwargs)  # type: ignore[arg-type]


def _random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_an_empty_folder_is_an_error_that_names_it_and_what_was_looked_for(
        tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.docx").write_bytes(b"not a supported type")
    store = EdgeStore("kb", tmp_path / "qdrant")
    with pytest.raises(RetrievalError, match=r"no documents found under docs .*\.md.*\.pdf.*\.txt"):
        await ingest(["docs"], store, embedder=HashEmbedder(), root=tmp_path, progress=False)
    assert not await store.exists()


async def test_files_with_no_text_are_an_error_not_a_collection_that_is_missing_later(
        tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("  \n")
    store = EdgeStore("kb", tmp_path / "qdrant")
    with pytest.raises(RetrievalError, match=r"no text to index under \. .*1 with no text.*'kb'"):
        await _ingest(tmp_path, store)


async def test_a_corrupt_pdf_is_skipped_with_a_warning_and_the_rest_ingested(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = write_pdf(tmp_path / "good.pdf", ["The tide rises twice a day."])
    (tmp_path / "broken.pdf").write_bytes(good.read_bytes()[:200])
    (tmp_path / "noise.pdf").write_bytes(b"%PDF-1.4\n" + _random_bytes(4000))
    (tmp_path / "notes.md").write_text("# Notes\n\nThe moon pulls the sea.\n")
    store = MemoryStore("kb")
    with caplog.at_level(logging.WARNING, logger="agentflow.retrieval.ingestion"):
        report = await _ingest(tmp_path, store)
    assert (report.files, report.documents, report.added) == (4, 2, 2)
    assert len(report.skipped) == 2 and "2 file(s) skipped" in report.summary()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.pdf" in warned and "noise.pdf" in warned and "skipped" in warned
    assert {r["source"] for r in await store.scan(["source"])} == {"good.pdf", "notes.md"}


def test_a_corrupt_pdf_raises_an_unreadable_document_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(_random_bytes(20_000))
    with pytest.raises(UnreadableDocumentError, match=r"cannot read PDF .*bad\.pdf"):
        load(path)
    path.write_bytes(b"")
    with pytest.raises(UnreadableDocumentError, match="empty"):
        load(path)


@pytest.mark.parametrize("name", ["random.txt", "random.md", "random.html"])
def test_random_bytes_in_a_text_file_are_refused_as_binary(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(_random_bytes(20_000).replace(b"\0", b"\1"))  # no NUL: the ratio decides
    with pytest.raises(UnreadableDocumentError, match=rf"{name}: it looks binary.*% of its"):
        load(path)
    path.write_bytes(b"plain text\0with a NUL")
    with pytest.raises(UnreadableDocumentError, match="NUL bytes"):
        load(path)


async def test_random_bytes_become_no_chunks_and_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "random.txt").write_bytes(_random_bytes(20_000))
    (tmp_path / "real.txt").write_text("Real text about tides and the moon.")
    store = MemoryStore("kb")
    with caplog.at_level(logging.WARNING, logger="agentflow.retrieval.ingestion"):
        report = await _ingest(tmp_path, store)
    assert report.chunks_written == 1 and "random.txt" in report.skipped[0]
    assert any("random.txt" in r.getMessage() for r in caplog.records)


def test_text_with_a_few_stray_bytes_or_a_utf16_bom_is_read(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\xe9 au lait, a long enough sentence to be text.".encode("latin-1"))
    assert load(latin)[0].text.startswith("Caf\ufffd au lait")
    wide = tmp_path / "wide.txt"
    wide.write_bytes("Tides, in UTF-16.".encode("utf-16"))
    assert load(wide)[0].text == "Tides, in UTF-16."


async def test_a_skipped_file_keeps_the_chunks_it_had(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("The first version of the text.")
    (tmp_path / "b.txt").write_text("Another document.")
    store = MemoryStore("kb")
    await _ingest(tmp_path, store, prune=True)
    doc.write_bytes(_random_bytes(5_000))  # became unreadable: skipped, not deleted
    report = await _ingest(tmp_path, store, prune=True)
    assert report.removed == 0 and report.skipped
    assert {r["source"] for r in await store.scan(["source"])} == {"a.txt", "b.txt"}


@pytest.mark.parametrize("chunker", ["tokens", "markdown", "sentences"])
def test_a_long_line_without_spaces_is_split_at_the_chunk_size(chunker: str) -> None:
    line = "".join(random.Random(3).choices("abcdefghij", k=300_000))
    config = ChunkingConfig(chunker=chunker, size=50, overlap=5)  # type: ignore[arg-type]
    pieces = chunk(Document(line, "x", "x", format="markdown"), config)
    assert len(pieces) > 100
    assert max(len(p.text) for p in pieces) <= config.size * MAX_WORD_CHARS
    for piece in pieces:  # each chunk is still the exact text at its offset
        assert line[piece.start : piece.start + len(piece.text)] == piece.text
    assert pieces[-1].start + len(pieces[-1].text) == len(line)
