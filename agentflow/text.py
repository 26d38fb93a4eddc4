"""Plain text: the one sentence splitter and the one ``[DOC n]`` citation parser.

Retrieval cuts documents between sentences, the offline backends quote and judge sentences, and
the checks read an answer's sentences with their citations: all of them split with
:func:`sentence_spans` (or :func:`split_sentences`, its texts) and read citations with
:func:`cited_numbers` and :func:`strip_citations`. It sits at the bottom of the import graph so
that every layer may use it.

**Sentences.** A sentence ends at ``.``, ``!`` or ``?`` (with any closing quotes or brackets)
followed by whitespace, at a blank line, and, with ``lists``, before a list item on the next line.
It does not end after a known abbreviation (``e.g.``, ``Dr.``, ``etc.``) or a name's initial
(``C. C. Miller``). Callers choose where their texts differ, and nothing else:

- ``starts``, what may start the next sentence: anything (answers written by a model), a letter
  or digit (passages the offline backends quote), or a capital or digit (documents chunked for
  retrieval, where a lower-case word after a full stop is more often an abbreviation the list
  lacks);
- ``lists``, which line breaks before a list item end a sentence (:data:`ListItems`);
- ``lone_letters``: no letter standing alone ends a sentence (how the chunker has always cut).

**Citations.** Answers cite documents as ``[DOC n]``, ``[DOC 1, 3]``, ``[DOC 1][DOC 3]``,
``[DOC 1-3]`` or ``[DOC 1, DOC 3]`` (any case, ``;``, ``&`` or ``and`` as separators too).
"""

from __future__ import annotations

import re
from typing import Literal

SentenceStart = Literal["any", "word", "capital"]
"""What may start the sentence after a full stop: ``any`` character; a ``word`` (a letter or digit,
after an optional opening quote, bracket or backtick); a ``capital`` letter or digit (after an
optional opening quote or bracket)."""

_STARTS: dict[str, str] = {
    "any": "",
    "word": r"(?=[\"'(\[`]?[A-Za-z0-9])",
    "capital": r"(?=[\"'(\[]?[A-Z0-9])",
}
_LISTS: dict[str, str] = {
    "none": "",
    "markdown": r"|\n(?=\s*(?:[-*•]|\d+[.)])\s)",
    "line": r"|\n(?=[-*\d])",
}
ListItems = Literal["none", "markdown", "line"]
"""Whether a line break before a list item ends a sentence: ``none``; ``markdown``: before an
indented or not ``-``, ``*``, ``•`` or ``1.`` / ``1)`` item followed by a space; ``line``: before any
line that starts with ``-``, ``*`` or a digit (passages whose lists lost their spacing)."""

ABBREVIATIONS = ("Dr", "Mr", "Mrs", "Ms", "Prof", "St", "vs", "etc", "e.g", "i.e", "Fig", "No",
                 "approx", "al", "Inc", "Ltd", "U.S")
"""Words whose full stop does not end a sentence (any case); so do a lower-case ``c.`` (circa)
and ``v.`` (versus)."""
_ABBREVIATION = re.compile(
    r"(?<![^\s(\[\"])(?:(?i:" + "|".join(re.escape(a) for a in ABBREVIATIONS) + r")|[cv])\.$")
_INITIAL = re.compile(r"(?<![^\s(\[\"])[A-Z]\.$")
"""A name's initial ("C. C. Miller"): case-sensitive, so a sentence ending in "plan a." still
ends; not after a full stop, so "in 400 B.C." does."""
_LONE_LETTER = re.compile(r"(?<![^\s(\[\"])[A-Za-z]\.$")
_PATTERNS: dict[tuple[str, str], re.Pattern[str]] = {}


