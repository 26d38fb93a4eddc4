"""The context budget: what of the history and the retrieved chunks fits a model's window.

A prompt may use the model's window minus the tokens reserved for the answer (``max_tokens``, or
:data:`DEFAULT_RESERVE` when a node sets none). Reasoning is stripped from the history before
anything is counted; then, within the limit, the most recent turns get up to ``history_share`` of
the room, the highest-ranked chunks fill what is left, and older turns take any space still free.
The assembled prompt is counted again exactly and trimmed (lowest-ranked chunk, else oldest turn)
until it fits, so a prompt never exceeds the limit. The :class:`BudgetReport` says what was dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models.types import Message

DEFAULT_RESERVE = 1024
"""Tokens kept free for the answer when a node does not set ``max_tokens``."""
MESSAGE_OVERHEAD = 4
"""Tokens a chat format spends per message (role markers), as in OpenAI's counting guide."""

Build = Callable[[list[Message], list[int]], list[Message]]
"""Assemble the prompt from kept history turns and kept document indexes (in input order)."""


def estimate_tokens(text: str) -> int:
    """A tokenizer-free upper-side estimate: about three characters a token."""
    return math.ceil(len(text) / 3) if text else 0


def estimate_messages(messages: Sequence[Message]) -> int:
    """Estimated prompt tokens of a message list."""
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages) + 3


def prompt_limit(window: int, max_tokens: int | None) -> int:
    """Tokens a prompt may use in a window when ``max_tokens`` are kept for the answer."""
    reserve = max_tokens if max_tokens is not None else min(DEFAULT_RESERVE, window // 4)
    return window - reserve


@dataclass(slots=True)
class BudgetReport:
    """What the budget kept and dropped; recorded with the model call in the trace."""

    window: int
    limit: int
    prompt_tokens: int = 0
    kept_documents: list[int] = field(default_factory=list)
    """Indexes (into the documents given) of the chunks in the prompt."""
    dropped_documents: list[str] = field(default_factory=list)
    """Ids of the chunks left out."""
    kept_turns: int = 0
    dropped_turns: int = 0
    """Oldest history turns left out."""
    stripped_reasoning: int = 0
    """History turns whose scratchpad or reasoning was removed."""

    @property
    def dropped_anything(self) -> bool:
        return bool(self.dropped_documents or self.dropped_turns)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit(
    *,
    build: Build,
    history: Sequence[Message],
    documents: Sequence[Chunk],
    count: Callable[[list[Message]], int],
    count_text: Callable[[str], int],
    window: int,
    limit: int,
    history_share: float = 0.25,
    stripped_reasoning: int = 0,
) -> tuple[list[Message], BudgetReport]:
    """Assemble the largest prompt that fits ``limit`` tokens; see the module docstring."""
    report = BudgetReport(window=window, limit=limit, stripped_reasoning=stripped_reasoning)
    base = count(build([], []))
    if base > limit:
        raise ModelError(
            f"the prompt needs {base} tokens before any history or documents, more than the "
            f"{limit} this model allows (window {window} minus the tokens kept for the answer); "
            "shorten the instructions, examples or question, or lower max_tokens"
        )
    room = limit - base
    turn_cost = [count_text(m["content"]) + MESSAGE_OVERHEAD for m in history]
    doc_cost = [count_text(_doc_text(c)) + 12 for c in documents]

    kept_turns = _newest_that_fit(turn_cost, int(room * history_share))
    room -= sum(turn_cost[-kept_turns:]) if kept_turns else 0
    kept_docs: list[int] = []
    for i in sorted(range(len(documents)), key=lambda i: (-documents[i].score, i)):
        if doc_cost[i] <= room:
            kept_docs.append(i)
            room -= doc_cost[i]
    older = turn_cost[: len(turn_cost) - kept_turns]
    kept_turns += _newest_that_fit(older, room)

    while True:
        kept_history = list(history[len(history) - kept_turns :]) if kept_turns else []
        messages = build(kept_history, sorted(kept_docs))
        total = count(messages)
        if total <= limit:
            break
        if kept_docs:
            kept_docs.pop()  # the lowest-ranked one kept
        elif kept_turns:
            kept_turns -= 1
        else:  # pragma: no cover - base already fits, so this cannot happen
            raise ModelError(f"prompt of {total} tokens cannot be cut below {limit}")
    report.prompt_tokens = total
    report.kept_documents = sorted(kept_docs)
    report.dropped_documents = [c.id for i, c in enumerate(documents) if i not in set(kept_docs)]
    report.kept_turns = kept_turns
    report.dropped_turns = len(history) - kept_turns
    return messages, report


def _newest_that_fit(costs: Sequence[int], room: int) -> int:
    used = kept = 0
    for cost in reversed(costs):
        if used + cost > room:
            break
        used += cost
        kept += 1
    return kept


def _doc_text(chunk: Chunk) -> str:
    return f"{chunk.title} {chunk.source} {chunk.text}"


def check_fits(tokens: int, limit: int, *, what: str) -> None:
    """Raise a :class:`ModelError` when a prompt that cannot be pruned is over the limit."""
    if tokens > limit:
        raise ModelError(
            f"{what} needs {tokens} prompt tokens, more than the {limit} its model allows "
            "(window minus the tokens kept for the answer); shorten the input or lower max_tokens"
        )
