"""The embedded store: Qdrant's engine in-process, through ``qdrant-edge-py``.

Each collection is one edge shard in its own directory (by default
``.agentflow/qdrant/<collection>``). It is the real engine: HNSW for the dense vectors once
:meth:`EdgeStore.optimize` has run, an inverted index with IDF for the sparse vectors, prefetch
with reciprocal rank fusion and MMR, payload indexes and a write-ahead log, so one update is
applied whole or not at all. qdrant-client's local mode, by contrast, scans every vector in
Python; see docs/concepts/retrieval.md for the measurements behind this choice.

An edge shard is opened once per process (its WAL is locked); stores on the same directory share
the open shard.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agentflow.errors import RetrievalError
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
_LOCK = threading.Lock()


def _close_shards() -> None:
    """Close every open shard (each flushes what it holds); run at exit, so that a process that
    leaves without tearing its modules down (``agentflow`` commands do) still closes them."""
    with _LOCK:
        shards = list(_SHARDS.values())
        _SHARDS.clear()
    for shard in shards:
        try:
            shard.close()
        except Exception:  # closing at exit: nothing to report to, the next open recovers
            pass


atexit.register(_close_shards)


def _qe() -> Any:
    import qdrant_edge

    return qdrant_edge


class EdgeStore:
    """A collection in an embedded Qdrant edge shard at ``root/<collection>``."""

    def __init__(self, collection: str, root: str | Path = ".agentflow/qdrant") -> None:
        self.collection = check_collection_name(collection)
        self.path = Path(root) / collection
        self.location = str(self.path)

    # -- the shard -----------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RetrievalError:
            raise
        except Exception as exc:  # qdrant-edge raises plain Exception for every engine error
            raise RetrievalError(
                f"embedded Qdrant failed to {what} collection {self.collection!r} at "
                f"{self.location}: {exc}"
            ) from exc

    def _has_data(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def _shard(self, *, required: bool = True) -> Any:
        key = str(self.path.resolve())
        with _LOCK:
            shard = _SHARDS.get(key)
            if shard is not None:
                return shard
            if not self._has_data():
                if required:
                    raise RetrievalError(
                        f"collection {self.collection!r} does not exist at {self.location}; "
                        f"create it with `agentflow ingest PATH... --collection {self.collection}`"
                    )
                return None
            shard = self._call("open", lambda: _qe().EdgeShard.load(str(self.path)))
            _SHARDS[key] = shard
            return shard

    async def exists(self) -> bool:
        return self._shard(required=False) is not None

    async def create(self, dense_dim: int) -> None:
        shard = self._shard(required=False)
        if shard is not None:
            self._check_dim(shard, dense_dim)
            return
        qe = _qe()
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        self.path.mkdir(parents=True, exist_ok=True)
        shard = self._call("create", lambda: qe.EdgeShard.create(str(self.path), config))
        indexes = [
            qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
            for name in _INDEXED
        ]
        self._call("index", lambda: [shard.update(op) for op in indexes])
        with _LOCK:
            _SHARDS[str(self.path.resolve())] = shard

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
        shard = self._shard()
        await asyncio.to_thread(
            self._call, "write to", lambda: shard.update(qe.UpdateOperation.upsert_points(points))
        )

    async def delete(self, filter: Filter) -> None:
        if not filter:
            raise RetrievalError("refusing to delete with an empty filter (it would match all)")
        shard = self._shard()
        op = _qe().UpdateOperation.delete_points_by_filter(to_edge_filter(filter))
        await asyncio.to_thread(self._call, "delete from", lambda: shard.update(op))

    async def optimize(self) -> None:
        shard = self._shard()

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
        shutil.rmtree(self.path, ignore_errors=True)

    async def close(self) -> None:
        key = str(self.path.resolve())
        with _LOCK:
            shard = _SHARDS.pop(key, None)
        if shard is not None:

            def run() -> None:
                shard.flush()
                shard.close()

            self._call("close", run)

    # -- reads -------------------------------------------------------------------------

    async def scan(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        shard = self._shard(required=False)
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
        shard = self._shard(required=False)
        if shard is None:
            return 0
        request = _qe().CountRequest(filter=to_edge_filter(filter) if filter else None, exact=True)
        return int(self._call("count", lambda: shard.count(request)))

    async def query(self, query: StoreQuery) -> list[Hit]:
        require_vectors(query)
        shard = self._shard()
        request = build_request(query)
        # about a millisecond on the engine's own thread pool: cheaper inline than a thread hop
        points = self._call("search", lambda: shard.query(request))
        hits = [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]
        return ordered(hits, query)

    async def info(self) -> StoreInfo:
        shard = self._shard(required=False)
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
