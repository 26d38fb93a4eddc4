"""The one embedding home: the hash embedder's two feature sets, the embedding cache's settings
(models config, environment override), and the router's embeddings as float32 matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentflow.errors import ModelError
from agentflow.models import ModelRouter, ModelsConfig, build_router
from agentflow.models.embeddings import (
    EMBEDDING_CACHE_ENV,
    Embedder,
    HashEmbedder,
    LocalEmbedder,
    MiniLMEmbedder,
    cache_path,
    canonical_name,
)
from agentflow.models.profiles import ModelEntry


def test_the_hash_embedder_has_a_word_and_a_content_word_feature_set() -> None:
    words, lexical = HashEmbedder(16), HashEmbedder.lexical()
    assert (words.name, lexical.name, lexical.dim) == ("hash-16", "offline/hashing", 1024)
    assert HashEmbedder(32, features="content").name == "offline/hashing-32"
    assert isinstance(words, LocalEmbedder) and isinstance(lexical, Embedder)
    # an empty text: a unit vector for the word set (stores need one), nothing for content words
    assert np.isclose(np.linalg.norm(words.encode([""])[0]), 1.0)
    assert not lexical.encode(["the of and"]).any()  # stop words only: no content word
    # content words ignore stop words and share trigrams across inflections
    a, b = lexical.encode(["the databases", "database"])
    assert float(a @ b) > 0.5
    with pytest.raises(ValueError, match="features must be"):
        HashEmbedder(8, features="letters")  # type: ignore[arg-type]


def test_one_name_for_the_minilm_weights() -> None:
    assert canonical_name(None) == canonical_name("minilm") == "offline/minilm"
    assert canonical_name("hash") == "hash-64"
    assert canonical_name("litellm:openai/text-embedding-3-small") == "openai/text-embedding-3-small"
    assert MiniLMEmbedder.name == "offline/minilm"


def test_the_cache_path_comes_from_the_config_and_the_environment_overrides_it(
        tmp_path: Path) -> None:
    assert cache_path("x/emb.db", root=tmp_path, env={}) == tmp_path / "x" / "emb.db"
    other = tmp_path / "other.db"
    assert cache_path("x/emb.db", root=tmp_path, env={EMBEDDING_CACHE_ENV: str(other)}) == other
    assert cache_path("x/emb.db", env={EMBEDDING_CACHE_ENV: "off"}) is None
    assert cache_path("off", env={}) is None


def test_build_router_gives_minilm_the_configured_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMBEDDING_CACHE_ENV, raising=False)
    config = ModelsConfig.model_validate(
        {"embedding_cache": {"path": "vectors.db", "memory_size": 7}})
    embedder = build_router(config, root=tmp_path, env={}).backends.encoder()
    assert isinstance(embedder, MiniLMEmbedder)
    assert embedder.cache is not None and Path(embedder.cache.path) == tmp_path / "vectors.db"
    assert embedder._memory_size == 7
    monkeypatch.setenv(EMBEDDING_CACHE_ENV, "off")
    assert build_router(config, root=tmp_path, env={}).backends.encoder().cache is None  # type: ignore[attr-defined]


class ListEmbedder:
    """A user's embedder that returns lists of lists (or, when told, too few rows)."""

    name = "lists"

    def __init__(self, short: bool = False) -> None:
        self.short = short

    async def embed(self, texts: list[str]) -> list[list[float]]:
        rows = [[float(len(t)), 1.0] for t in texts]
        return rows[:-1] if self.short else rows


async def test_the_router_returns_a_float32_matrix_whatever_the_embedder_returns() -> None:
    router = ModelRouter({"small": [ModelEntry(model="offline")]},
                         embedders={"embed": ListEmbedder(), "bad": ListEmbedder(short=True)})
    vectors = await router.embed("embed", ["a", "bb"])
    assert vectors.dtype == np.float32 and vectors.tolist() == [[1.0, 1.0], [2.0, 1.0]]
    with pytest.raises(ModelError, match=r"embedder 'lists' returned an array of shape \(1, 2\) for 2"):
        await router.embed("bad", ["a", "bb"])


async def test_a_remote_embedding_model_is_paid_for_once_per_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The router keeps a remote model's vectors in the embedding cache, keyed by the model."""
    import sys
    import types
    from typing import Any

    from agentflow.models.backends import Backends

    sent: list[list[str]] = []

    async def aembedding(*, model: str, input: list[str], **_: Any) -> Any:
        sent.append(list(input))
        return types.SimpleNamespace(data=[{"embedding": [float(len(t)), 1.0]} for t in input])

    fake = types.ModuleType("litellm")
    fake.aembedding = aembedding  # type: ignore[attr-defined]
    fake.exceptions = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", fake)
    entry = ModelEntry(model="openai/text-embedding-3-small",
                       price={"input_per_million": 0.02, "output_per_million": 0.0})
    router = ModelRouter({"embed": [entry]},
                         backends=Backends(embedding_cache=tmp_path / "emb.db"))
    first = await router.embed("embed", ["a", "bb"])
    again = await router.embed("embed", ["bb", "ccc", "a"])
    assert sent == [["a", "bb"], ["ccc"]]  # only the new text goes out
    assert again.tolist() == [[2.0, 1.0], [3.0, 1.0], [1.0, 1.0]] and first.dtype == np.float32
    cached = await router.embed("embed", ["a", "ccc"])
    assert len(sent) == 2 and cached.tolist() == [[1.0, 1.0], [3.0, 1.0]]
    totals = router.usage.of_alias("embed")
    assert (totals.calls, totals.cache_hits) == (3, 1) and totals.cost > 0