def _boundary(starts: SentenceStart, lists: ListItems) -> re.Pattern[str]:
    """The one boundary pattern: a full stop and the gap after it, a blank line, a list item."""
    key = (starts, lists)
    pattern = _PATTERNS.get(key)
    if pattern is None:
        if starts not in _STARTS or lists not in _LISTS:
            raise ValueError(f"sentence starts {starts!r} / lists {lists!r} are not valid; valid: "
                             f"starts {sorted(_STARTS)}, lists {sorted(_LISTS)}")
        pattern = re.compile(rf"(?<=[.!?])[\"')\]]*\s+{_STARTS[starts]}|\n\s*\n{_LISTS[lists]}")
        _PATTERNS[key] = pattern
    return pattern


def continues(text: str, *, lone_letters: bool = False) -> bool:
    """Whether a full stop at the end of ``text`` belongs to an abbreviation or an initial, so the
    sentence goes on; with ``lone_letters``, after any letter standing alone too."""
    tail = text.rstrip()
    return bool(_ABBREVIATION.search(tail) or _INITIAL.search(tail)
                or (lone_letters and _LONE_LETTER.search(tail)))


def sentence_spans(text: str, *, starts: SentenceStart = "any", lists: ListItems = "markdown",
                   lone_letters: bool = False) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text`` (see the module docstring).

    A span runs from the sentence's first character to its final punctuation (closing quotes
    and brackets after it, and the whitespace, are the gap); blank pieces are skipped. With
    ``lone_letters``, no letter standing alone ends a sentence: not a lower-case initial, nor a
    unit such as ``s.`` (how documents have always been chunked; see
    :data:`~agentflow.retrieval.chunking.CHUNKING_VERSION`).
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _boundary(starts, lists).finditer(text):
        piece = text[start:match.start()]
        if continues(piece, lone_letters=lone_letters):
            continue
        if piece.strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def split_sentences(text: str, *, starts: SentenceStart = "any", lists: ListItems = "markdown",
                    lone_letters: bool = False) -> list[str]:
    """The sentences of ``text``, whitespace normalised (:func:`sentence_spans`' texts)."""
    return [" ".join(text[s:e].split())
            for s, e in sentence_spans(text, starts=starts, lists=lists, lone_letters=lone_letters)]


# -- citations ------------------------------------------------------------------------------------

CITATION = re.compile(
    r"\[\s*DOC\s*(\d+(?:\s*(?:,|;|and|&|-|–)\s*(?:DOC\s*)?\d+)*)\s*\]", re.IGNORECASE
)
"""One citation marker: ``[DOC 2]``, ``[DOC 1, 3]``, ``[DOC 1-3]``, ``[DOC 1, DOC 3]``."""
_NUMBER_OR_RANGE = re.compile(r"(\d+)\s*(?:(?:-|–)\s*(?:DOC\s*)?(\d+))?", re.IGNORECASE)
_MAX_RANGE = 50  # a "[DOC 1-5000]" is not a range anyone meant; keep its ends only


def parse_citation(marker: str) -> list[int]:
    """The document numbers of one marker: ``[DOC 1, 3]`` -> ``[1, 3]``, ``[DOC 2-4]`` -> ``[2, 3, 4]``."""
    match = CITATION.search(marker)
    if match is None:
        return []
    numbers: list[int] = []
    for part in _NUMBER_OR_RANGE.finditer(match.group(1)):
        start = int(part.group(1))
        end = int(part.group(2)) if part.group(2) else start
        if start <= end and end - start <= _MAX_RANGE:
            numbers += range(start, end + 1)
        else:
            numbers += [start, end]
    return list(dict.fromkeys(numbers))


def cited_numbers(text: str) -> list[int]:
    """Every document number cited in ``text``, in order of first mention."""
    numbers: list[int] = []
    for match in CITATION.finditer(text):
        numbers += parse_citation(match.group(0))
    return list(dict.fromkeys(numbers))


def strip_citations(text: str) -> str:
    """``text`` without ``[DOC ...]`` markers, whitespace normalised and no space before punctuation."""
    out = " ".join(CITATION.sub(" ", text).split())
    return re.sub(r"\s+([.,;:!?])", r"\1", out)


__all__ = ["ABBREVIATIONS", "CITATION", "ListItems", "SentenceStart", "cited_numbers", "continues",
           "parse_citation", "sentence_spans", "split_sentences", "strip_citations"]
