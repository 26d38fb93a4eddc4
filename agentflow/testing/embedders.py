"""A fake embedder: deterministic vectors for the router's embedding alias and for retrievers.

.. code-block:: python

    from agentflow.testing import FakeChatModel, FakeEmbedder, FakeRouter

    embed = FakeEmbedder({"Paris is the capital.": [1, 0, 0, 0],
                          "What is the capital?": [0.9, 0.1, 0, 0]})
    router = FakeRouter({"judge": FakeChatModel([...]), "embed": embed})
    ...  # a relevancy or self-consistency check embeds through the "embed" alias
    assert "Paris is the capital." in embed.texts

The same object serves a retriever (``InMemoryRetriever(embedder=FakeEmbedder())``): it has the
asynchronous ``embed`` of the embedder protocol and the synchronous ``encode`` of the built-in
embedders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agentflow.models.embeddings.hashing import HashEmbedder

DEFAULT_DIM = 64
"""Size of the vectors when neither ``dim`` nor a pinned vector says otherwise."""


class FakeEmbedder:
    """An embedder whose vectors are pinned per text, or derived from the text's words.

    A text in ``vectors`` gets its pinned vector, scaled to unit length, so a test sets exactly
    how similar two texts are. Any other text gets the :class:`HashEmbedder`'s bag-of-words
    vector: texts that share words are similar, and the same text gets the same vector in every
    process. ``failures`` are raised by the first calls, one per call (a ``ProviderError`` with
    ``reason="rate_limit"`` exercises the router's retries); the texts of a failed call are still
    recorded. Every call's texts are kept in ``requests``.
    """

    def __init__(
        self,
        vectors: Mapping[str, Sequence[float]] | None = None,
        *,
        dim: int | None = None,
        name: str = "fake-embed",
        failures: Sequence[BaseException] = (),
    ) -> None:
        pinned = {text: [float(x) for x in vector] for text, vector in (vectors or {}).items()}
        first = next(iter(pinned.values()), None)
        self.dim = dim if dim is not None else len(first) if first is not None else DEFAULT_DIM
        if self.dim < 1:
            raise ValueError(f"FakeEmbedder {name!r}: dim must be at least 1, got {self.dim}")
        self._pinned = {text: _unit(text, v, self.dim, name) for text, v in pinned.items()}
        self._words = HashEmbedder(self.dim)
        self._failures = list(failures)
        self.name = name
        self.requests: list[list[str]] = []
        """The texts of every call, one list per call, in order."""

    def __repr__(self) -> str:
        return f"FakeEmbedder({self.name!r}, dim={self.dim}, calls={self.calls})"

    @property
    def calls(self) -> int:
        """How many times texts were embedded (``embed`` or ``encode``)."""
        return len(self.requests)

    @property
    def texts(self) -> list[str]:
        """Every text embedded, over all calls, in order."""
        return [text for request in self.requests for text in request]

    @property
    def last_request(self) -> list[str]:
        """The texts of the latest call."""
        if not self.requests:
            raise AssertionError(f"FakeEmbedder {self.name!r} was never called")
        return self.requests[-1]

    def vector(self, text: str) -> np.ndarray:
        """The unit vector ``text`` gets, without recording a call (for expected values)."""
        pinned = self._pinned.get(text)
        return pinned.copy() if pinned is not None else self._words.encode([text])[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed synchronously: a float32 array of shape ``(len(texts), dim)``."""
        batch = list(texts)
        self.requests.append(batch)
        if self._failures:
            raise self._failures.pop(0)
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            out[row] = self.vector(text)
        return out

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (the embedder protocol): see :meth:`encode`."""
        return self.encode(texts)


def _unit(text: str, vector: list[float], dim: int, name: str) -> np.ndarray:
    if len(vector) != dim:
        raise ValueError(
            f"FakeEmbedder {name!r}: the vector pinned for {text!r} has {len(vector)} dimensions, "
            f"the others {dim}; give every pinned vector the same size"
        )
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        raise ValueError(
            f"FakeEmbedder {name!r}: the vector pinned for {text!r} must be finite and non-zero "
            "(it is scaled to unit length for cosine similarity)"
        )
    return np.asarray([x / norm for x in vector], dtype=np.float32)
