"""The example store: solved question/answer pairs, retrieved by similarity for few-shot prompts.

Examples live in a collection like documents do (dense + BM25 vectors of the question, the pair
in the payload), so the store can be embedded, on a server, or in memory. It implements the
prompt machinery's ``ExampleStore`` protocol: ``await similar(query, k) -> list[Example]``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentflow.documents import Example
from agentflow.errors import RetrievalError
from agentflow.models.embeddings.base import Embedder
from agentflow.retrieval.sparse import Bm25Encoder
from agentflow.retrieval.store import Record, SearchMode, StoreQuery, VectorStore

_NAMESPACE = uuid.UUID("0f1e5c9a-3b7d-4c21-9e8f-5a6b7c8d9e01")


class QdrantExampleStore:
    """Solved examples in a collection; :meth:`similar` finds the ones closest to a question."""

    def __init__(
        self,
        store: VectorStore,
        *,
        embedder: Embedder,
        sparse: Bm25Encoder | None = None,
        mode: SearchMode = "hybrid",
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse or Bm25Encoder()
        self.mode = mode

    @classmethod
    def open(
        cls,
        collection: str = "examples",
        *,
        store: str | None = None,
        base_dir: str | Path = ".",
        embedder: str | Embedder = "offline/minilm",
        mode: SearchMode = "hybrid",
    ) -> QdrantExampleStore:
        """The example store of a collection at a location (see ``CollectionSpec.store``)."""
        from agentflow.retrieval.catalog import open_store, shared_embedder

        model = shared_embedder(embedder) if isinstance(embedder, str) else embedder
        return cls(open_store(collection, store, base_dir=base_dir), embedder=model, mode=mode)

    async def add(self, examples: Iterable[Example]) -> int:
        """Index examples; returns how many were new (an example already stored is skipped)."""
        todo: dict[str, Example] = {}
        for example in examples:
            todo.setdefault(_hash(example), example)
        if await self.store.exists():
            stored = {row.get("doc_hash") for row in await self.store.scan(["doc_hash"])}
            todo = {h: e for h, e in todo.items() if h not in stored}
        if not todo:
            return 0
        items = list(todo.items())
        questions = [e.question for _, e in items]
        vectors = await self.embedder.embed(questions)
        await self.store.create(len(vectors[0]))
        sparse = self.sparse.documents(questions)
        records = [
            Record(
                id=str(uuid.uuid5(_NAMESPACE, digest)),
                dense=[float(x) for x in vectors[i]],
                sparse=sparse[i],
                payload={
                    "chunk_id": f"example:{digest}",
                    "text": example.question,
                    "source": "examples",
                    "doc_hash": digest,
                    "answer": example.answer,
                    "reasoning": example.reasoning,
                    "metadata": dict(example.metadata),
                },
            )
            for i, (digest, example) in enumerate(items)
        ]
        for start in range(0, len(records), 512):
            await self.store.upsert(records[start : start + 512])
        await self.store.optimize()
        return len(records)

    async def add_jsonl(
        self,
        path: str | Path,
        *,
        question: str = "question",
        answer: str = "answer",
        reasoning: str | None = "reasoning",
    ) -> int:
        """Index the examples of a .jsonl file, one object per line with the named fields."""
        examples = []
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise RetrievalError(f"cannot read examples from {path}: {exc}") from exc
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row: dict[str, Any] = json.loads(line)
                examples.append(
                    Example(
                        question=str(row[question]),
                        answer=str(row[answer]),
                        reasoning=str(row.get(reasoning, "") or "") if reasoning else "",
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise RetrievalError(
                    f"{path}:{line_no}: expected an object with {question!r} and {answer!r} ({exc})"
                ) from exc
        return await self.add(examples)

    async def similar(self, query: str, k: int) -> list[Example]:
        """The ``k`` stored examples whose questions are most similar to ``query``, best first."""
        if k < 1 or not await self.store.exists():
            return []
        dense = None
        if self.mode != "sparse":
            dense = [float(x) for x in (await self.embedder.embed([query]))[0]]
        sparse = self.sparse.query(query) if self.mode != "dense" else None
        hits = await self.store.query(
            StoreQuery(top_k=k, mode=self.mode, dense=dense, sparse=sparse, candidates=max(50, k))
        )
        return [
            Example(
                question=str(h.payload.get("text", "")),
                answer=str(h.payload.get("answer", "")),
                reasoning=str(h.payload.get("reasoning", "")),
                metadata=dict(h.payload.get("metadata") or {}),
            )
            for h in hits
        ]

    async def count(self) -> int:
        """How many examples are stored."""
        return await self.store.count()


def _hash(example: Example) -> str:
    body = json.dumps(
        [example.question, example.answer, example.reasoning, example.metadata],
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]
