"""Ingestion: files -> documents -> chunks -> dense and BM25 vectors -> the store, incrementally.

Every document carries a content hash (its text, title, metadata, and the chunking, embedder and
BM25 settings). The store itself is the manifest: each point's payload holds its document's
``source``, ``file`` and ``doc_hash``. So re-ingesting:

- an unchanged document writes nothing;
- a changed document is written under its new hash, then the points of its old hash are deleted;
- a record gone from a changed .jsonl file is deleted; with ``prune``, documents of files that are
  not among the given paths any more (deleted files) are deleted.

A document's chunks are written in one store operation, so an interrupted ingest never leaves a
half-written document visible to search; documents finished before the interruption stay, and the
next run picks up the rest. Embedding runs in large length-sorted batches while the previous batch
is being written, so ingestion keeps pace with the embedder.

A file whose content is not text (a corrupt PDF, binary data) is skipped with a warning naming it;
the chunks it had before stay. Paths that name no file to ingest, or files with no text at all
for a collection that does not exist yet, are an error rather than a collection no run can open.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentflow.errors import RetrievalError, UnreadableDocumentError
from agentflow.models.embeddings.base import Embedder
from agentflow.retrieval.chunking import ChunkingConfig, Piece, chunk
from agentflow.retrieval.loaders import (
    FORMATS,
    Document,
    FieldMap,
    discover,
    load,
    source_name,
)
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import Condition, Filter, Record, VectorStore

log = logging.getLogger(__name__)

_VERSION = "1"
_NAMESPACE = uuid.UUID("6c1d3a52-9d0e-4b7f-8a55-2f0c1f6f3a10")


@dataclass(slots=True)
class IngestReport:
    """What an ingest did. ``documents`` = ``added + updated + unchanged + empty``."""

    collection: str
    location: str
    files: int = 0
    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    empty: int = 0
    """Documents with no text to index (an empty file, say)."""
    removed: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    removed_sources: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files that were not ingested, each with the reason (a corrupt PDF, binary data)."""

    @property
    def changed(self) -> bool:
        """Whether the collection was written to."""
        return bool(self.chunks_written or self.removed)

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.collection}: {self.files} file(s), {self.documents} document(s): "
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed; {self.chunks_written} chunk(s) written in "
            f"{self.seconds:.1f}s ({self.location})"
            + (f"; {len(self.skipped)} file(s) skipped (see the warnings)" if self.skipped else "")
        )


@dataclass(slots=True)
class _Pending:
    doc: Document
    doc_hash: str
    pieces: list[Piece]
    replaces: bool


def embed_text(title: str, heading: str, text: str) -> str:
    """The text that is embedded for a chunk: the chunk with its title and heading as context."""
    context = [part for part in (title, heading) if part and not text.lstrip().startswith(part)]
    return "\n".join([*context, text]) if context else text


