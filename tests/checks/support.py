"""Scripted judges and embedders for the check tests."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from agentflow.checks.judge import CLAIMS_PROMPT, QUESTIONS_PROMPT, VERIFY_PROMPT
from agentflow.models import ModelRouter, RetryConfig
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel

NO_WAIT = RetryConfig(initial_wait_s=0.0, max_wait_s=0.0)


def parse_verify(request: ChatRequest) -> tuple[str, list[str]]:
    """The context and the numbered statements of a verify request."""
    user = request.messages[-1]["content"] if request.messages[-1]["role"] == "user" else ""
    for message in request.messages:
        if message["role"] == "user" and message["content"].startswith("Context:"):
            user = message["content"]
            break
    context, listed = user.split("\n\nStatements:\n", 1)
    statements = [re.sub(r"^\d+\.\s*", "", line) for line in listed.splitlines() if line.strip()]
    return context, statements


def fact_judge(facts: Mapping[str, Sequence[str]], *, claims: Sequence[str] | None = None,
               questions: Sequence[str] = (), noncommittal: bool = False,
               name: str = "fake-judge") -> FakeChatModel:
    """An LLM judge that supports a statement when it contains a key of ``facts`` and the context
    contains every passage fragment listed for that key."""

    def respond(request: ChatRequest) -> str:
        system = request.messages[0]["content"]
        if system == VERIFY_PROMPT:
            context, statements = parse_verify(request)
            verdicts = []
            for statement in statements:
                needed = next((v for k, v in facts.items() if k in statement), None)
                ok = needed is not None and all(fragment in context for fragment in needed)
                verdicts.append({"statement": statement, "reason": "checked", "verdict": ok})
            return json.dumps({"verdicts": verdicts})
        if system == CLAIMS_PROMPT:
            return json.dumps({"statements": list(claims or [])})
        if system.startswith(QUESTIONS_PROMPT.split("{k}")[0]):
            return json.dumps({"questions": list(questions), "noncommittal": noncommittal})
        raise AssertionError(f"unexpected judge request: {system[:60]!r}")

    return FakeChatModel(respond, name=name)


class TableEmbedder:
    """An embedder with fixed vectors per text (unknown texts get a vector of their own)."""

    name = "fake-embed"

    def __init__(self, table: Mapping[str, Sequence[float]], dim: int = 4) -> None:
        self.table = {k: list(v) for k, v in table.items()}
        self.dim = dim
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            vector = self.table.get(text)
            if vector is None:
                vector = [0.0] * self.dim
                vector[zlib.crc32(text.encode()) % self.dim] = 1.0  # the same in every process
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            out.append([x / norm for x in vector])
        return out


def router(judge: Any, embedder: Any = None, **more: Any) -> ModelRouter:
    """A real router over a scripted judge (alias ``judge``) and an embedder (alias ``embed``)."""
    return ModelRouter(models={"judge": judge, **more},
                       embedders={"embed": embedder} if embedder is not None else None,
                       profile="fake", retries=NO_WAIT)
