"""The example store: index solved pairs once, retrieve the most similar for few-shot prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.documents import Example
from agentflow.errors import RetrievalError
from agentflow.models.embeddings import HashEmbedder
from agentflow.retrieval.examples import QdrantExampleStore
from agentflow.retrieval.store import VectorStore

EXAMPLES = [
    Example(question="What is the capital of France?", answer="Paris"),
    Example(question="What is the capital of Japan?", answer="Tokyo"),
    Example(
        question="How many legs does a spider have?", answer="Eight", reasoning="Arachnids have 8."
    ),
    Example(question="Who wrote Hamlet?", answer="Shakespeare", metadata={"topic": "books"}),
]


async def test_similar_returns_the_closest_examples_on_every_backend(store: VectorStore) -> None:
    examples = QdrantExampleStore(store, embedder=HashEmbedder())
    assert await examples.similar("anything", 2) == []  # empty store
    assert await examples.add(EXAMPLES) == 4
    found = await examples.similar("capital of Italy?", 2)
    assert {e.answer for e in found} == {"Paris", "Tokyo"}
    (spider,) = await examples.similar("spider legs", 1)
    assert spider == EXAMPLES[2]
    (hamlet,) = await examples.similar("Hamlet author", 1)
    assert hamlet.metadata == {"topic": "books"}
    assert await examples.similar("x", 0) == []


async def test_adding_the_same_examples_again_writes_nothing(store: VectorStore) -> None:
    examples = QdrantExampleStore(store, embedder=HashEmbedder())
    await examples.add(EXAMPLES[:2])
    assert await examples.add(EXAMPLES) == 2
    assert await examples.add(EXAMPLES + EXAMPLES) == 0
    assert await examples.count() == 4


async def test_examples_load_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "shots.jsonl"
    rows = [{"q": "2+2?", "a": "4", "why": "add"}, {"q": "3*3?", "a": "9"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = QdrantExampleStore.open("shots", store="memory", embedder="hash")
    assert await examples.add_jsonl(path, question="q", answer="a", reasoning="why") == 2
    (best,) = await examples.similar("what is 2+2", 1)
    assert (best.answer, best.reasoning) == ("4", "add")
    path.write_text('{"q": "no answer"}\n')
    with pytest.raises(RetrievalError, match=r"shots.jsonl:1: expected an object with 'q' and 'a'"):
        await examples.add_jsonl(path, question="q", answer="a")
