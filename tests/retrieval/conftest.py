"""Fixtures of the retrieval tests: every store backend, the fixture corpus, the hash embedder."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentflow.models.embeddings import HashEmbedder
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.store import VectorStore

from .retrieval_helpers import BACKENDS, FIXTURES, StoreFactory, make_store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_factory(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes stores of the parametrized backend; closes them after the test."""
    made: list[VectorStore] = []

    def factory(collection: str = "contract") -> VectorStore:
        store = make_store(backend, collection, tmp_path)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> VectorStore:
    return store_factory("contract")


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(64)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the fixture corpus (tests change, add and delete files in it)."""
    target = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", target)
    return target


@pytest.fixture(autouse=True)
def _fresh_shared_memory_stores() -> None:
    MemoryStore.clear_shared()
