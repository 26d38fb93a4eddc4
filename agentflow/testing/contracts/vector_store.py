"""The vector store contract: what every :class:`~agentflow.retrieval.store.VectorStore` does.

agentflow's own stores (the embedded qdrant-edge store, a Qdrant server through qdrant-client,
the in-memory store) pass it; a store of yours that passes it works under agentflow's retriever,
ingestion and example store. Subclass :class:`VectorStoreContract` and override
``store_factory``:

.. code-block:: python

    class TestMyStore(VectorStoreContract):
        persistent = True  # points written, closed and reopened are still there

        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda collection: MyStore(collection, path=tmp_path / "db")

The factory is called with a collection name and returns a new, unopened store of that
collection; called again with the same name (in the same test) it must reach the same data,
which is how persistence is checked. The suite closes every store it opens.

The points are small and exact: 4-dimensional dense vectors at known angles (so cosine scores
are known) and sparse vectors of word counts whose ids are fixed hashes of the words (so the
store's IDF decides the sparse ranking), with payloads that carry nested metadata.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest

from agentflow.errors import RetrievalError
from agentflow.retrieval.store import (
    Condition,
    Filter,
    Hit,
    Record,
    SparseVector,
    StoreQuery,
    VectorStore,
    parse_filter,
)
from agentflow.testing.contracts._run import Closing, run_async

StoreFactory = Callable[[str], VectorStore]
"""Makes a store of a collection name (see the module docstring)."""

DIM = 4


def point_id(name: str) -> str:
    """The UUID of the point named ``name`` (stores take UUID strings)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentflow-contract:{name}"))


def at_angle(degrees: float) -> list[float]:
    """A unit vector in the first plane: its cosine with ``at_angle(0)`` is ``cos(degrees)``."""
    a = math.radians(degrees)
    return [math.cos(a), math.sin(a), 0.0, 0.0]


def _term_id(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") >> 1


def words(text: str, *, query: bool = False) -> SparseVector:
    """A sparse vector of ``text``: word counts (1 per distinct word for a query)."""
    counts: dict[int, float] = {}
    for word in re.findall(r"\w+", text.lower()):
        counts[_term_id(word)] = 1.0 if query else counts.get(_term_id(word), 0.0) + 1.0
    ids = sorted(counts)
    return SparseVector(ids, [counts[i] for i in ids])


def point(name: str, angle: float, text: str, **payload: Any) -> Record:
    """A record named ``name`` (its ``chunk_id``) with a dense vector at ``angle``."""
    body = {"chunk_id": name, "text": text, "source": payload.pop("source", f"{name}.txt")}
    body.update(payload)
    return Record(point_id(name), at_angle(angle), words(text), body)


POINTS = (
    point("a", 0, "apple banana", position=0, metadata={"lang": "en", "year": 2019}),
    point("b", 20, "apple cherry", position=1, metadata={"lang": "de", "year": 2020}),
    point("c", 40, "apple durian", position=2, metadata={"lang": "en", "year": 2021}),
    point("d", 60, "apple elderberry fig", position=3, metadata={"lang": "fr", "year": 2022}),
    point("e", 80, "grape", position=4, metadata={"lang": "en", "year": 2023}),
)
"""The five points most tests start from."""

FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"source": "b.txt"}, {"b"}),
    ({"lang": "en"}, {"a", "c", "e"}),
    ({"lang": {"ne": "en"}}, {"b", "d"}),
    ({"lang": ["de", "fr"]}, {"b", "d"}),
    ({"lang": {"none": ["de", "fr"]}}, {"a", "c", "e"}),
    ({"year": {"gte": 2020, "lt": 2023}}, {"b", "c", "d"}),
    ({"position": {"gt": 2}}, {"d", "e"}),
    ({"lang": "en", "year": {"lte": 2021}}, {"a", "c"}),
]
"""Filters (in their YAML form) over :data:`POINTS`, and the points each one matches."""


def names(hits: Sequence[Hit]) -> list[str]:
    return [h.payload["chunk_id"] for h in hits]


class Stores(Closing):
    """Opens stores with the user's factory and closes them when the test ends."""

    def __init__(self, factory: StoreFactory) -> None:
        self.factory = factory
        self.opened: list[VectorStore] = []

    def open(self, collection: str = "contract") -> VectorStore:
        store = self.factory(collection)
        self.opened.append(store)
        return store

    async def filled(self, collection: str = "contract") -> VectorStore:
        """A new store of ``collection`` holding :data:`POINTS`."""
        store = self.open(collection)
        await store.create(DIM)
        await store.upsert(list(POINTS))
        return store

    async def close(self, store: VectorStore) -> None:
        self.opened.remove(store)
        await store.close()

    async def aclose(self) -> None:
        while self.opened:
            await self.opened.pop().close()


