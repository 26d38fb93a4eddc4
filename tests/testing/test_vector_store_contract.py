"""The vector store contract, run against agentflow's own stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.retrieval.edge import EdgeStore
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.server import QdrantServerStore
from agentflow.testing.contracts import VectorStoreContract
from agentflow.testing.contracts.vector_store import StoreFactory


class TestEdgeStore(VectorStoreContract):
    """The embedded default: Qdrant's engine in-process, on disk."""

    persistent = True

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda collection: EdgeStore(collection, tmp_path / "edge")


class TestQdrantClientOnDisk(VectorStoreContract):
    """A Qdrant server's code path (qdrant-client), in its local mode on disk."""

    persistent = True

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda collection: QdrantServerStore(collection, path=tmp_path / "qdrant-local")


class TestMemoryStore(VectorStoreContract):
    """The in-memory store of the test kit (nothing persists)."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return MemoryStore
