"""The store contract: every backend (edge, qdrant-client local mode, the fake) behaves the same."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentflow.errors import RetrievalError
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import (
    Condition,
    Filter,
    Record,
    StoreQuery,
    VectorStore,
    parse_filter,
)
from agentflow.testing.contracts.vector_store import FILTER_CASES

from .retrieval_helpers import StoreFactory, make_store

BM25 = Bm25Encoder()


def pid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def unit(angle_deg: float) -> list[float]:
    """A 4-d unit vector in the first plane at an angle (cosine to [1,0,0,0] = cos(angle))."""
    a = math.radians(angle_deg)
    return [math.cos(a), math.sin(a), 0.0, 0.0]


def record(name: str, angle: float, text: str, **payload: Any) -> Record:
    body = {"chunk_id": name, "text": text, "source": payload.pop("source", f"{name}.txt")}
    body.update(payload)
    return Record(pid(name), unit(angle), BM25.documents([text])[0], body)


DOCS = [
    record("a", 0, "apple banana", position=0, metadata={"lang": "en", "year": 2019}),
    record("b", 20, "apple cherry", position=1, metadata={"lang": "de", "year": 2020}),
    record("c", 40, "apple durian", position=2, metadata={"lang": "en", "year": 2021}),
    record("d", 60, "apple elderberry fig", position=3, metadata={"lang": "fr", "year": 2022}),
    record("e", 80, "grape", position=4, metadata={"lang": "en", "year": 2023}),
]


async def filled(store: VectorStore) -> VectorStore:
    await store.create(4)
    await store.upsert(DOCS)
    return store


def ids(hits: list[Any]) -> list[str]:
    return [h.payload["chunk_id"] for h in hits]


async def test_missing_collection_reads_empty_and_search_raises(store: VectorStore) -> None:
    assert not await store.exists()
    assert await store.count() == 0
    assert await store.scan(["source"]) == []
    with pytest.raises(RetrievalError, match="does not exist"):
        await store.query(StoreQuery(top_k=3, mode="dense", dense=unit(0)))


async def test_create_is_idempotent_and_checks_dense_size(store: VectorStore) -> None:
    await filled(store)
    await store.create(4)
    assert await store.exists()
    with pytest.raises(RetrievalError, match="4-dimensional"):
        await store.create(8)
    info = await store.info()
    assert (info.exists, info.points, info.dense_dim) == (True, 5, 4)


async def test_dense_search_ranks_by_cosine_and_honours_top_k(store: VectorStore) -> None:
    await filled(store)
    hits = await store.query(StoreQuery(top_k=3, mode="dense", dense=unit(45)))
    assert ids(hits) == ["c", "d", "b"] or ids(hits) == ["c", "b", "d"]
    assert ids(hits)[0] == "c"
    assert hits[0].score == pytest.approx(math.cos(math.radians(5)), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_sparse_search_weights_rare_terms_by_idf(store: VectorStore) -> None:
    await filled(store)
    hits = await store.query(StoreQuery(top_k=5, mode="sparse", sparse=BM25.query("apple cherry")))
    assert ids(hits)[0] == "b"  # cherry is rare, apple is everywhere
    assert set(ids(hits)) == {"a", "b", "c", "d"}  # only documents sharing a term
    rare = await store.query(StoreQuery(top_k=5, mode="sparse", sparse=BM25.query("grape")))
    assert ids(rare) == ["e"]


async def test_hybrid_fuses_both_legs_with_weights(store: VectorStore) -> None:
    await filled(store)
    # each leg fetches 2 candidates: dense finds e, d; sparse finds only a
    base = dict(top_k=2, mode="hybrid", dense=unit(80), sparse=BM25.query("banana"), candidates=2)
    equal = await store.query(StoreQuery(**base))  # type: ignore[arg-type]
    assert set(ids(equal)) == {"a", "e"}
    dense_heavy = await store.query(StoreQuery(**base, weights=(3.0, 1.0)))  # type: ignore[arg-type]
    sparse_heavy = await store.query(StoreQuery(**base, weights=(1.0, 3.0)))  # type: ignore[arg-type]
    assert ids(dense_heavy) == [
        "e",
        "d",
    ]  # weight 3: dense rank 2 (1/59.67) beats sparse rank 1 (1/60)
    assert ids(sparse_heavy) == ["a", "e"]
    # reciprocal rank fusion: rank 1 in both legs scores 2 / k
    both = await store.query(
        StoreQuery(top_k=1, mode="hybrid", dense=unit(0), sparse=BM25.query("banana"), rrf_k=60)
    )
    assert ids(both) == ["a"]
    assert both[0].score == pytest.approx(2 / 60, rel=1e-3)


@pytest.mark.parametrize(("spec", "expected"), FILTER_CASES)  # the same cases as the shipped suite
async def test_filters_restrict_every_mode(
    store: VectorStore, spec: dict[str, Any], expected: set[str]
) -> None:
    await filled(store)
    flt = parse_filter(spec)
    for mode in ("dense", "hybrid"):
        hits = await store.query(
            StoreQuery(
                top_k=10, mode=mode, dense=unit(30), sparse=BM25.query("apple grape"), filter=flt
            )  # type: ignore[arg-type]
        )
        assert set(ids(hits)) == expected, mode
    assert await store.count(flt) == len(expected)


async def test_mmr_trades_relevance_for_diversity(store: VectorStore) -> None:
    await store.create(4)
    await store.upsert(
        [
            record("dup1", 0, "alpha"),
            record("dup2", 1, "alpha"),
            record("dup3", 2, "alpha"),
            record("other", 50, "beta"),
        ]
    )
    plain = await store.query(StoreQuery(top_k=2, mode="dense", dense=unit(10)))
    assert set(ids(plain)) <= {"dup1", "dup2", "dup3"}
    diverse = await store.query(StoreQuery(top_k=2, mode="dense", dense=unit(10), mmr=0.8))
    assert "other" in ids(diverse)
    assert ids(diverse)[0] in {"dup1", "dup2", "dup3"}
    hybrid = await store.query(
        StoreQuery(top_k=2, mode="hybrid", dense=unit(10), sparse=BM25.query("alpha beta"), mmr=0.8)
    )
    assert "other" in ids(hybrid)


async def test_upsert_replaces_points_with_the_same_id(store: VectorStore) -> None:
    await filled(store)
    await store.upsert([record("a", 0, "apple banana", note="new")])
    assert await store.count() == 5
    hits = await store.query(StoreQuery(top_k=1, mode="dense", dense=unit(0)))
    assert hits[0].payload["note"] == "new"


async def test_delete_by_filter_and_refuse_empty_filter(store: VectorStore) -> None:
    await filled(store)
    await store.delete(Filter((Condition("source", "any", ["a.txt", "b.txt"]),)))
    assert await store.count() == 3
    await store.delete(parse_filter({"lang": "en", "position": {"gte": 4}}))  # type: ignore[arg-type]
    assert sorted(r["source"] for r in await store.scan(["source"])) == ["c.txt", "d.txt"]
    with pytest.raises(RetrievalError, match="empty filter"):
        await store.delete(Filter())


async def test_scan_returns_the_requested_payload_fields(store: VectorStore) -> None:
    await filled(store)
    rows = await store.scan(["source", "position"])
    assert sorted((r["source"], r["position"]) for r in rows) == [
        (f"{n}.txt", i) for i, n in enumerate("abcde")
    ]
    assert all(set(r) == {"source", "position"} for r in rows)


async def test_payload_round_trips_nested_metadata(store: VectorStore) -> None:
    await filled(store)
    hits = await store.query(StoreQuery(top_k=1, mode="dense", dense=unit(20)))
    assert hits[0].payload["metadata"] == {"lang": "de", "year": 2020}
    assert hits[0].id == pid("b")


async def test_drop_removes_the_collection(store: VectorStore) -> None:
    await filled(store)
    await store.drop()
    assert not await store.exists()


async def test_collections_are_independent(store_factory: StoreFactory) -> None:
    first, second = store_factory("first"), store_factory("second")
    await filled(first)
    await second.create(4)
    await second.upsert([record("z", 0, "zebra")])
    assert (await first.count(), await second.count()) == (5, 1)


@pytest.mark.parametrize("backend_name", ["edge", "qdrant-client-path"])
async def test_persistent_backends_keep_points_across_reopen(
    backend_name: str, tmp_path: Path
) -> None:
    store = make_store(backend_name, "persist", tmp_path)
    await filled(store)
    await store.optimize()
    await store.close()
    again = make_store(backend_name, "persist", tmp_path)
    try:
        assert await again.count() == 5
        hits = await again.query(StoreQuery(top_k=1, mode="sparse", sparse=BM25.query("grape")))
        assert ids(hits) == ["e"]
    finally:
        await again.close()


def test_invalid_filters_and_names_are_explained() -> None:
    with pytest.raises(RetrievalError, match="unknown operator"):
        parse_filter({"lang": {"like": "e%"}})
    with pytest.raises(RetrievalError, match="needs a number"):
        parse_filter({"year": {"gt": "2020"}})
    with pytest.raises(RetrievalError, match="invalid collection name"):
        make_store("memory", "../escape", Path("."))