class VectorStoreContract:
    """The tests every vector store passes; see the module docstring."""

    persistent: ClassVar[bool] = False
    """Whether points survive closing the store and opening it again (a store on disk or on a
    server); ``False`` skips that test."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError(
            f"{type(self).__name__}: override the store_factory fixture with one that returns "
            "a function from a collection name to a new store of yours"
        )

    @pytest.fixture
    def stores(self, store_factory: StoreFactory) -> Stores:
        return Stores(store_factory)

    # -- the protocol ------------------------------------------------------------------------

    @run_async
    async def test_implements_the_store_protocol(self, stores: Stores) -> None:
        store = stores.open("named")
        assert isinstance(store, VectorStore), f"{store!r} lacks methods of VectorStore"
        assert store.collection == "named", "the store keeps the collection name it was given"
        assert isinstance(store.location, str)

    @run_async
    async def test_a_missing_collection_reads_empty_and_refuses_search(
        self, stores: Stores
    ) -> None:
        store = stores.open()
        assert not await store.exists()
        assert await store.count() == 0
        assert await store.scan(["source"]) == []
        assert not (await store.info()).exists
        with pytest.raises(RetrievalError):
            await store.query(StoreQuery(top_k=3, mode="dense", dense=at_angle(0)))

    @run_async
    async def test_create_is_idempotent_and_refuses_another_dense_size(
        self, stores: Stores
    ) -> None:
        store = await stores.filled()
        await store.create(DIM)
        assert await store.exists()
        assert await store.count() == len(POINTS), "creating an existing collection keeps it"
        with pytest.raises(RetrievalError):
            await store.create(DIM * 2)
        info = await store.info()
        assert (info.collection, info.exists, info.points, info.dense_dim) == (
            "contract", True, len(POINTS), DIM)

    # -- writing -----------------------------------------------------------------------------

    @run_async
    async def test_upsert_replaces_points_with_the_same_id(self, stores: Stores) -> None:
        store = await stores.filled()
        await store.upsert([point("a", 0, "apple banana", note="new")])
        assert await store.count() == len(POINTS)
        hits = await store.query(StoreQuery(top_k=1, mode="dense", dense=at_angle(0)))
        assert hits[0].payload["note"] == "new"
        await store.upsert([])  # nothing to write is not an error
        assert await store.count() == len(POINTS)

    @run_async
    async def test_payload_round_trips_with_nested_metadata(self, stores: Stores) -> None:
        store = await stores.filled()
        hits = await store.query(StoreQuery(top_k=1, mode="dense", dense=at_angle(20)))
        assert hits[0].id == point_id("b")
        assert hits[0].payload == {"chunk_id": "b", "text": "apple cherry", "source": "b.txt",
                                   "position": 1, "metadata": {"lang": "de", "year": 2020}}

    @run_async
    async def test_scan_returns_just_the_requested_payload_fields(self, stores: Stores) -> None:
        store = await stores.filled()
        rows = await store.scan(["source", "position"])
        assert sorted((r["source"], r["position"]) for r in rows) == [
            (f"{n}.txt", i) for i, n in enumerate("abcde")]
        assert all(set(r) == {"source", "position"} for r in rows)

    @run_async
    async def test_delete_removes_what_the_filter_matches_and_refuses_an_empty_one(
        self, stores: Stores
    ) -> None:
        store = await stores.filled()
        await store.delete(Filter((Condition("source", "any", ["a.txt", "b.txt"]),)))
        assert await store.count() == 3
        await store.delete(parse_filter({"lang": "en", "position": {"gte": 4}}))  # type: ignore[arg-type]
        assert sorted(r["source"] for r in await store.scan(["source"])) == ["c.txt", "d.txt"]
        with pytest.raises(RetrievalError):
            await store.delete(Filter())
        assert await store.count() == 2, "a refused delete deletes nothing"

    @run_async
    async def test_drop_removes_the_collection(self, stores: Stores) -> None:
        store = await stores.filled()
        await store.drop()
        assert not await store.exists()
        assert await store.count() == 0

    @run_async
    async def test_collections_are_independent(self, stores: Stores) -> None:
        first = await stores.filled("first")
        second = stores.open("second")
        await second.create(DIM)
        await second.upsert([point("z", 0, "zebra")])
        assert (await first.count(), await second.count()) == (len(POINTS), 1)
        await second.drop()
        assert await first.count() == len(POINTS)

    @run_async
    async def test_points_survive_closing_and_reopening(self, stores: Stores) -> None:
        if not self.persistent:
            pytest.skip(f"{type(self).__name__}.persistent is False: the store keeps no points "
                        "after it is closed")
        store = await stores.filled("persist")
        await store.optimize()
        await stores.close(store)
        again = stores.open("persist")
        assert await again.count() == len(POINTS)
        hits = await again.query(StoreQuery(top_k=1, mode="sparse",
                                            sparse=words("grape", query=True)))
        assert names(hits) == ["e"]

    # -- searching ---------------------------------------------------------------------------

    @run_async
    async def test_dense_search_ranks_by_cosine_and_honours_top_k(self, stores: Stores) -> None:
        store = await stores.filled()
        await store.optimize()
        hits = await store.query(StoreQuery(top_k=3, mode="dense", dense=at_angle(45)))
        assert len(hits) == 3
        assert names(hits)[0] == "c" and set(names(hits)) == {"b", "c", "d"}
        assert hits[0].score == pytest.approx(math.cos(math.radians(5)), abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    @run_async
    async def test_sparse_search_weighs_rare_words_up(self, stores: Stores) -> None:
        store = await stores.filled()
        hits = await store.query(StoreQuery(top_k=5, mode="sparse",
                                            sparse=words("apple cherry", query=True)))
        assert names(hits)[0] == "b", "cherry is rare and apple everywhere: the store applies IDF"
        assert set(names(hits)) == {"a", "b", "c", "d"}, "only points sharing a word match"
        rare = await store.query(StoreQuery(top_k=5, mode="sparse",
                                            sparse=words("grape", query=True)))
        assert names(rare) == ["e"]

    @run_async
    async def test_hybrid_search_fuses_both_legs_by_reciprocal_rank(self, stores: Stores) -> None:
        store = await stores.filled()
        # each leg fetches 2 candidates: dense finds e then d, sparse finds only a
        base: dict[str, Any] = dict(top_k=2, mode="hybrid", dense=at_angle(80),
                                    sparse=words("banana", query=True), candidates=2)
        assert set(names(await store.query(StoreQuery(**base)))) == {"a", "e"}
        dense_heavy = await store.query(StoreQuery(**base, weights=(3.0, 1.0)))
        sparse_heavy = await store.query(StoreQuery(**base, weights=(1.0, 3.0)))
        assert names(dense_heavy) == ["e", "d"]
        assert names(sparse_heavy) == ["a", "e"]
        both = await store.query(StoreQuery(top_k=1, mode="hybrid", dense=at_angle(0),
                                            sparse=words("banana", query=True), rrf_k=60))
        assert names(both) == ["a"]
        assert both[0].score == pytest.approx(2 / 60, rel=1e-3), "first in both legs: 2 / rrf_k"

    @pytest.mark.parametrize(("spec", "expected"), FILTER_CASES)
    @run_async
    async def test_filters_restrict_every_mode_and_count(
        self, stores: Stores, spec: dict[str, Any], expected: set[str]
    ) -> None:
        store = await stores.filled()
        flt = parse_filter(spec)
        for mode in ("dense", "sparse", "hybrid"):
            hits = await store.query(StoreQuery(top_k=10, mode=mode, dense=at_angle(30),
                                                sparse=words("apple grape", query=True),
                                                filter=flt))
            assert set(names(hits)) == expected, f"{mode} search with filter {spec}"
        assert await store.count(flt) == len(expected), f"count with filter {spec}"

    @run_async
    async def test_mmr_trades_relevance_for_diversity(self, stores: Stores) -> None:
        store = stores.open()
        await store.create(DIM)
        await store.upsert([point("dup1", 0, "alpha"), point("dup2", 1, "alpha"),
                            point("dup3", 2, "alpha"), point("other", 50, "beta")])
        plain = await store.query(StoreQuery(top_k=2, mode="dense", dense=at_angle(10)))
        assert set(names(plain)) <= {"dup1", "dup2", "dup3"}
        diverse = await store.query(StoreQuery(top_k=2, mode="dense", dense=at_angle(10), mmr=0.8))
        assert "other" in names(diverse) and names(diverse)[0] in {"dup1", "dup2", "dup3"}

    # -- bad input ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("why", "query"),
        [
            pytest.param(why, query, id=why.replace(" ", "-"))
            for why, query in [
                ("dense search without a dense vector", StoreQuery(top_k=3, mode="dense")),
                ("sparse search without a sparse vector", StoreQuery(top_k=3, mode="sparse")),
                ("hybrid search without a sparse vector",
                 StoreQuery(top_k=3, mode="hybrid", dense=at_angle(0))),
                ("an unknown mode", StoreQuery(top_k=3, mode="fuzzy", dense=at_angle(0))),  # type: ignore[arg-type]
                ("mmr diversity outside 0 to 1",
                 StoreQuery(top_k=3, mode="dense", dense=at_angle(0), mmr=1.5)),
                ("a dense vector of the wrong size",
                 StoreQuery(top_k=3, mode="dense", dense=[1.0, 0.0, 0.0])),
            ]
        ],
    )
    @run_async
    async def test_a_bad_query_raises_a_retrieval_error(
        self, stores: Stores, why: str, query: StoreQuery
    ) -> None:
        store = await stores.filled()
        try:
            await store.query(query)
        except RetrievalError:
            return
        except Exception as exc:  # noqa: BLE001 - the point: any other exception fails the contract
            pytest.fail(f"{why}: raised {type(exc).__name__} ({exc}), not a RetrievalError")
        pytest.fail(f"{why}: the query was answered, not refused with a RetrievalError")

    @run_async
    async def test_a_vector_of_the_wrong_size_is_refused(self, stores: Stores) -> None:
        store = await stores.filled()
        bad = Record(point_id("short"), [1.0, 0.0, 0.0], words("short"), {"chunk_id": "short"})
        with pytest.raises(RetrievalError):
            await store.upsert([bad])
        assert await store.count() == len(POINTS)
