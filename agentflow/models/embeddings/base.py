"""The embedder protocol: texts in, a float32 matrix of one unit row per text out.

Every embedder agentflow has (MiniLM, the hash embedder, any LiteLLM embedding model) and any a
user writes fits :class:`Embedder`: the router serves an embedding alias with one, retrieval
embeds chunks and queries with one, the checks compare texts with one. Local embedders that can
answer without an event loop also fit :class:`LocalEmbedder` (the offline backends call
``encode`` from their synchronous scoring code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # importing this module stays free of numpy
    import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors: ``await embed(texts)`` is a float32 ``np.ndarray`` of shape
    ``(len(texts), dim)``, one row per text, in order.

    ``name`` identifies the model and its settings (``offline/minilm``, ``hash-64``,
    ``litellm:openai/text-embedding-3-small``): a collection records it, so a different name
    re-embeds the collection.
    """

    name: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class LocalEmbedder(Embedder, Protocol):
    """An embedder that also answers synchronously, in this process (MiniLM, the hash embedder):
    what the offline backends score with."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The same matrix as :meth:`embed`, computed in the calling thread."""
        ...


def as_matrix(vectors: Any, texts: int, name: str) -> np.ndarray:
    """``vectors`` (an array or a list of lists, as a user's embedder may return) as a float32
    matrix with one row per text; raises :class:`~agentflow.errors.ModelError` naming the
    embedder when the shape is wrong."""
    import numpy as np

    from agentflow.errors import ModelError

    matrix = np.asarray(vectors, dtype=np.float32)
    if texts == 0 and matrix.size == 0:
        return matrix.reshape(0, matrix.shape[-1] if matrix.ndim == 2 else 0)
    if matrix.ndim != 2 or matrix.shape[0] != texts:
        raise ModelError(
            f"embedder {name!r} returned an array of shape {matrix.shape} for {texts} texts; "
            f"an embedder returns one row per text (shape ({texts}, dim))"
        )
    return matrix
