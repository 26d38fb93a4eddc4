"""A Qdrant server or cluster by URL, through ``qdrant-client``: the embedded store's contract.

``QdrantServerStore(collection, url="http://localhost:6333")`` talks to a server (REST, or gRPC
with ``prefer_grpc=True``); a cluster is reached the same way, through any of its nodes.
``path=`` or ``location=":memory:"`` use qdrant-client's local mode instead, which implements the
server's API in Python: the contract tests run the server code path through it. Local mode scans
every vector and writes points one by one, so it is for tests, not for data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
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
_LOCAL_CLIENTS: dict[tuple[str, str], Any] = {}


def _models() -> Any:
    from qdrant_client import models

    return models


def _errors() -> tuple[type[BaseException], ...]:
    import httpx
    from qdrant_client.http.exceptions import ApiException

    errors: list[type[BaseException]] = [ApiException, httpx.HTTPError, ValueError, OSError]
    try:
        import grpc

        errors.append(grpc.RpcError)
    except ImportError:  # grpc is optional for REST-only installs
        pass
    return tuple(errors)


class QdrantServerStore:
    """A collection on a Qdrant server (``url``) or in qdrant-client's local mode (``path``)."""

    def __init__(
        self,
        collection: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | Path | None = None,
        location: str | None = None,
        prefer_grpc: bool = False,
        timeout: int = 30,
    ) -> None:
        self.collection = check_collection_name(collection)
        given = [x for x in (url, path, location) if x is not None]
        if len(given) != 1:
            raise RetrievalError(
                f"QdrantServerStore for {collection!r} needs exactly one of url=, path= or "
                f"location=':memory:'; got {len(given)}"
            )
        self.local = url is None
        self.location = str(given[0])
        key = (
            ("url", str(url))
            if url
            else ("path", str(Path(path).resolve()))
            if path
            else ("memory", "")
        )
        self._key = key
        self._options: dict[str, Any] = (
            {
                "url": url,
                "api_key": api_key,
                "prefer_grpc": prefer_grpc,
                "timeout": timeout,
                "check_compatibility": False,
            }
            if url
            else {"path": str(path)}
            if path
            else {"location": ":memory:"}
        )
        self._own_client: Any = None

    def _client(self) -> Any:
        if self._key[0] != "path":
            # a URL client belongs to the event loop that made it; :memory: is its own database
            if self._own_client is None:
                self._own_client = self._connect()
            return self._own_client
        client = _LOCAL_CLIENTS.get(self._key)  # one client per local path and process (file lock)
        if client is None:
            client = _LOCAL_CLIENTS[self._key] = self._connect()
        return client

    def _connect(self) -> Any:
        from qdrant_client import AsyncQdrantClient

        try:
            return AsyncQdrantClient(**self._options)
        except _errors() as exc:
            raise RetrievalError(f"cannot open Qdrant at {self.location}: {exc}") from exc
        except RuntimeError as exc:  # local mode: the path is locked by another client
            raise RetrievalError(f"cannot open Qdrant at {self.location}: {exc}") from exc

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except _errors() as exc:
            raise RetrievalError(
                f"Qdrant at {self.location} failed to {what} collection {self.collection!r}: {exc}"
            ) from exc

    async def _require(self) -> Any:
        client = self._client()
        if not await self._call("check", client.collection_exists(self.collection)):
            raise RetrievalError(
                f"collection {self.collection!r} does not exist at {self.location}; create it "
                f"with `agentflow ingest PATH... --collection {self.collection} --store URL`"
            )
        return client

    async def exists(self) -> bool:
        return bool(await self._call("check", self._client().collection_exists(self.collection)))

    async def create(self, dense_dim: int) -> None:
        m = _models()
        client = self._client()
        if await self.exists():
            dim = (await self.info()).dense_dim
            if dim is not None and dim != dense_dim:
                raise RetrievalError(
                    f"collection {self.collection!r} at {self.location} holds {dim}-dimensional "
                    f"dense vectors; the embedder gives {dense_dim}. Use the embedder the "
                    "collection was built with, or another collection name"
                )
            return
        await self._call(
            "create",
            client.create_collection(
                self.collection,
                vectors_config={DENSE: m.VectorParams(size=dense_dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            ),
        )
        if not self.local:  # local mode has no payload indexes (and warns about them)
            for name in _INDEXED:
                await self._call(
                    "index",
                    client.create_payload_index(
                        self.collection, name, field_schema=m.PayloadSchemaType.KEYWORD
                    ),
                )

    async def upsert(self, records: Sequence[Record]) -> None:
        if not records:
            return
        m = _models()
        points = [
            m.PointStruct(
                id=r.id,
                vector={
                    DENSE: r.dense,
                    SPARSE: m.SparseVector(indices=r.sparse.indices, values=r.sparse.values),
                },
                payload=r.payload,
            )
            for r in records
        ]
        client = await self._require()
        await self._call("write to", client.upsert(self.collection, points, wait=True))

    async def delete(self, filter: Filter) -> None:
        if not filter:
            raise RetrievalError("refusing to delete with an empty filter (it would match all)")
        m = _models()
        client = await self._require()
        selector = m.FilterSelector(filter=to_client_filter(filter))
        await self._call("delete from", client.delete(self.collection, selector, wait=True))

    async def scan(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        if not await self.exists():
            return []
        client = self._client()
        out: list[dict[str, Any]] = []
        offset = None
        while True:
            records, offset = await self._call(
                "scan",
                client.scroll(
                    self.collection, limit=2048, offset=offset, with_payload=list(fields)
                ),
            )
            out.extend(dict(r.payload or {}) for r in records)
            if offset is None:
                return out

    async def count(self, filter: Filter | None = None) -> int:
        if not await self.exists():
            return 0
        flt = to_client_filter(filter) if filter else None
        result = await self._call(
            "count", self._client().count(self.collection, count_filter=flt, exact=True)
        )
        return int(result.count)

    async def query(self, query: StoreQuery) -> list[Hit]:
        require_vectors(query)
        client = self._client()
        kwargs = build_query(query)
        try:
            response = await client.query_points(self.collection, with_payload=True, **kwargs)
        except _errors() as exc:
            if not await self.exists():
                await self._require()
            raise RetrievalError(
                f"Qdrant at {self.location} failed to search collection {self.collection!r}: {exc}"
            ) from exc
        hits = [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]
        return ordered(hits, query)

    async def optimize(self) -> None:
        """Nothing to do: a server indexes in the background as points arrive."""

    async def info(self) -> StoreInfo:
        if not await self.exists():
            return StoreInfo(self.collection, False, location=self.location)
        info = await self._call("inspect", self._client().get_collection(self.collection))
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        points = await self.count()
        return StoreInfo(
            self.collection,
            True,
            points=points,
            dense_dim=dense.size if dense is not None else None,
            location=self.location,
            extra={"status": str(info.status)},
        )

    async def drop(self) -> None:
        if await self.exists():
            await self._call("drop", self._client().delete_collection(self.collection))

    async def close(self) -> None:
        if self._key[0] == "path":
            client = _LOCAL_CLIENTS.pop(self._key, None)
        else:
            client, self._own_client = self._own_client, None
        if client is not None:
            await asyncio.shield(self._call("close", client.close()))


def _sparse(vector: SparseVector) -> Any:
    return _models().SparseVector(indices=vector.indices, values=vector.values)


def build_query(query: StoreQuery) -> dict[str, Any]:
    """Translate a :class:`StoreQuery` into ``query_points`` keyword arguments."""
    m = _models()
    flt = to_client_filter(query.filter) if query.filter else None
    limit = max(query.candidates, query.top_k)
    legs = {
        "dense": m.Prefetch(query=query.dense, using=DENSE, limit=limit, filter=flt),
        "sparse": (
            m.Prefetch(query=_sparse(query.sparse), using=SPARSE, limit=limit, filter=flt)
            if query.sparse is not None
            else None
        ),
    }
    if query.mode == "hybrid":
        weights = list(query.weights) if query.weights is not None else None
        fused = m.RrfQuery(rrf=m.Rrf(k=query.rrf_k, weights=weights))
        prefetch = [legs["dense"], legs["sparse"]]
        if query.mmr is None:
            return {"prefetch": prefetch, "query": fused, "query_filter": flt, "limit": query.top_k}
        candidates = [m.Prefetch(prefetch=prefetch, query=fused, limit=limit, filter=flt)]
    else:
        leg = legs[query.mode]
        if query.mmr is None:
            return {
                "query": leg.query,
                "using": leg.using,
                "query_filter": flt,
                "limit": query.top_k,
            }
        candidates = [leg]
    mmr = m.NearestQuery(
        nearest=query.dense, mmr=m.Mmr(diversity=query.mmr, candidates_limit=limit)
    )
    return {
        "prefetch": candidates,
        "query": mmr,
        "using": DENSE,
        "query_filter": flt,
        "limit": query.top_k,
    }


def to_client_filter(filter: Filter) -> Any:
    """Translate a :class:`Filter` into a qdrant-client ``Filter``."""
    m = _models()
    must: list[Any] = []
    must_not: list[Any] = []
    for c in filter.conditions:
        if c.op == "eq":
            must.append(m.FieldCondition(key=c.key, match=m.MatchValue(value=c.value)))
        elif c.op == "ne":
            must_not.append(m.FieldCondition(key=c.key, match=m.MatchValue(value=c.value)))
        elif c.op == "any":
            must.append(m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.value))))
        elif c.op == "none":
            must_not.append(m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.value))))
        else:
            must.append(m.FieldCondition(key=c.key, range=m.Range(**c.value)))
    return m.Filter(must=must or None, must_not=must_not or None)
