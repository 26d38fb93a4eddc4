"""Two node types of our own, registered with ``@af.node`` and used from ``ticket.yaml``.

A YAML workflow can use them once the module is allowed:

    agentflow run examples/custom_node/ticket.yaml --allow-module examples.custom_node.nodes -i ticket="..."
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

import agentflow as af

PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "phone": re.compile(r"\+?\d[\d ()-]{7,}\d"),
    "card": re.compile(r"\b(?:\d[ -]?){13,16}\b"),
}


class RedactConfig(af.NodeConfig):
    input: str = "text"
    """The state field with the text to redact."""
    output: str = "clean"
    """The state field the redacted text is written to."""
    kinds: list[Literal["card", "email", "phone"]] = Field(default=["email", "phone"], min_length=1)
    """What to mask: card numbers, email addresses, phone numbers."""
    mask: str = "[{kind}]"
    """What replaces a match; `{kind}` is the kind of data it was."""
    count_output: str | None = None
    """Optional state field that receives how many matches of each kind were masked."""


def _redact_writes(cfg: RedactConfig) -> tuple[str, ...]:
    return (cfg.output, cfg.count_output) if cfg.count_output else (cfg.output,)


@af.node("redact", reads=lambda c: (c.input,), writes=_redact_writes)
async def redact(state: Any, cfg: RedactConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Mask personal data (card numbers, email addresses, phone numbers) in a text field."""
    text = getattr(state, cfg.input)
    counts: dict[str, int] = {}
    for kind in sorted(cfg.kinds):  # cards first: a card number also looks like a phone number
        text, counts[kind] = PATTERNS[kind].subn(cfg.mask.format(kind=kind), text)
    ctx.emit("redacted", counts)  # a custom event: in astream and in the trace, under this node
    update: dict[str, Any] = {cfg.output: text}
    if cfg.count_output:
        update[cfg.count_output] = counts
    return update


class TagConfig(af.NodeConfig):
    input: str = "text"
    """The state field with the text to tag."""
    output: str = "tag"
    """The state field the tag is written to."""
    tags: dict[str, list[str]]
    """Tag -> the words that give it; the first tag with a word in the text wins."""
    default: str = "other"
    """The tag when no word matches."""


@af.node("tag", reads=lambda c: (c.input,), writes=lambda c: (c.output,))
async def tag(state: Any, cfg: TagConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Tag a text by the first configured tag whose words occur in it."""
    words = set(re.findall(r"[a-z]+", getattr(state, cfg.input).lower()))
    found = next((t for t, keys in cfg.tags.items() if words & {k.lower() for k in keys}), None)
    return {cfg.output: found or cfg.default}
