"""The embedded store: Qdrant's engine in-process, through ``qdrant-edge-py``.

Each collection is one edge shard in its own directory (by default
``.agentflow/qdrant/<collection>``). It is the real engine: HNSW for the dense vectors once
:meth:`EdgeStore.optimize` has run, an inverted index with IDF for the sparse vectors, prefetch
with reciprocal rank fusion and MMR, payload indexes and a write-ahead log, so one update is
applied whole or not at all. qdrant-client's local mode, by contrast, scans every vector in
Python; see docs/concepts/retrieval.md for the measurements behind this choice.

An edge shard is opened once per process (its WAL is locked); stores on the same directory share
the open shard. A second process that opens it waits for the lock (``lock_timeout``, by default
``$AGENTFLOW_STORE_LOCK_TIMEOUT`` or 30 s), then fails naming the process that holds it: each
holder writes its pid to ``.<collection>.lock`` beside the shard. Before each step that allocates
disk space the store checks that the space is free (:mod:`agentflow.retrieval.disk`): the engine's
memory-mapped files would otherwise kill the process with SIGBUS on a full disk.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agentflow.errors import RetrievalError
from agentflow.retrieval import disk
from agentflow.retrieval.holders import LOCK_TIMEOUT_ENV, claim, holder, lock_timeout, release
from agentflow.retrieval.store import (
    DENSE,
    SPARSE,
    Filter,
    Hit,
    Record,
    SparseVector,
    StoreInfo,
    StoreQuery,
    check_collection_name,
    ordered,
    require_vectors,
)

T = TypeVar("T")

_INDEXED = ("source", "file", "doc_hash")
_SHARDS: dict[str, Any] = {}
_OWNED: dict[str, Path | None] = {}
"""Shard key -> the pid file this process wrote for it (None where it could not)."""
_LOCK = threading.Lock()


def _close_shards() -> None:
    """Close every open shard (each flushes what it holds); run at exit, so that a process that
    leaves without tearing its modules down (``agentflow`` commands do) still closes them."""
    with _LOCK:
        shards = list(_SHARDS.items())
        _SHARDS.clear()
    for key, shard in shards:
        try:
            shard.close()
        except Exception:  # closing at exit: nothing to report to, the next open recovers
            pass
        release(_OWNED.pop(key, None))


atexit.register(_close_shards)


def _qe() -> Any:
    import qdrant_edge

    return qdrant_edge


class _Busy(Exception):
    """The shard's WAL is locked by another process."""


def _is_locked(exc: BaseException) -> bool:
    # qdrant-edge reports a held WAL lock as "Can't init WAL: Kind(WouldBlock)"
    return "WouldBlock" in str(exc)


