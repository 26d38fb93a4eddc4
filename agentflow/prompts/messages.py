"""Conversation history: normalising messages, and keeping reasoning out of answers and history.

History may come as dicts (``{"role": "user", "content": ...}``), ``(role, content)`` pairs, or
langchain-core messages (the type LangGraph's ``add_messages`` keeps); all become plain
:class:`~agentflow.models.types.Message` dicts. Chain-of-thought replies carry their reasoning in a
scratchpad (``<scratchpad>...</scratchpad>``, or the ``<think>``/``<thinking>``/``<reasoning>`` tags
that reasoning models emit); :func:`split_reasoning` separates it from the answer, and
:func:`strip_history` removes it, and any provider reasoning fields, from earlier turns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentflow.errors import ConfigError
from agentflow.models.types import Message

SCRATCHPAD_TAG = "scratchpad"
_TAGS = ("scratchpad", "thinking", "think", "reasoning")
_CLOSED = re.compile(rf"<({'|'.join(_TAGS)})>.*?</\1>", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(rf"<({'|'.join(_TAGS)})>.*\Z", re.DOTALL | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"</?answer>", re.IGNORECASE)
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "user": "user",
          "assistant": "assistant", "developer": "system"}
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def to_message(item: Any) -> Message:
    """One message as a ``{"role", "content"}`` dict (reasoning fields are not carried over)."""
    if isinstance(item, Mapping):
        role, content = item.get("role") or item.get("type"), item.get("content", "")
    elif isinstance(item, tuple) and len(item) == 2:
        role, content = item
    elif hasattr(item, "type") and hasattr(item, "content"):  # a langchain-core message
        role, content = item.type, item.content
    else:
        raise ConfigError(f"cannot read a chat message from {type(item).__name__}: {item!r:.80}")
    mapped = _ROLES.get(str(role))
    if mapped is None:
        raise ConfigError(
            f"unknown message role {role!r}; valid: {', '.join(sorted(_ROLES))}"
        )
    return {"role": mapped, "content": _text(content)}  # type: ignore[typeddict-item]


def to_messages(items: Iterable[Any] | None) -> list[Message]:
    """A history of any of the accepted shapes as plain message dicts (tool messages skipped)."""
    out: list[Message] = []
    for item in items or ():
        role = getattr(item, "type", None) or (item.get("role") if isinstance(item, Mapping) else None)
        if role in ("tool", "function"):
            continue
        out.append(to_message(item))
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or ():  # multimodal content: keep the text parts only
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(parts)


def split_reasoning(text: str) -> tuple[str, str]:
    """``(answer, scratchpad)``: the reply without its reasoning, and the reasoning removed.

    An unclosed scratchpad (a reply cut off while reasoning) is removed to the end.
    """
    removed: list[str] = []

    def keep(match: re.Match[str]) -> str:
        removed.append(match.group(0))
        return " "

    answer = _CLOSED.sub(keep, text)
    answer = _OPEN.sub(keep, answer)
    answer = _ANSWER_TAG.sub("", answer)
    scratchpad = "\n".join(_inner(r) for r in removed)
    return " ".join(answer.split()) if removed else answer.strip(), scratchpad


def _inner(block: str) -> str:
    return re.sub(rf"</?({'|'.join(_TAGS)})>", "", block, flags=re.IGNORECASE).strip()


def has_reasoning(item: Any) -> bool:
    """True when a message carries reasoning: a scratchpad, or a provider reasoning field."""
    extra = getattr(item, "additional_kwargs", None) or {}
    if any(extra.get(k) for k in _REASONING_KEYS):
        return True
    content = getattr(item, "content", None) if not isinstance(item, Mapping) else item.get("content")
    if isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") in ("reasoning", "thinking") for p in content
    ):
        return True
    return bool(_CLOSED.search(_text(content)) or _OPEN.search(_text(content)))


def strip_history(history: Sequence[Any]) -> tuple[list[Message], int]:
    """History without reasoning in assistant turns; also returns how many turns carried some."""
    out: list[Message] = []
    stripped = 0
    for item in history:
        role = getattr(item, "type", None) or (item.get("role") if isinstance(item, Mapping) else None)
        if role in ("tool", "function"):
            continue
        message = to_message(item)
        if message["role"] == "assistant" and (has_reasoning(item) or has_reasoning(message)):
            stripped += 1
            message = {"role": "assistant", "content": split_reasoning(message["content"])[0]}
        out.append(message)
    return out, stripped
