"""Embedders by name: what a collection's ``embedder:`` or ``agentflow ingest --embedder`` says.

- ``offline/minilm`` (the default; ``minilm`` is the older spelling of the same weights),
- ``offline/hashing`` (the content-word hash embedder), ``hash`` / ``hash-<dim>`` (the word hash
  embedder),
- anything else: a LiteLLM embedding model (``openai/text-embedding-3-small``; the prefix
  ``litellm:`` is optional).
"""

from __future__ import annotations

import re

from agentflow.errors import ModelError
from agentflow.models.embeddings.base import Embedder
from agentflow.models.embeddings.cache import EmbeddingCache
from agentflow.models.embeddings.hashing import LEXICAL_NAME, HashEmbedder
from agentflow.models.embeddings.minilm import ALIASES, NAME


def canonical_name(name: str | None) -> str:
    """The one spelling of an embedder's name: ``minilm`` and None become ``offline/minilm``,
    ``hash`` becomes ``hash-64``, ``litellm:`` is dropped from a LiteLLM model."""
    if name is None or name in ALIASES:
        return NAME
    if name == "hash":
        return "hash-64"
    return name.removeprefix("litellm:")


def make_embedder(
    name: str | Embedder | None = None, *, cache: EmbeddingCache | None = None
) -> Embedder:
    """The embedder a name stands for (see the module); an :class:`Embedder` is returned as is.
    ``cache`` is MiniLM's on-disk cache (the other embedders have none)."""
    if name is not None and not isinstance(name, str):
        return name
    model = canonical_name(name)
    if model == NAME:
        from agentflow.models.embeddings.minilm import MiniLMEmbedder

        return MiniLMEmbedder(cache=cache)
    if model == LEXICAL_NAME:
        return HashEmbedder.lexical()
    if re.fullmatch(r"hash-\d+", model):
        return HashEmbedder(int(model.split("-")[1]))
    if not model.strip():
        raise ModelError(
            f"invalid embedder {name!r}; use 'offline/minilm', 'hash', 'hash-<dim>', "
            "'offline/hashing' or a LiteLLM embedding model name"
        )
    from agentflow.models.embeddings.litellm_embedder import LiteLLMEmbedder

    return LiteLLMEmbedder(model)
