"""Embedders as retrieval uses them: hash (deterministic), BM25 sparse vectors, LiteLLM (mocked),
local MiniLM; embedders by name (a collection's ``embedder:``)."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from agentflow.errors import ModelError, RetrievalError
from agentflow.models.embeddings import (
    Embedder,
    HashEmbedder,
    LiteLLMEmbedder,
    MiniLMEmbedder,
    make_embedder,
)
from agentflow.models.types import ProviderError
from agentflow.retrieval.catalog import shared_embedder
from agentflow.retrieval.sparse import Bm25Encoder


async def test_hash_embedder_is_deterministic_unit_length_and_word_based() -> None:
    embedder = HashEmbedder(32)
    a, b, c, empty = await embedder.embed(["red apple pie", "Red apple PIE", "blue ocean", ""])
    assert np.allclose(a, b)
    assert np.isclose(np.linalg.norm(a), 1.0) and np.isclose(np.linalg.norm(empty), 1.0)
    assert float(a @ b) > float(a @ c)
    assert isinstance(embedder, Embedder) and embedder.name == "hash-32"


def test_bm25_documents_weight_term_frequency_and_queries_weigh_terms_once() -> None:
    bm25 = Bm25Encoder()
    doc = bm25.documents(["cats cats cats chase the mouse"])[0]
    weights = dict(zip(doc.indices, doc.values, strict=False))
    query = bm25.query("cats mouse the")
    assert len(query.indices) == 2  # 'the' is a stop word
    assert all(v == 1.0 for v in query.values)
    cat, mouse = (
        query.indices
        if weights[query.indices[0]] > weights[query.indices[1]]
        else query.indices[::-1]
    )
    assert weights[cat] > weights[mouse] > 0
    assert bm25.query("Cat") == bm25.query("cats")  # stemmed and lower-cased


def test_bm25_rejects_invalid_settings() -> None:
    with pytest.raises(RetrievalError, match="invalid BM25 settings"):
        Bm25Encoder(b=2.0).query("x")


def fake_litellm(aembedding: Any) -> types.ModuleType:
    module = types.ModuleType("litellm")
    module.aembedding = aembedding  # type: ignore[attr-defined]
    module.exceptions = types.SimpleNamespace()  # type: ignore[attr-defined]
    return module


async def test_litellm_embedder_batches_requests_through_the_model_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []

    async def aembedding(*, model: str, input: list[str], **kwargs: Any) -> Any:
        calls.append({"model": model, "input": input, **kwargs})
        return types.SimpleNamespace(data=[{"embedding": [float(len(t)), 0.5]} for t in input])

    monkeypatch.setitem(sys.modules, "litellm", fake_litellm(aembedding))
    embedder = make_embedder("openai/text-embedding-3-small")
    assert (
        isinstance(embedder, LiteLLMEmbedder)
        and embedder.name == "litellm:openai/text-embedding-3-small"
    )
    embedder.batch_size = 2
    embedder.entry = embedder.entry.model_copy(update={"api_base": "http://localhost:1"})
    vectors = await embedder.embed(["a", "bb", "ccc"])
    assert vectors.tolist() == [[1.0, 0.5], [2.0, 0.5], [3.0, 0.5]]
    assert [c["input"] for c in calls] == [["a", "bb"], ["ccc"]]
    assert all(
        c["api_base"] == "http://localhost:1" and c["model"] == "openai/text-embedding-3-small"
        for c in calls
    )


async def test_litellm_failures_are_provider_errors_naming_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def aembedding(**kwargs: Any) -> Any:
        raise ConnectionError("provider down")

    monkeypatch.setitem(sys.modules, "litellm", fake_litellm(aembedding))
    with pytest.raises(ProviderError, match=r"ollama/nomic.*provider down") as failed:
        await LiteLLMEmbedder("ollama/nomic").embed(["x"])
    assert failed.value.model == "ollama/nomic"


def test_make_embedder_names() -> None:
    assert isinstance(make_embedder(None), MiniLMEmbedder)
    assert isinstance(make_embedder("minilm"), MiniLMEmbedder)
    assert make_embedder("minilm").name == "offline/minilm"  # one name for the weights
    assert make_embedder("hash-16").name == "hash-16"
    assert make_embedder("offline/hashing").name == "offline/hashing"
    custom = HashEmbedder(8)
    assert make_embedder(custom) is custom
    with pytest.raises(ModelError, match="invalid embedder"):
        make_embedder("litellm:")


def test_collections_share_one_embedder_per_model_whatever_its_spelling() -> None:
    assert shared_embedder("minilm") is shared_embedder("offline/minilm")
    assert shared_embedder("hash") is shared_embedder("hash-64")
    with pytest.raises(RetrievalError, match="invalid embedder"):
        shared_embedder("litellm:")


async def test_local_minilm_embeds_offline_and_ranks_paraphrases_close() -> None:
    embedder = MiniLMEmbedder()
    vectors = await embedder.embed(
        [
            "How do I install the package?",
            "What is the installation procedure?",
            "Bananas are yellow.",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
    assert (await embedder.embed([])).shape == (0, 384)
