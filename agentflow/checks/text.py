"""Text helpers of the checks: answer statements with their citations, normalised short answers,
abstentions, and sentence matching for quotes. Sentences and citations are read by
:mod:`agentflow.text` (the one splitter and citation parser; re-exported here).

A citation belongs to the sentence it closes: ``... in Rust [DOC 1].`` and ``... in Rust. [DOC 1]`` both cite DOC 1 for that
sentence, not for the next one.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from agentflow.models.offline.text import containment, content_words
from agentflow.text import (
    CITATION,
    cited_numbers,
    parse_citation,
    split_sentences,
    strip_citations,
)

_LEADING_CITATIONS = re.compile(rf"^(?:\s*{CITATION.pattern}\s*[.!?]?)+", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

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


__all__ = ["ABSTENTION_PATTERNS", "Statement", "best_sentence", "cited_numbers", "is_abstention",
           "normalise_answer", "parse_citation", "split_sentences", "statements", "strip_citations"]
