"""The offline backends of the default profile: deterministic, local, and not language models.

- :class:`EmbeddingClassifier`: similarity to labelled examples and label descriptions, with an
  out-of-scope threshold.
- :class:`ExtractiveAnswerer`: quotes the best-matching sentences of the retrieved documents,
  each cited ``[DOC n]``, and abstains when support is too low.
- :class:`SupportJudge`: scores how well passages support a claim.
- :class:`OfflineModel`: all three behind the :class:`~agentflow.models.types.ChatModel` protocol.

They score with a :class:`~agentflow.models.embeddings.LocalEmbedder` (MiniLM by default).
Importing this package imports numpy; torch loads only when MiniLM first encodes many texts.
"""

from __future__ import annotations

from agentflow.models.offline.classifier import EmbeddingClassifier, Prediction
from agentflow.models.offline.extractive import (
    ABSTAIN_TEXT,
    Evidence,
    ExtractiveAnswer,
    ExtractiveAnswerer,
    SupportJudge,
)
from agentflow.models.offline.model import OfflineModel

__all__ = [
    "ABSTAIN_TEXT",
    "EmbeddingClassifier",
    "Evidence",
    "ExtractiveAnswer",
    "ExtractiveAnswerer",
    "OfflineModel",
    "Prediction",
    "SupportJudge",
]
