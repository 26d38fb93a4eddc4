"""An in-memory store for tests: the same contract and the same scoring as Qdrant, in numpy.

Dense search is exact cosine similarity; sparse search is the dot product of the query's term
weights times Qdrant's IDF, ``ln(1 + (N - df + 0.5) / (df + 0.5))``, with the document's stored
weights; hybrid fusion is Qdrant's weighted reciprocal rank fusion and MMR is Qdrant's. Nothing is
persisted. ``MemoryStore.shared(name)`` returns one store per collection name per process, so an
ingest and a later search in the same process see the same points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from agentflow.errors import RetrievalError
from agentflow.retrieval.store import (
    Filter,
    Hit,
    Record,
    SparseVector,
    StoreInfo,
    StoreQuery,
    check_collection_name,
    require_vectors,
)


class MemoryStore:
    """A collection held in this process's memory."""

    _shared: ClassVar[dict[str, MemoryStore]] = {}

    def __init__(self, collection: str = "memory") -> None:
        self.collection = check_collection_name(collection)
        self.location = "memory"
        self._dim: int | None = None
        self._points: dict[str, Record] = {}
        self.writes = 0
        """Number of write operations (upserts and deletes) applied; tests use it."""

    @classmethod
    def shared(cls, collection: str) -> MemoryStore:
        """The process-wide store of a collection name (created on first use)."""
        store = cls._shared.get(collection)
        if store is None:
            store = cls._shared[collection] = cls(collection)
        return store

    @classmethod
    def clear_shared(cls) -> None:
        """Forget every shared store (between tests)."""
        cls._shared.clear()

    async def exists(self) -> bool:
        return self._dim is not None

    async def create(self, dense_dim: int) -> None:
        if self._dim is not None and self._dim != dense_dim:
            raise RetrievalError(
                f"collection {self.collection!r} (memory) holds {self._dim}-dimensional dense "
                f"vectors; the embedder gives {dense_dim}"
            )
        self._dim = dense_dim

    def _require(self) -> None:
        if self._dim is None:
            raise RetrievalError(
                f"collection {self.collection!r} does not exist in memory; ingest documents first"
            )

    async def upsert(self, records: Sequence[Record]) -> None:
        self._require()
        self.put(records)

    def put(self, records: Sequence[Record]) -> None:
        """Write records synchronously (creating the collection from the first vector's size)."""
        if not records:
            return
        if self._dim is None:
            self._dim = len(records[0].dense)
        for r in records:
            if len(r.dense) != self._dim:
                raise RetrievalError(
                    f"collection {self.collection!r}: vector of size {len(r.dense)} for point "
                    f"{r.id}, expected {self._dim}"
                )
        for r in records:
            self._points[r.id] = Record(r.id, list(r.dense), r.sparse, dict(r.payload))
        self.writes += 1

    async def delete(self, filter: Filter) -> None:
        if not filter:
            raise RetrievalError("refusing to delete with an empty filter (it would match all)")
        self._require()
        for pid in [p.id for p in self._points.values() if matches(p.payload, filter)]:
            del self._points[pid]
        self.writes += 1

    async def scan(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        return [{k: p.payload[k] for k in fields if k in p.payload} for p in self._points.values()]

    async def count(self, filter: Filter | None = None) -> int:
        return sum(1 for p in self._points.values() if filter is None or matches(p.payload, filter))

    async def optimize(self) -> None:
        """Nothing to build."""

    async def info(self) -> StoreInfo:
        return StoreInfo(
            self.collection, self._dim is not None, len(self._points), self._dim, self.location
        )

    async def drop(self) -> None:
        self._points.clear()
        self._dim = None

    async def close(self) -> None:
        """Nothing to release; the points stay for the life of the process."""

    # -- search ------------------------------------------------------------------------

    async def query(self, query: StoreQuery) -> list[Hit]:
        require_vectors(query)
        self._require()
        if query.dense is not None and len(query.dense) != self._dim:
            raise RetrievalError(
                f"collection {self.collection!r} (memory) holds {self._dim}-dimensional dense "
                f"vectors; the query's has {len(query.dense)}"
            )
        points = [
            p for p in self._points.values() if not query.filter or matches(p.payload, query.filter)
        ]
        limit = max(query.candidates, query.top_k)
        if query.mode == "hybrid":
            ranked = rrf(
                [
                    self._dense(points, query.dense, limit),
                    self._sparse(points, query.sparse, limit),
                ],
                k=query.rrf_k,
                weights=query.weights,
            )
        elif query.mode == "dense":
            ranked = self._dense(points, query.dense, limit)
        else:
            ranked = self._sparse(points, query.sparse, limit)
        if query.mmr is not None:
            assert query.dense is not None  # require_vectors checked it
            ranked = self._mmr(ranked[:limit], query.dense, 1.0 - query.mmr, query.top_k)
        if query.mmr is None:  # the engine's order: by score, ties by point id
            ranked.sort(key=lambda item: (-item[1], item[0].id))
        return [Hit(p.id, score, dict(p.payload)) for p, score in ranked[: query.top_k]]

    def _dense(
        self, points: list[Record], vector: list[float] | None, limit: int
    ) -> list[tuple[Record, float]]:
        if not points or vector is None:
            return []
        scores = _unit(np.asarray([p.dense for p in points], dtype=np.float32)) @ _unit(
            np.asarray(vector, dtype=np.float32)
        )
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(points[i], float(scores[i])) for i in order]

    def _sparse(
        self, points: list[Record], vector: SparseVector | None, limit: int
    ) -> list[tuple[Record, float]]:
        if vector is None:
            return []
        everything = list(self._points.values())  # IDF is collection-wide, as in Qdrant
        n = len(everything)
        weights: dict[int, float] = {}
        for idx, value in zip(vector.indices, vector.values, strict=False):
            df = sum(1 for p in everything if idx in p.sparse.indices)
            weights[idx] = value * math.log(1 + (n - df + 0.5) / (df + 0.5))
        scored = []
        for p in points:
            score = sum(
                weights.get(i, 0.0) * v
                for i, v in zip(p.sparse.indices, p.sparse.values, strict=False)
            )
            if any(i in weights for i in p.sparse.indices):
                scored.append((p, score))
        scored.sort(key=lambda item: -item[1])
        return scored[:limit]

    @staticmethod
    def _mmr(
        candidates: list[tuple[Record, float]], query: list[float], lam: float, top_k: int
    ) -> list[tuple[Record, float]]:
        if not candidates:
            return []
        vectors = _unit(np.asarray([p.dense for p, _ in candidates], dtype=np.float32))
        relevance = vectors @ _unit(np.asarray(query, dtype=np.float32))
        similarity = vectors @ vectors.T
        chosen = [int(np.argmax(relevance))]
        while len(chosen) < min(top_k, len(candidates)):
            rest = [i for i in range(len(candidates)) if i not in chosen]
            scores = [lam * relevance[i] - (1 - lam) * similarity[i, chosen].max() for i in rest]
            chosen.append(rest[int(np.argmax(scores))])
        return [(candidates[i][0], float(relevance[i])) for i in chosen]


