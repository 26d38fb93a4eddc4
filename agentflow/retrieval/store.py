"""The store contract every backend implements, and the values that cross it.

A collection holds one point per chunk with two named vectors, ``dense`` (cosine) and ``bm25``
(sparse, with Qdrant's IDF modifier), and a payload (:data:`PAYLOAD_FIELDS` plus the user's
``metadata``). Three backends implement :class:`VectorStore` with the same behaviour, pinned by one
contract test suite:

- :class:`~agentflow.retrieval.edge.EdgeStore`: the embedded default, Qdrant's engine in-process
  (``qdrant-edge-py``) under ``.agentflow/qdrant/<collection>``;
- :class:`~agentflow.retrieval.server.QdrantServerStore`: a Qdrant server or cluster by URL
  (``qdrant-client``), or qdrant-client's local mode;
- :class:`~agentflow.retrieval.memory.MemoryStore`: an in-memory fake for tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agentflow.errors import RetrievalError

DENSE = "dense"
"""Name of the dense vector of every point."""
SPARSE = "bm25"
"""Name of the sparse (BM25 term weights, IDF applied by the store) vector of every point."""

PAYLOAD_FIELDS = ("chunk_id", "text", "source", "file", "title", "heading", "position", "doc_hash")
"""Top-level payload keys; any other filter key refers to ``metadata.<key>``."""

SearchMode = Literal["hybrid", "dense", "sparse"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "sparse")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_collection_name(name: str) -> str:
    """Return ``name`` if it is a valid collection name, else raise a RetrievalError."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise RetrievalError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector: term ids and their weights."""

    indices: list[int]
    values: list[float]


@dataclass(slots=True)
class Record:
    """One point to write: its id (a UUID string), both vectors and its payload."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: point id, score (higher is better) and payload."""

    id: str
    score: float
    payload: dict[str, Any]


ConditionOp = Literal["eq", "ne", "any", "none", "range"]
_RANGE_KEYS = ("gt", "gte", "lt", "lte")
_OPS = ("eq", "ne", "any", "none", *_RANGE_KEYS)


@dataclass(frozen=True, slots=True)
class Condition:
    """One payload condition: ``key`` compared with ``value`` by ``op``.

    ``eq``/``ne`` take a scalar, ``any``/``none`` a list of scalars, ``range`` a dict with some of
    ``gt``, ``gte``, ``lt``, ``lte``.
    """

    key: str
    op: ConditionOp
    value: Any


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions that must all hold (an AND)."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)


FilterSpec = Mapping[str, Any]
"""The YAML/Python form of a filter, one entry per payload key::

    {"source": "docs/a.md",                  # equals
     "lang": {"any": ["en", "de"]},          # one of (keys outside PAYLOAD_FIELDS are metadata)
     "position": {"gte": 0, "lt": 10},       # range
     "title": {"ne": "Draft"}}               # not equal; also {"none": [...]}
"""


def payload_key(key: str) -> str:
    """The payload path of a filter key: top-level fields as is, anything else under metadata."""
    if key in PAYLOAD_FIELDS or key.startswith("metadata."):
        return key
    return f"metadata.{key}"


