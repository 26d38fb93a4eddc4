"""Chunkers: by tokens with overlap, by markdown headings, by sentences.

"Tokens" here are whitespace-separated words, counted without a model's tokenizer so chunking is
fast and does not depend on the embedder; a word is about 1.3 word pieces of MiniLM's tokenizer,
so the default 180 words stay inside its 256-piece window. A run of more than
:data:`MAX_WORD_CHARS` characters without whitespace (a URL, base64, a minified line) counts as one
word per :data:`MAX_WORD_CHARS` characters and may be cut between them, so no chunk grows past
``size * MAX_WORD_CHARS`` characters plus its whitespace. Every chunk keeps its exact text from
the document (whitespace included) and the character offset where it starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentflow.errors import RetrievalError
from agentflow.retrieval.loaders import Document
from agentflow.text import sentence_spans

ChunkerName = Literal["auto", "tokens", "markdown", "sentences"]
CHUNKERS: tuple[ChunkerName, ...] = ("auto", "tokens", "markdown", "sentences")


CHUNKING_VERSION = 3
"""Bumped when a chunker cuts differently, so stores built by the old one re-ingest."""


class ChunkingConfig(BaseModel):
    """How documents are cut into chunks."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    chunker: ChunkerName = "auto"
    """``tokens``: windows of ``size`` words overlapping by ``overlap``; ``markdown``: one chunk
    per heading section (long sections are windowed); ``sentences``: whole sentences packed up to
    ``size`` words, overlapping by up to ``overlap`` words of sentences; ``auto``: markdown for
    .md and .html, tokens otherwise."""
    size: int = Field(180, ge=2, le=8192)
    """Maximum words per chunk."""
    overlap: int = Field(30, ge=0)
    """Words shared by consecutive chunks."""

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self

    def fingerprint(self) -> str:
        """A stable string for content hashing: changing the chunking re-ingests."""
        return f"{self.chunker}:{self.size}:{self.overlap}:{CHUNKING_VERSION}"


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk of a document before it is embedded."""

    text: str
    start: int
    """Character offset of the chunk in the document text."""
    heading: str = ""
    """Heading path (``Guide > Install > Linux``) for markdown and HTML."""


MAX_WORD_CHARS = 32
"""Longest run of non-space characters counted as one word; longer runs are hard-split."""
_WORD = re.compile(rf"\S{{1,{MAX_WORD_CHARS}}}")


def chunk(doc: Document, config: ChunkingConfig) -> list[Piece]:
    """Cut a document into pieces with the configured chunker (empty documents give none)."""
    name = config.chunker
    if name == "auto":
        name = "markdown" if doc.format in ("markdown", "html") else "tokens"
    chunkers: dict[str, Callable[[str, ChunkingConfig], list[Piece]]] = {
        "tokens": by_tokens,
        "markdown": by_markdown,
        "sentences": by_sentences,
    }
    if name not in chunkers:
        raise RetrievalError(f"unknown chunker {name!r}; valid: {', '.join(CHUNKERS)}")
    return [p for p in chunkers[name](doc.text, config) if p.text.strip()]


def by_tokens(
    text: str, config: ChunkingConfig, *, offset: int = 0, heading: str = ""
) -> list[Piece]:
    """Windows of ``size`` words, each starting ``size - overlap`` words after the previous."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return []
    step = config.size - config.overlap
    pieces = []
    for first in range(0, len(spans), step):
        last = min(first + config.size, len(spans)) - 1
        start, end = spans[first][0], spans[last][1]
        pieces.append(Piece(text[start:end], offset + start, heading))
        if last == len(spans) - 1:
            break
    return pieces


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def by_markdown(text: str, config: ChunkingConfig) -> list[Piece]:
    """One piece per heading section, with its heading path; long sections are cut into whole
    sentences packed up to ``size`` words (so a quoted sentence is never half in one chunk).

    A heading with no text of its own before the next heading is folded into the next section.
    Headings inside fenced code blocks are not headings.
    """
    sections: list[tuple[str, int, int]] = []  # heading path, start, end
    stack: list[tuple[int, str]] = []
    start, path, in_fence, pos = 0, "", False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line.rstrip("\n"))
        if match:
            sections.append((path, start, pos))
            level = len(match.group(1))
            stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, match.group(2))]
            path, start = " > ".join(h for _, h in stack), pos
        pos += len(line)
    sections.append((path, start, len(text)))

    pieces: list[Piece] = []
    carry: int | None = None  # start of heading-only sections folded into the next one
    for heading, s, e in sections:
        body = text[s:e]
        first_line, _, rest = body.partition("\n")
        if not rest.strip() and _HEADING.match(first_line) and e < len(text):
            carry = s if carry is None else carry
            continue
        s = carry if carry is not None else s
        carry = None
        section = text[s:e]
        if not section.strip():
            continue
        if len(_WORD.findall(section)) <= config.size:
            lead = len(section) - len(section.lstrip())
            pieces.append(Piece(section.strip(), s + lead, heading))
        else:
            pieces.extend(by_sentences(section, config, offset=s, heading=heading))
    return pieces


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a text: :func:`agentflow.text.sentence_spans` with
    sentences that start with a capital or a digit (a lower-case word after a full stop in a
    document is more often an abbreviation the splitter does not know), lists kept whole, and no
    sentence ending after a letter standing alone (as chunks were cut before the splitters
    became one: changing that re-cuts every store, see :data:`CHUNKING_VERSION`)."""
    return sentence_spans(text, starts="capital", lists="none", lone_letters=True)


def by_sentences(
    text: str, config: ChunkingConfig, *, offset: int = 0, heading: str = ""
) -> list[Piece]:
    """Whole sentences packed up to ``size`` words; the next piece repeats the last sentences that
    fit in ``overlap`` words. A sentence longer than ``size`` is windowed on its own."""
    spans = sentences(text)
    counts = [len(_WORD.findall(text[s:e])) for s, e in spans]
    pieces: list[Piece] = []
    i = 0
    while i < len(spans):
        if counts[i] > config.size:
            s, e = spans[i]
            pieces.extend(by_tokens(text[s:e], config, offset=offset + s, heading=heading))
            i += 1
            continue
        j, words = i, 0
        while j < len(spans) and counts[j] <= config.size and words + counts[j] <= config.size:
            words += counts[j]
            j += 1
        s, e = spans[i][0], spans[j - 1][1]
        pieces.append(Piece(text[s:e], offset + s, heading))
        if j >= len(spans):
            break
        back, kept = j, 0
        while back - 1 > i and kept + counts[back - 1] <= config.overlap:
            back -= 1
            kept += counts[back]
        i = back
    return pieces
