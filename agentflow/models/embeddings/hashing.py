"""The hash embedder: deterministic vectors with no model, for tests, demos and machines without
torch.

Each feature of a text is hashed to a signed bucket of a ``dim``-sized vector, so texts that
share features are similar, and the same text gets the same vector in every process. Two feature
sets, one class:

- ``words`` (the default, ``hash-<dim>``): every lower-cased word. An empty text gets the first
  axis, so it still has a valid unit vector (a vector store accepts it).
- ``content`` (:meth:`HashEmbedder.lexical`, ``offline/hashing``): the content words (stop words
  dropped) counted twice and their character trigrams: the offline backends' lexical stand-in
  for MiniLM. A text without content words gets the zero vector (similar to nothing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

HashFeatures = Literal["words", "content"]
LEXICAL_NAME = "offline/hashing"
"""The name of the content-word embedder in profiles (``embed: offline/hashing``)."""
LEXICAL_DIM = 1024

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """A deterministic bag-of-features embedder (see the module): unit-length float32 rows."""

    def __init__(self, dim: int = 64, *, features: HashFeatures = "words") -> None:
        if dim < 1:
            raise ValueError(f"HashEmbedder: dim must be at least 1, got {dim}")
        if features not in ("words", "content"):
            raise ValueError(
                f"HashEmbedder: features must be 'words' or 'content', got {features!r}")
        self.dim = dim
        self.features = features
        if features == "words":
            self.name = f"hash-{dim}"
        else:
            self.name = LEXICAL_NAME if dim == LEXICAL_DIM else f"{LEXICAL_NAME}-{dim}"

    @classmethod
    def lexical(cls, dim: int = LEXICAL_DIM) -> HashEmbedder:
        """The content-word embedder the offline backends use instead of MiniLM in tests."""
        return cls(dim, features="content")

    def __repr__(self) -> str:
        return f"HashEmbedder({self.dim}, features={self.features!r})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``: a float32 array of shape ``(len(texts), dim)``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            elif self.features == "words":
                out[row, 0] = 1.0  # an empty text still gets a valid (unit) vector
        return out

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`encode` (instant: no worker thread)."""
        return self.encode(texts)

    def _features(self, text: str) -> list[str]:
        if self.features == "words":
            return _WORD.findall(text.lower())
        from agentflow.models.offline.text import content_words

        words = sorted(content_words(text))
        grams = [f"#{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + words + grams  # words count twice as much as their trigrams