def parse_filter(spec: FilterSpec | Filter | None) -> Filter | None:
    """Turn a filter mapping (see :data:`FilterSpec`) into a :class:`Filter`; None stays None."""
    if spec is None or isinstance(spec, Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise RetrievalError(f"a filter must be a mapping of payload key to value, got {spec!r}")
    conditions: list[Condition] = []
    for key, value in spec.items():
        path = payload_key(str(key))
        if not isinstance(value, Mapping):
            if isinstance(value, (list, tuple)):
                conditions.append(Condition(path, "any", list(value)))
            else:
                conditions.append(Condition(path, "eq", _scalar(value, key)))
            continue
        unknown = [op for op in value if op not in _OPS]
        if unknown or not value:
            raise RetrievalError(
                f"invalid filter on {key!r}: unknown operator(s) {unknown or '(none given)'}; "
                f"valid: {', '.join(_OPS)}"
            )
        bounds = {op: value[op] for op in _RANGE_KEYS if op in value}
        if bounds:
            for op, bound in bounds.items():
                if not isinstance(bound, (int, float)) or isinstance(bound, bool):
                    raise RetrievalError(f"filter {key!r}: {op} needs a number, got {bound!r}")
            conditions.append(Condition(path, "range", bounds))
        for op in ("eq", "ne"):
            if op in value:
                conditions.append(Condition(path, op, _scalar(value[op], key)))  # type: ignore[arg-type]
        for op in ("any", "none"):
            if op in value:
                items = value[op]
                if not isinstance(items, (list, tuple)):
                    raise RetrievalError(f"filter {key!r}: {op} needs a list, got {items!r}")
                conditions.append(Condition(path, op, [_scalar(v, key) for v in items]))  # type: ignore[arg-type]
    return Filter(tuple(conditions))


def _scalar(value: Any, key: Any) -> Any:
    if isinstance(value, (str, int, bool)):
        return value
    raise RetrievalError(
        f"filter {key!r}: match values must be strings, integers or booleans, got {value!r} "
        "(use gt/gte/lt/lte for numbers)"
    )


def all_of(*filters: Filter | None) -> Filter | None:
    """AND several filters together (None entries are ignored)."""
    conditions = tuple(c for f in filters if f for c in f.conditions)
    return Filter(conditions) if conditions else None


@dataclass(frozen=True, slots=True)
class StoreQuery:
    """A search against a collection.

    ``mode`` picks the dense leg, the sparse leg, or both fused with reciprocal rank fusion
    (``rrf_k``; ``weights`` = (dense, sparse), each leg fetching ``candidates`` points). With
    ``mmr`` set (diversity in [0, 1]), the candidates are re-ranked by maximal marginal relevance
    on the dense vector.
    """

    top_k: int
    mode: SearchMode = "hybrid"
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    filter: Filter | None = None
    rrf_k: int = 60
    weights: tuple[float, float] | None = None
    candidates: int = 100
    mmr: float | None = None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store knows about its collection."""

    collection: str
    exists: bool
    points: int = 0
    dense_dim: int | None = None
    location: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    """A Qdrant collection, whatever runs it. Every method raises :class:`RetrievalError`.

    ``upsert`` writes its records in one operation: after an interruption either all of them
    are visible to search or none is. ``query`` on a collection that does not exist raises.
    """

    collection: str
    location: str

    async def exists(self) -> bool: ...

    async def create(self, dense_dim: int) -> None:
        """Create the collection if missing; raise if it exists with another dense size."""
        ...

    async def upsert(self, records: Sequence[Record]) -> None: ...

    async def delete(self, filter: Filter) -> None:
        """Delete the points matching ``filter`` (which must not be empty)."""
        ...

    async def scan(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        """The given payload fields of every point (for the ingest manifest)."""
        ...

    async def count(self, filter: Filter | None = None) -> int: ...

    async def query(self, query: StoreQuery) -> list[Hit]: ...

    async def optimize(self) -> None:
        """Build indexes after bulk writes (HNSW where the engine has it) and persist."""
        ...

    async def info(self) -> StoreInfo: ...

    async def drop(self) -> None:
        """Delete the collection and all its points."""
        ...

    async def close(self) -> None: ...


def ordered(hits: list[Hit], query: StoreQuery) -> list[Hit]:
    """Hits best first, ties broken by point id, so equal fused scores rank the same every run
    (Qdrant leaves their order unspecified). MMR results keep the order MMR chose."""
    if query.mmr is not None:
        return hits
    return sorted(hits, key=lambda h: (-h.score, h.id))


def require_vectors(query: StoreQuery) -> None:
    """Check that a query carries the vectors its mode needs."""
    if query.mode not in SEARCH_MODES:
        raise RetrievalError(
            f"unknown search mode {query.mode!r}; valid: {', '.join(SEARCH_MODES)}"
        )
    if query.mode in ("hybrid", "dense") and query.dense is None:
        raise RetrievalError(f"a {query.mode} search needs a dense query vector")
    if query.mode in ("hybrid", "sparse") and query.sparse is None:
        raise RetrievalError(f"a {query.mode} search needs a sparse query vector")
    if query.mmr is not None and not 0.0 <= query.mmr <= 1.0:
        raise RetrievalError(f"mmr diversity must be within [0, 1], got {query.mmr}")
    if query.mmr is not None and query.dense is None:
        raise RetrievalError("mmr re-ranks on the dense vector; the query has none")
    if query.weights is not None and (len(query.weights) != 2 or min(query.weights) < 0):
        raise RetrievalError(
            f"fusion weights must be two non-negative numbers, got {query.weights}"
        )