def rrf(
    rankings: Sequence[Sequence[tuple[Record, float]]],
    *,
    k: int,
    weights: Sequence[float] | None = None,
) -> list[tuple[Record, float]]:
    """Qdrant's weighted reciprocal rank fusion: ``1 / ((rank + 1) / w + k - 1)``."""
    scores: dict[str, float] = {}
    records: dict[str, Record] = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[i])
        if w <= 0:
            continue
        for rank, (record, _) in enumerate(ranking):
            records[record.id] = record
            scores[record.id] = scores.get(record.id, 0.0) + 1.0 / ((rank + 1) / w + k - 1)
    return sorted(((records[i], s) for i, s in scores.items()), key=lambda item: -item[1])


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def _value(payload: dict[str, Any], key: str) -> Any:
    current: Any = payload
    for part in key.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def matches(payload: dict[str, Any], filter: Filter) -> bool:
    """Whether a payload satisfies every condition of a filter (Qdrant's semantics)."""
    for c in filter.conditions:
        value = _value(payload, c.key)
        values = value if isinstance(value, list) else [value]
        if c.op == "eq" and c.value not in values:
            return False
        if c.op == "ne" and c.value in values:
            return False
        if c.op == "any" and not any(v in c.value for v in values):
            return False
        if c.op == "none" and any(v in c.value for v in values):
            return False
        if c.op == "range" and not any(_in_range(v, c.value) for v in values):
            return False
    return True


def _in_range(value: Any, bounds: dict[str, float]) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (
        ("gt" not in bounds or value > bounds["gt"])
        and ("gte" not in bounds or value >= bounds["gte"])
        and ("lt" not in bounds or value < bounds["lt"])
        and ("lte" not in bounds or value <= bounds["lte"])
    )
