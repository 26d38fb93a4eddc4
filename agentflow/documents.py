"""The data that flows between retrieval, prompts, models and checks.

These are plain value types at the bottom of the import graph, so retrieval can produce them and
prompts, models and checks can consume them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentflow.errors import ConfigError


class Chunk(BaseModel):
    """A retrieved piece of a document, with where it came from and how it scored."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Stable id of the chunk in its collection."""
    text: str
    source: str = ""
    """The file (or URL) the chunk came from."""
    title: str = ""
    heading: str = ""
    """The markdown heading path the chunk sits under, when known."""
    position: int = 0
    """Index of the chunk within its source."""
    score: float = 0.0
    """Retrieval score (higher is better); fused scores after reciprocal rank fusion."""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Example(BaseModel):
    """A solved question/answer pair, for few-shot prompts."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    question: str
    """The example's question."""
    answer: str
    """Its answer, as the model should write it."""
    reasoning: str = ""
    """Optional worked reasoning, shown only when chain-of-thought is on."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Anything else to keep with the example (its source, say)."""


def chunks_of(value: Any, node_name: str) -> list[Chunk]:
    """A state value as a list of chunks (chunks, dicts shaped like them, or plain texts)."""
    if value is None:
        return []
    if isinstance(value, Chunk | Mapping | str):
        value = [value]
    try:
        return [c if isinstance(c, Chunk) else
                Chunk(id=f"text:{i}", text=c) if isinstance(c, str) else Chunk.model_validate(c)
                for i, c in enumerate(value)]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"node {node_name!r}: documents must be a list of chunks: {exc}") from exc
