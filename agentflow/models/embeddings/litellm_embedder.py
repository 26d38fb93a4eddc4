"""Any embedding model LiteLLM reaches (``openai/text-embedding-3-small``, ``ollama/...``,
an OpenAI-compatible server), through the model layer's LiteLLM adapter (the one module that
imports ``litellm``), so provider errors are translated as for chat models."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from agentflow.models.embeddings.base import as_matrix
from agentflow.models.profiles import ModelEntry


class LiteLLMEmbedder:
    """An embedder reached through ``litellm.aembedding``.

    Texts go out in batches of ``batch_size`` per request, up to ``concurrency`` requests at a
    time; the entry's ``api_base``, ``api_key_env`` and ``timeout_s`` configure the requests. A
    failure raises :class:`~agentflow.models.types.ProviderError` (the router retries the
    transient ones). ``name`` is ``litellm:<model>``.
    """

    def __init__(
        self,
        entry: ModelEntry | str,
        *,
        timeout_s: float = 60.0,
        batch_size: int = 128,
        concurrency: int = 4,
    ) -> None:
        self.entry = ModelEntry(model=entry) if isinstance(entry, str) else entry
        self.model = self.entry.model
        self.name = f"litellm:{self.model}"
        self.timeout_s = self.entry.timeout_s or timeout_s
        self.batch_size = batch_size
        self.concurrency = concurrency

    def __repr__(self) -> str:
        return f"LiteLLMEmbedder({self.model!r})"

    def request_kwargs(self, texts: Sequence[str]) -> dict[str, Any]:
        """The keyword arguments of one ``litellm.aembedding`` request."""
        from agentflow.models.litellm_adapter import api_key, litellm_model

        kwargs: dict[str, Any] = {
            "model": litellm_model(self.model), "input": list(texts), "timeout": self.timeout_s,
        }
        if self.entry.api_base:
            kwargs["api_base"] = self.entry.api_base
        key = api_key(self.entry)
        if key:
            kwargs["api_key"] = key
        return kwargs

    async def _batch(self, texts: Sequence[str], gate: asyncio.Semaphore) -> list[list[float]]:
        from agentflow.models.litellm_adapter import litellm, translate_error

        async with gate:
            try:
                raw = await litellm().aembedding(**self.request_kwargs(texts))
            except Exception as exc:  # every LiteLLM/provider failure is translated here
                raise translate_error(exc, self.model) from exc
        return [list(item["embedding"]) for item in raw.data]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` (float32, one row per text, in order)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        gate = asyncio.Semaphore(self.concurrency)
        parts = await asyncio.gather(*(
            self._batch(texts[i : i + self.batch_size], gate)
            for i in range(0, len(texts), self.batch_size)
        ))
        return as_matrix([v for part in parts for v in part], len(texts), self.name)
