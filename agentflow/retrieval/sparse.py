"""Sparse BM25 vectors for hybrid search (the dense vectors come from an embedder of the model
layer: :mod:`agentflow.models.embeddings`).

:class:`Bm25Encoder` gives BM25 term weights (term frequency saturated by ``k`` and normalised by
document length with ``b``); the store applies IDF at query time from its own statistics
(Qdrant's ``Modifier.Idf``), so IDF stays right as documents come and go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentflow.errors import RetrievalError
from agentflow.retrieval.store import SparseVector


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