class EdgeStore:
    """A collection in an embedded Qdrant edge shard at ``root/<collection>``.

    ``lock_timeout``: seconds to wait when another process holds the shard open (default
    :func:`lock_timeout`).
    """

    def __init__(
        self,
        collection: str,
        root: str | Path = ".agentflow/qdrant",
        *,
        lock_timeout: float | None = None,
    ) -> None:
        self.collection = check_collection_name(collection)
        self.path = Path(root) / collection
        self.location = str(self.path)
        self.lock_timeout = lock_timeout
        self._created = False

    # -- the shard -----------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RetrievalError:
            raise
        except Exception as exc:  # qdrant-edge raises plain Exception for every engine error
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: Exception) -> RetrievalError:
        hint = ""
        if "os error 28" in str(exc) or "No space left" in str(exc):
            hint = "; the disk is full: free some space, or put the collection on another disk"
        return RetrievalError(
            f"embedded Qdrant failed to {what} collection {self.collection!r} at "
            f"{self.location}: {exc}{hint}"
        )

    def _has_data(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    async def _shard(self, *, required: bool = True) -> Any:
        """The open shard; waits (with backoff) while another process holds it."""
        key = str(self.path.resolve())
        shard = _SHARDS.get(key)
        if shard is not None:  # the common case: open already, no lock to take
            return shard
        started, delay = time.monotonic(), 0.05
        timeout = self.lock_timeout if self.lock_timeout is not None else lock_timeout()
        while True:
            with _LOCK:
                shard = _SHARDS.get(key)
                if shard is not None:
                    return shard
                if not self._has_data():
                    if required:
                        raise RetrievalError(
                            f"collection {self.collection!r} does not exist at {self.location}; "
                            f"create it with `agentflow ingest PATH... --collection "
                            f"{self.collection}`"
                        )
                    return None
                try:
                    shard = self._load()
                except _Busy:
                    pass
                else:
                    _SHARDS[key] = shard
                    _OWNED[key] = claim(self.path)
                    return shard
            waited = time.monotonic() - started
            if waited >= timeout:
                raise self._locked_error(waited)
            await asyncio.sleep(min(delay, timeout - waited))
            delay = min(delay * 2, 1.0)

    def _load(self) -> Any:
        disk.require_space(
            self.path, disk.open_need(self.path), f"open collection {self.collection!r}"
        )
        try:
            return _qe().EdgeShard.load(str(self.path))
        except Exception as exc:
            if _is_locked(exc):
                raise _Busy() from exc
            raise self._error("open", exc) from exc

    def _locked_error(self, waited: float) -> RetrievalError:
        return RetrievalError(
            f"collection {self.collection!r} at {self.location} is locked by "
            f"{holder(self.path)}; waited {waited:.0f}s. An embedded collection can be open in "
            "one process at a time: wait for that one to finish, wait longer "
            f"(${LOCK_TIMEOUT_ENV}, seconds), or share the collection through a Qdrant server "
            "(`store: http://host:6333`)"
        )

    async def exists(self) -> bool:
        return await self._shard(required=False) is not None

    async def create(self, dense_dim: int) -> None:
        shard = await self._shard(required=False)
        if shard is not None:
            self._check_dim(shard, dense_dim)
            return
        disk.require_space(
            self.path, disk.NEW_SHARD + disk.MARGIN, f"create collection {self.collection!r}"
        )
        qe = _qe()
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            shard = qe.EdgeShard.create(str(self.path), config)
        except Exception as exc:
            if not _is_locked(exc) and "already" not in str(exc):
                raise self._error("create", exc) from exc
            # another process created it meanwhile: open theirs once they let go of it
            self._check_dim(await self._shard(), dense_dim)
            return
        indexes = [
            qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
            for name in _INDEXED
        ]
        key = str(self.path.resolve())
        with _LOCK:
            _SHARDS[key] = shard
            _OWNED[key] = claim(self.path)
        self._call("index", lambda: [shard.update(op) for op in indexes])
        self._created = True

    async def _check_reopen(self) -> None:
        """After the first write to a shard this store created (which makes the engine's files):
        drop it again unless there is the space to open it later (on tmpfs opening fills those
        files), rather than leave a collection that no later run can open."""
        self._created = False
        try:
            disk.require_space(
                self.path,
                disk.open_need(self.path),
                f"open collection {self.collection!r} (which every later run does)",
            )
        except RetrievalError:
            await self.drop()
            raise

    def _check_dim(self, shard: Any, dense_dim: int) -> None:
        dim = self._dim(shard)
        if dim is not None and dim != dense_dim:
            raise RetrievalError(
                f"collection {self.collection!r} at {self.location} holds {dim}-dimensional "
                f"dense vectors; the embedder gives {dense_dim}. Use the embedder the "
                "collection was built with, or another collection name"
            )

    @staticmethod
    def _dim(shard: Any) -> int | None:
        records = shard.scroll(
            _qe().ScrollRequest(limit=1, with_payload=False, with_vector=[DENSE])
        )[0]
        if not records or not isinstance(records[0].vector, dict):
            return None
        vector = records[0].vector.get(DENSE)
        return len(vector) if vector is not None else None

    # -- writes ------------------------------------------------------------------------

    async def upsert(self, records: Sequence[Record]) -> None:
        if not records:
            return
        qe = _qe()
        points = [
            qe.Point(
                id=r.id,
                vector={DENSE: r.dense, SPARSE: qe.SparseVector(r.sparse.indices, r.sparse.values)},
                payload=r.payload,
            )
            for r in records
        ]
        shard = await self._shard()
        dims = sum(len(r.dense) + 2 * len(r.sparse.indices) for r in records)
        texts = sum(len(str(r.payload.get("text", ""))) for r in records)
        disk.require_space(
            self.path,
            disk.write_need(dims, texts, len(records)),
            f"write {len(records)} chunk(s) to collection {self.collection!r}",
        )
        await asyncio.to_thread(
            self._call, "write to", lambda: shard.update(qe.UpdateOperation.upsert_points(points))
        )
        if self._created:
            await self._check_reopen()

    async def delete(self, filter: Filter) -> None:
        if not filter:
            raise RetrievalError("refusing to delete with an empty filter (it would match all)")
        shard = await self._shard()
        disk.require_space(self.path, disk.MARGIN, f"delete from collection {self.collection!r}")
        op = _qe().UpdateOperation.delete_points_by_filter(to_edge_filter(filter))
        await asyncio.to_thread(self._call, "delete from", lambda: shard.update(op))

    async def optimize(self) -> None:
        shard = await self._shard()
        points = self._call("inspect", shard.info).points_count
        need = disk.optimize_need(points, self._call("inspect", lambda: self._dim(shard)) or 0)
        disk.require_space(
            self.path,
            need,
            f"index collection {self.collection!r} (its chunks are written and searchable; the "
            "indexes are built by the next ingest that changes it)",
        )

        def run() -> None:
            shard.optimize()
            shard.flush()

        await asyncio.to_thread(self._call, "optimize", run)

    async def drop(self) -> None:
        key = str(self.path.resolve())
        with _LOCK:
            shard = _SHARDS.pop(key, None)
        if shard is not None:
            self._call("close", shard.close)
            release(_OWNED.pop(key, None))
        shutil.rmtree(self.path, ignore_errors=True)

    async def close(self) -> None:
        key = str(self.path.resolve())
        with _LOCK:
            shard = _SHARDS.pop(key, None)
        if shard is not None:

            def run() -> None:
                shard.flush()
                shard.close()

            try:
                self._call("close", run)
            finally:
                release(_OWNED.pop(key, None))

    # -- reads -------------------------------------------------------------------------

    async def scan(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        shard = await self._shard(required=False)
        if shard is None:
            return []
        qe = _qe()
        selector = qe.PayloadSelector.Include(list(fields))

        def run() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            offset = None
            while True:
                request = qe.ScrollRequest(offset=offset, limit=4096, with_payload=selector)
                records, offset = shard.scroll(request)
                out.extend(dict(r.payload or {}) for r in records)
                if offset is None:
                    return out

        return await asyncio.to_thread(self._call, "scan", run)

    async def count(self, filter: Filter | None = None) -> int:
        shard = await self._shard(required=False)
        if shard is None:
            return 0
        request = _qe().CountRequest(filter=to_edge_filter(filter) if filter else None, exact=True)
        return int(self._call("count", lambda: shard.count(request)))

    async def query(self, query: StoreQuery) -> list[Hit]:
        require_vectors(query)
        shard = await self._shard()
        request = build_request(query)
        # about a millisecond on the engine's own thread pool: cheaper inline than a thread hop
        points = self._call("search", lambda: shard.query(request))
        hits = [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]
        return ordered(hits, query)

    async def info(self) -> StoreInfo:
        shard = await self._shard(required=False)
        if shard is None:
            return StoreInfo(self.collection, False, location=self.location)
        info = self._call("inspect", shard.info)
        return StoreInfo(
            self.collection,
            True,
            points=info.points_count,
            dense_dim=self._call("inspect", lambda: self._dim(shard)),
            location=self.location,
            extra={"segments": info.segments_count, "indexed_vectors": info.indexed_vectors_count},
        )


def _sparse(vector: SparseVector) -> Any:
    return _qe().SparseVector(vector.indices, vector.values)


def build_request(query: StoreQuery) -> Any:
    """Translate a :class:`StoreQuery` into an edge ``QueryRequest``."""
    qe = _qe()
    flt = to_edge_filter(query.filter) if query.filter else None
    dense_leg = qe.Query.Nearest(query.dense, using=DENSE) if query.dense is not None else None
    sparse_leg = (
        qe.Query.Nearest(_sparse(query.sparse), using=SPARSE) if query.sparse is not None else None
    )
    limit = max(query.candidates, query.top_k)
    if query.mode == "hybrid":
        weights = list(query.weights) if query.weights is not None else None
        fused: Any = qe.Fusion.Rrf(k=query.rrf_k, weights=weights)
        legs = [
            qe.Prefetch(limit=limit, query=dense_leg),
            qe.Prefetch(limit=limit, query=sparse_leg),
        ]
        if query.mmr is None:
            return qe.QueryRequest(
                limit=query.top_k, query=fused, prefetches=legs, filter=flt, with_payload=True
            )
        prefetches = [qe.Prefetch(limit=limit, query=fused, prefetches=legs)]
    else:
        leg = dense_leg if query.mode == "dense" else sparse_leg
        if query.mmr is None:
            return qe.QueryRequest(limit=query.top_k, query=leg, filter=flt, with_payload=True)
        prefetches = [qe.Prefetch(limit=limit, query=leg)]
    mmr = qe.Mmr(query.dense, 1.0 - query.mmr, limit, using=DENSE)
    return qe.QueryRequest(
        limit=query.top_k, query=mmr, prefetches=prefetches, filter=flt, with_payload=True
    )


def to_edge_filter(filter: Filter) -> Any:
    """Translate a :class:`Filter` into an edge ``Filter``."""
    qe = _qe()
    must: list[Any] = []
    must_not: list[Any] = []
    for c in filter.conditions:
        if c.op == "eq":
            must.append(qe.FieldCondition(key=c.key, match=qe.MatchValue(c.value)))
        elif c.op == "ne":
            must_not.append(qe.FieldCondition(key=c.key, match=qe.MatchValue(c.value)))
        elif c.op == "any":
            must.append(qe.FieldCondition(key=c.key, match=qe.MatchAny(list(c.value))))
        elif c.op == "none":
            must_not.append(qe.FieldCondition(key=c.key, match=qe.MatchAny(list(c.value))))
        else:
            must.append(qe.FieldCondition(key=c.key, range=qe.RangeFloat(**c.value)))
    return qe.Filter(must=must or None, must_not=must_not or None)
