"""Embeddings: the one :class:`Embedder` protocol and every embedder agentflow has.

- :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 offline (NumPy for a few texts, torch for many, over
  weights loaded once per process), with the on-disk :class:`EmbeddingCache`.
- :class:`HashEmbedder`: deterministic vectors without a model (words, or content words and
  trigrams: :meth:`HashEmbedder.lexical`).
- :class:`LiteLLMEmbedder`: any embedding model LiteLLM reaches.

The router serves an embedding alias with one of them (``router.embed("embed", texts)``), and
:class:`RoutedEmbedder` (``router.embedder("embed")``) is an embedder that goes through the
router: what retrieval embeds with. The offline backends score with a :class:`LocalEmbedder`.
Names are loaded on first use, so importing this package loads neither numpy nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow._lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers and editors see
    from agentflow.models.embeddings.base import Embedder, LocalEmbedder, as_matrix
    from agentflow.models.embeddings.cache import (
        EMBEDDING_CACHE_ENV,
        EmbeddingCache,
        cache_path,
        shared_cache,
    )
    from agentflow.models.embeddings.hashing import HashEmbedder
    from agentflow.models.embeddings.litellm_embedder import LiteLLMEmbedder
    from agentflow.models.embeddings.minilm import (
        MiniLMEmbedder,
        NumpyMiniLM,
        TorchMiniLM,
    )
    from agentflow.models.embeddings.names import canonical_name, make_embedder
    from agentflow.models.embeddings.routed import RoutedEmbedder, tracing_embeddings

_EXPORTS = {
    "EMBEDDING_CACHE_ENV": ".cache",
    "Embedder": ".base",
    "EmbeddingCache": ".cache",
    "HashEmbedder": ".hashing",
    "LiteLLMEmbedder": ".litellm_embedder",
    "LocalEmbedder": ".base",
    "MiniLMEmbedder": ".minilm",
    "NumpyMiniLM": ".minilm",
    "RoutedEmbedder": ".routed",
    "TorchMiniLM": ".minilm",
    "as_matrix": ".base",
    "cache_path": ".cache",
    "canonical_name": ".names",
    "make_embedder": ".names",
    "shared_cache": ".cache",
    "tracing_embeddings": ".routed",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
