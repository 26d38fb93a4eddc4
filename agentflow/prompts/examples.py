"""Few-shot examples: fixed in a node's config, or retrieved by similarity from an example store.

An example store is anything with ``async similar(query, k) -> list[Example]``; agentflow's
Qdrant-backed one lives in :mod:`agentflow.retrieval.examples`. :class:`StaticExampleStore` keeps a
list in memory and ranks it by word overlap, for tests and small projects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentflow.documents import Example

_WORD = re.compile(r"[a-z0-9]+")


@runtime_checkable
class ExampleStore(Protocol):
    """A store of solved examples that returns the ``k`` most similar to a query."""

    async def similar(self, query: str, k: int) -> list[Example]: ...


class StaticExampleStore:
    """Examples held in memory, ranked by Jaccard word overlap with the query (ties: list order)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self._words = [_words(e.question) for e in self.examples]

    async def similar(self, query: str, k: int) -> list[Example]:
        if k <= 0:
            return []
        probe = _words(query)
        scores = [
            len(probe & words) / len(probe | words) if probe | words else 0.0
            for words in self._words
        ]
        order = sorted(range(len(self.examples)), key=lambda i: (-scores[i], i))
        return [self.examples[i] for i in order[:k]]


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


async def select_examples(
    fixed: Sequence[Example], store: ExampleStore | None, query: str, k: int
) -> list[Example]:
    """The fixed examples, then up to ``k`` retrieved ones not already among them."""
    chosen = list(fixed)
    if k > 0 and store is not None:
        known = {e.question for e in chosen}
        for example in await store.similar(query, k):
            if example.question not in known:
                chosen.append(example)
                known.add(example.question)
    return chosen