def document_hash(doc: Document, settings: str) -> str:
    """Content hash of a document under given ingest settings."""
    body = json.dumps(
        [_VERSION, settings, doc.source, doc.title, doc.text, doc.metadata],
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


async def ingest(
    paths: Sequence[str | Path],
    store: VectorStore,
    *,
    embedder: Embedder,
    sparse: Bm25Encoder | None = None,
    chunking: ChunkingConfig | None = None,
    field_map: FieldMap | str | None = None,
    root: str | Path = ".",
    prune: bool = False,
    progress: bool = True,
    window: int = 1024,
    batch_size: int | None = None,
) -> IngestReport:
    """Bring ``store`` up to date with the files under ``paths`` (files, folders or globs).

    Chunks are embedded in windows of about ``window`` chunks, ``batch_size`` texts per call to
    the embedder (by default the embedder's own batch size times its concurrency, at least 64).
    Returns what changed. Raises :class:`RetrievalError` for unreadable files, unsupported types
    or store failures; what was written before a failure stays and is complete.
    """
    if batch_size is None:
        per_call = getattr(embedder, "batch_size", 32) * getattr(embedder, "concurrency", 2)
        batch_size = max(64, int(per_call))
    job = _Ingest(
        store,
        embedder,
        sparse or Bm25Encoder(),
        chunking or ChunkingConfig(),
        FieldMap.parse(field_map),
        root,
        window,
        batch_size,
    )
    return await job.run(paths, prune=prune, progress=progress)


class _Ingest:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: Bm25Encoder,
        chunking: ChunkingConfig,
        field_map: FieldMap,
        root: str | Path,
        window: int,
        batch_size: int,
    ) -> None:
        self.store, self.embedder, self.sparse = store, embedder, sparse
        self.chunking, self.field_map, self.root = chunking, field_map, root
        self.window, self.batch_size = max(1, window), max(1, batch_size)
        self.settings = f"{chunking.fingerprint()}|{embedder.name}|{sparse.name}"
        self.created = False

    async def run(
        self, paths: Sequence[str | Path], *, prune: bool, progress: bool
    ) -> IngestReport:
        started = time.perf_counter()
        files = discover(paths, root=self.root)
        if not files:
            raise RetrievalError(
                f"no documents found under {_where(paths, self.root)} (looked for "
                f"{', '.join(sorted(FORMATS))} files; hidden files and folders are skipped)"
            )
        report = IngestReport(self.store.collection, self.store.location, files=len(files))
        skipped: set[str] = set()
        docs = self._load(files, report, skipped)
        report.documents = len(docs)
        known: dict[str, set[str]] = {}
        file_of: dict[str, str] = {}
        for row in await self.store.scan(["source", "file", "doc_hash"]):
            known.setdefault(row.get("source", ""), set()).add(row.get("doc_hash", ""))
            file_of[row.get("source", "")] = row.get("file", "")

        pending: list[_Pending] = []
        stale: list[tuple[str, str]] = []  # (source, hash to keep) after an interrupted update
        emptied: list[str] = []  # documents that had chunks and now have no text
        for doc in docs:
            digest = document_hash(doc, self.settings)
            hashes = known.get(doc.source, set())
            if hashes == {digest}:
                report.unchanged += 1
            elif digest in hashes:
                report.unchanged += 1
                stale.append((doc.source, digest))
            else:
                pieces = chunk(doc, self.chunking)
                if pieces:
                    pending.append(_Pending(doc, digest, pieces, bool(hashes)))
                else:
                    report.empty += 1
                    emptied.extend([doc.source] if hashes else [])
        current_files = {doc.file for doc in docs} | {source_name(f, self.root) for f in files}
        current = {doc.source for doc in docs}
        gone = sorted(
            {
                s
                for s in known
                if s not in current
                and file_of.get(s) not in skipped  # unreadable now: keep what it had
                and (prune or file_of.get(s) in current_files)
            }
            | set(emptied)
        )
        report.added = sum(1 for p in pending if not p.replaces)
        report.updated = len(pending) - report.added

        await self._write(pending, report, progress)
        for source, digest in stale:
            await self.store.delete(_old_versions([source], [digest]))
        for i in range(0, len(gone), 256):
            await self.store.delete(Filter((Condition("source", "any", gone[i : i + 256]),)))
        report.removed, report.removed_sources = len(gone), gone
        if report.changed or stale:
            await self.store.optimize()
        elif not known and not await self.store.exists():
            raise RetrievalError(
                f"no text to index under {_where(paths, self.root)}: {len(files)} file(s) found, "
                f"{report.empty} with no text and {len(report.skipped)} skipped as unreadable; "
                f"collection {self.store.collection!r} was not created"
            )
        report.seconds = time.perf_counter() - started
        return report

    def _load(self, files: list[Path], report: IngestReport, skipped: set[str]) -> list[Document]:
        docs: list[Document] = []
        seen: dict[str, str] = {}
        for path in files:
            try:
                loaded = load(path, root=self.root, field_map=self.field_map)
            except UnreadableDocumentError as exc:
                log.warning("%s; skipped, the other files are ingested", exc)
                report.skipped.append(str(exc))
                skipped.add(source_name(path, self.root))
                continue
            for doc in loaded:
                if doc.source in seen:
                    raise RetrievalError(
                        f"two documents have the source {doc.source!r} (in {seen[doc.source]} and "
                        f"{path}); give .jsonl records unique ids (--field-map id=FIELD)"
                    )
                seen[doc.source] = str(path)
                docs.append(doc)
        return docs

    async def _write(self, pending: list[_Pending], report: IngestReport, progress: bool) -> None:
        total = sum(len(p.pieces) for p in pending)
        if not total:
            return
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, unit="chunk", desc=f"ingest {self.store.collection}", disable=not progress
        )
        writer: asyncio.Task[None] | None = None
        try:
            for group in _windows(pending, self.window):
                texts = [
                    embed_text(p.doc.title, piece.heading, piece.text)
                    for p in group
                    for piece in p.pieces
                ]
                vectors = await self._embed(texts, bar)
                if writer is not None:
                    await writer
                writer = asyncio.create_task(self._commit(group, texts, vectors, report))
            if writer is not None:
                await writer
        finally:
            if writer is not None and not writer.done():
                # the window being written is fully embedded: finish it rather than lose it
                await asyncio.gather(writer, return_exceptions=True)
            bar.close()

    async def _embed(self, texts: list[str], bar: Any) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            vectors = np.asarray(
                await self.embedder.embed([texts[j] for j in idx]), dtype=np.float32
            )
            if vectors.ndim != 2 or len(vectors) != len(idx):
                raise RetrievalError(
                    f"embedder {self.embedder.name!r} returned {vectors.shape} for {len(idx)} texts"
                )
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            bar.update(len(idx))
        assert out is not None
        return out

    async def _commit(
        self, group: list[_Pending], texts: list[str], vectors: np.ndarray, report: IngestReport
    ) -> None:
        if not self.created:
            await self.store.create(int(vectors.shape[1]))
            self.created = True
        sparse = await asyncio.to_thread(self.sparse.documents, texts)
        row = 0
        for doc_batch in _windows(group, 512):
            records: list[Record] = []
            for p in doc_batch:
                for position, piece in enumerate(p.pieces):
                    records.append(self._record(p, position, piece, vectors[row], sparse[row]))
                    row += 1
            await self.store.upsert(records)  # one operation: these documents appear whole
            report.chunks_written += len(records)
            replaced = [p for p in doc_batch if p.replaces]
            if replaced:
                await self.store.delete(
                    _old_versions([p.doc.source for p in replaced], [p.doc_hash for p in replaced])
                )

    def _record(
        self, p: _Pending, position: int, piece: Piece, dense: np.ndarray, sparse: Any
    ) -> Record:
        doc = p.doc
        metadata = dict(doc.metadata)
        metadata["start"] = piece.start
        if doc.pages:
            metadata["page"] = int(np.searchsorted(doc.pages, piece.start, side="right"))
        key = f"{self.store.collection}\x00{doc.source}\x00{p.doc_hash}\x00{position}"
        return Record(
            id=str(uuid.uuid5(_NAMESPACE, key)),
            dense=dense.tolist(),
            sparse=sparse,
            payload={
                "chunk_id": f"{doc.source}:{position}",
                "text": piece.text,
                "source": doc.source,
                "file": doc.file,
                "title": doc.title,
                "heading": piece.heading,
                "position": position,
                "doc_hash": p.doc_hash,
                "metadata": metadata,
            },
        )


def _where(paths: Sequence[str | Path], root: str | Path) -> str:
    named = ", ".join(str(p) for p in paths) or "(no paths)"
    return named if str(root) == "." else f"{named} (in {root})"


def _old_versions(sources: list[str], keep: list[str]) -> Filter:
    return Filter((Condition("source", "any", sources), Condition("doc_hash", "none", keep)))


def _windows(pending: list[_Pending], size: int) -> list[list[_Pending]]:
    """Whole documents grouped into windows of about ``size`` chunks."""
    windows: list[list[_Pending]] = [[]]
    count = 0
    for p in pending:
        if windows[-1] and count + len(p.pieces) > size:
            windows.append([])
            count = 0
        windows[-1].append(p)
        count += len(p.pieces)
    return [w for w in windows if w]
