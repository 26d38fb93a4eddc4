"""Text helpers of the checks: answer statements with their citations, normalised short answers,
abstentions, and sentence matching for quotes.

Answers cite documents as ``[DOC n]``, ``[DOC 1, 3]``, ``[DOC 1][DOC 3]``, ``[DOC 1-3]`` or
``[DOC 1, DOC 3]`` (any case, ``;`` or ``and`` as separators too). A citation belongs to the
sentence it closes: ``... in Rust [DOC 1].`` and ``... in Rust. [DOC 1]`` both cite DOC 1 for that
sentence, not for the next one.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from agentflow.models.offline.text import containment, content_words

_CITATION = re.compile(
    r"\[\s*DOC\s*(\d+(?:\s*(?:,|;|and|&|-|–)\s*(?:DOC\s*)?\d+)*)\s*\]", re.IGNORECASE
)
_NUMBER_OR_RANGE = re.compile(r"(\d+)\s*(?:(?:-|–)\s*(?:DOC\s*)?(\d+))?", re.IGNORECASE)
# a sentence ends at . ! ? (and any closing quotes or brackets) followed by space; or at a blank line
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_LEADING_CITATIONS = re.compile(r"^(?:\s*\[\s*DOC[^\]]*\]\s*[.!?]?)+", re.IGNORECASE)
_ABBREVIATION = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Prof|St|vs|etc|e\.g|i\.e|Fig|No|approx|al|Inc|Ltd|U\.S)\.$", re.IGNORECASE
)
_INITIAL = re.compile(r"(?:^|[\s(])[A-Z]\.$")  # "C. C. Miller": a name's initials end nothing
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MAX_RANGE = 50  # a "[DOC 1-5000]" is not a range anyone meant; keep its ends only

ABSTENTION_PATTERNS: tuple[str, ...] = (
    "i don't know", "i do not know", "do not contain", "does not contain", "don't contain",
    "doesn't contain", "not enough information", "no information", "cannot answer",
    "can't answer", "unable to answer", "cannot be answered", "not mentioned in the",
    "no relevant", "i'm not sure", "i am not sure",
)
"""Phrases that mark an answer as an abstention (checked on short answers only)."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One sentence of an answer: its text, the text without citations, and the cited ``n``s."""

    index: int
    text: str
    clean: str
    """The sentence without its ``[DOC n]`` markers."""
    cited: tuple[int, ...]
    """Cited document numbers, in order of first mention, without repeats."""


def parse_citation(marker: str) -> list[int]:
    """The document numbers of one marker: ``[DOC 1, 3]`` -> ``[1, 3]``, ``[DOC 2-4]`` -> ``[2, 3, 4]``."""
    match = _CITATION.search(marker)
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
    for match in _CITATION.finditer(text):
        numbers += parse_citation(match.group(0))
    return list(dict.fromkeys(numbers))


def strip_citations(text: str) -> str:
    """``text`` without ``[DOC ...]`` markers, whitespace normalised and no space before punctuation."""
    out = " ".join(_CITATION.sub(" ", text).split())
    return re.sub(r"\s+([.,;:!?])", r"\1", out)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping abbreviations like ``e.g.`` inside their sentence."""
    parts: list[str] = []
    for raw in _SENTENCE_END.split(text):
        part = " ".join(raw.split())
        if not part:
            continue
        if parts and (_ABBREVIATION.search(parts[-1]) or _INITIAL.search(parts[-1])):
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return parts


def statements(answer: str) -> list[Statement]:
    """The sentences of an answer with their citations; citations that open a sentence (written
    after the previous sentence's full stop) are moved back to the sentence they close."""
    texts: list[str] = []
    for sentence in split_sentences(answer):
        lead = _LEADING_CITATIONS.match(sentence)
        if lead and texts:
            texts[-1] = f"{texts[-1]} {lead.group(0).strip()}"
            sentence = sentence[lead.end():].strip()
        if sentence:
            texts.append(sentence)
    out: list[Statement] = []
    for text in texts:
        clean = strip_citations(text)
        if not content_words(clean) and not cited_numbers(text):
            continue  # bare punctuation or markup, nothing to check
        out.append(Statement(len(out), text, clean, tuple(cited_numbers(text))))
    return out


def normalise_answer(text: str) -> str:
    """SQuAD-style normal form of a short answer: citations, case, punctuation, articles and
    extra whitespace removed (``"The Eiffel Tower [DOC 2]."`` -> ``"eiffel tower"``)."""
    lowered = strip_citations(text).lower()
    no_punct = "".join(ch for ch in lowered if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", no_punct).split())


def is_abstention(answer: str, *, extra: tuple[str, ...] = ()) -> bool:
    """Whether an answer declines to answer (``I don't know``, ``the documents do not contain
    ...``). Only short answers (up to three sentences) count: a long answer that mentions a gap
    in passing still answers."""
    clean = strip_citations(answer).lower().replace("’", "'")
    if not clean:
        return True
    if len(split_sentences(clean)) > 3:
        return False
    return any(p in clean for p in (*ABSTENTION_PATTERNS, *(e.lower() for e in extra)))


def best_sentence(statement: str, passage: str) -> tuple[str, float]:
    """The sentence of ``passage`` that best matches ``statement`` by word overlap (the mean of
    the containment both ways), and that score; ``("", 0.0)`` when nothing overlaps."""
    words = content_words(statement)
    best, best_score = "", 0.0
    for sentence in split_sentences(passage):
        other = content_words(sentence)
        score = 0.5 * containment(words, other) + 0.5 * containment(other, words)
        if score > best_score:
            best, best_score = sentence, score
    return best, best_score
