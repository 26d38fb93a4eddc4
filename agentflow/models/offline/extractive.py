"""The offline answerer and judge: sentence scoring against retrieved passages.

Neither is a language model. The :class:`ExtractiveAnswerer` quotes the sentences of the retrieved
documents that best match the question, each cited ``[DOC n]``, and abstains with a plain sentence
when the best match is too weak. The :class:`SupportJudge` scores how well passages support each
sentence of a claim. Both score a sentence by a weighted sum of embedding cosine similarity and
lexical containment (the share of the question's or claim's content words that the sentence has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentflow.documents import Chunk
from agentflow.models.embeddings.base import LocalEmbedder
from agentflow.models.offline.text import (
    answer_type,
    containment,
    content_words,
    has_answer_type,
    sentences,
    strip_citations,
    topic_words,
    weighted_containment,
    whole_sentences,
    words_with_stems,
)
from agentflow.models.types import JudgeVerdict

MIN_COVERAGE = 0.0
"""Share of the question's topic words (weighed by rarity among the retrieved sentences) the best
sentences must hold, or the answerer abstains; off by default. Measured through the reference
workflow (``benchmarks/calibrate_checks.py --only answerability``, dev items): 0.5 abstains on 0.8
of the beekeeping set's unanswerable questions (0.2 without), but costs CLAP NQ a fifth of its
token F1 and NQ-Open answer-contains, whose short, loosely worded questions often name words the
answering sentence does not repeat. Worth setting where questions name their subject exactly."""
REQUIRED_TYPES = ("money", "distance", "duration", "year")
"""Answer types a question must find among the sentences close to the best one, or abstain: the
units (a price for "how much does it cost", a distance for "how far", ...). Requiring plain
numbers, dates and names too cost CLAP NQ token F1 on the dev items."""
TYPE_WINDOW = 0.2
"""How far under the best score a sentence with the wanted type may be."""
MAX_UNMENTIONED: int | None = None
"""How many of the question's topic words may be missing from every retrieved passage (headings
included) before the answerer abstains; None (the default): no limit. A word no retrieved passage
has ("mead", "chalkbrood") is one the collection most likely never mentions, since retrieval is
part lexical. Measured through the reference workflow on dev items (``benchmarks/
calibrate_checks.py --only answerability``): 0 abstains on 0.8 of the beekeeping set's
unanswerable questions (0.2 without) but halves CLAP NQ's token F1 (0.56 -> 0.27) and cuts NQ-Open's
answer-contains from 0.64 to 0.36, whose questions word things differently from their passages;
1 keeps NQ-Open at 0.58 and helps the beekeeping set little (0.4). Worth setting, like
``min_coverage``, where users ask in the documents' own words."""

ABSTAIN_TEXT = (
    "I don't know: the retrieved documents do not contain enough information to answer this question."
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A quoted sentence, the ``n`` of the document it came from, and its score."""

    doc: int
    chunk_id: str
    sentence: str
    score: float


@dataclass(frozen=True, slots=True)
class ExtractiveAnswer:
    text: str
    evidence: tuple[Evidence, ...]
    support: float
    """Score of the best sentence; under the answerer's ``min_support`` it abstains."""
    abstained: bool
    reason: str = ""
    """Why it abstained: what the documents lack."""


class _SentenceScorer:
    def __init__(self, encoder: LocalEmbedder | None, semantic_weight: float) -> None:
        self.encoder = encoder
        self.semantic_weight = semantic_weight if encoder is not None else 0.0

    def score(self, probe: str, candidates: Sequence[str],
              context: Sequence[str] | None = None) -> np.ndarray:
        """Score every candidate sentence against ``probe`` (a question or a claim sentence).

        With ``context`` (one per candidate, e.g. the heading it sits under) the lexical part
        counts the context's words too (a sentence under "Ingesting files" answers "how do I
        ingest files?" without repeating those words) and weighs words by their rarity among the
        candidates.
        """
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        words = content_words(probe)
        if context is None:
            lexical = np.array([containment(words, content_words(c)) for c in candidates],
                               dtype=np.float32)
        else:
            bags = [content_words(c) | content_words(x) for c, x in zip(candidates, context, strict=True)]
            lexical = np.array(weighted_containment(words, bags), dtype=np.float32)
        if self.encoder is None or self.semantic_weight == 0.0:
            return lexical
        vectors = self.encoder.encode([probe, *candidates])
        return self.blend(vectors[1:] @ vectors[0], lexical)

    def blend(self, similarity: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """The score: cosine similarity (clipped at 0) and lexical overlap, weighed."""
        if self.encoder is None or self.semantic_weight == 0.0:
            return lexical
        semantic = np.clip(similarity, 0.0, 1.0)
        return self.semantic_weight * semantic + (1.0 - self.semantic_weight) * lexical


class ExtractiveAnswerer:
    """Answer by quoting the best-matching sentences of the documents, or abstain.

    The sentence that answers comes first: a question that wants a number, a date, a person or a
    place (:func:`~agentflow.models.offline.text.answer_type`) ranks the sentences that hold one
    ``type_bonus`` higher (calibrated on NQ-Open by ``benchmarks/calibrate_checks.py``). Further
    sentences follow only when they score within ``margin`` of the
    best and at least ``relative`` times it (no padding with weakly related sentences), in
    document order (both calibrated on CLAP NQ and NQ-Open by ``benchmarks/calibrate_checks.py``). Navigation, headings and table rows are never quoted.
    """

    def __init__(
        self,
        encoder: LocalEmbedder | None,
        *,
        max_sentences: int = 3,
        min_support: float = 0.4,
        margin: float = 0.12,
        relative: float = 0.8,
        type_bonus: float = 0.15,
        semantic_weight: float = 0.7,
        min_coverage: float = MIN_COVERAGE,
        required_types: tuple[str, ...] = REQUIRED_TYPES,
        type_window: float = TYPE_WINDOW,
        max_unmentioned: int | None = MAX_UNMENTIONED,
    ) -> None:
        self.max_unmentioned = max_unmentioned
        self.min_coverage = min_coverage
        self.required_types = required_types
        self.type_window = type_window
        self.max_sentences = max_sentences
        self.min_support = min_support
        self.margin = margin
        self.relative = relative
        self.type_bonus = type_bonus
        self._scorer = _SentenceScorer(encoder, semantic_weight)

    def answer(self, query: str, documents: Sequence[tuple[int, Chunk]]) -> ExtractiveAnswer:
        """Quote the best sentence, then up to ``max_sentences - 1`` close to it."""
        pool: list[tuple[int, str, str]] = []
        headings: list[str] = []
        seen: set[str] = set()
        for number, chunk in documents:
            for sentence in whole_sentences(chunk.text):
                if sentence not in seen:
                    seen.add(sentence)
                    pool.append((number, chunk.id, sentence))
                    headings.append(chunk.heading)
        scores = self._scorer.score(query, [s for _, _, s in pool], headings)
        if not pool or float(scores.max()) < self.min_support:
            best = float(scores.max()) if pool else 0.0
            return ExtractiveAnswer(ABSTAIN_TEXT, (), best, abstained=True,
                                    reason=f"the best sentence scores {best:.2f} < {self.min_support:g}")
        kind = answer_type(query)
        typed = np.array([kind is not None and has_answer_type(s, kind) for _, _, s in pool])
        ranked = scores + self.type_bonus * typed.astype(np.float32)
        order = np.argsort(-ranked, kind="stable")
        first = int(order[0])
        best = float(ranked[first])
        gap = self._unmentioned(query, documents) or self._unanswered(
            query, kind, pool, headings, scores, typed, first)
        if gap:
            return ExtractiveAnswer(ABSTAIN_TEXT, (), float(scores.max()), abstained=True,
                                    reason=gap)
        floor = max(self.min_support, best - self.margin, best * self.relative)
        rest = sorted(int(i) for i in order[1: self.max_sentences] if ranked[i] >= floor)
        # the answering sentence first, then the others in the order they were written
        chosen = [Evidence(pool[i][0], pool[i][1], pool[i][2], float(scores[i]))
                  for i in (first, *rest)]
        text = " ".join(_cite(e.sentence, e.doc) for e in chosen)
        return ExtractiveAnswer(text, tuple(chosen), float(scores.max()), abstained=False)

    def _unmentioned(self, query: str, documents: Sequence[tuple[int, Chunk]]) -> str:
        """Why no retrieved passage can answer: topic words of the question none of them has."""
        if self.max_unmentioned is None:
            return ""
        seen: set[str] = set()
        for _, chunk in documents:
            seen |= content_words(chunk.text) | content_words(chunk.heading)
        missing = topic_words(query) - seen
        if len(missing) <= self.max_unmentioned:
            return ""
        named = ", ".join(repr(w) for w in words_with_stems(query, missing))
        return f"no retrieved document mentions {named}"

    def _unanswered(self, query: str, kind: str | None, pool: Sequence[tuple[int, str, str]],
                    headings: Sequence[str], scores: np.ndarray, typed: np.ndarray,
                    first: int) -> str:
        """Why the best sentence is about the question without answering it ("" when it answers).

        Two gaps tell "is about it" from "says it": a question that wants a kind of answer (a
        price, a distance, a year, a name, ...) and no sentence close to the best that holds one;
        and a best sentence that leaves out what the question is about: its topic words weighed by
        their rarity among the retrieved sentences, so a word every passage has ("honey") counts
        little and one none has ("mead") counts most. Both calibrated on held-out data by
        ``benchmarks/calibrate_checks.py``.
        """
        if kind in self.required_types:
            near = scores >= float(scores.max()) - self.type_window
            if not bool((typed & near).any()):
                return f"no retrieved sentence close to the question holds a {kind}"
        words = topic_words(query)
        if words and self.min_coverage > 0.0:
            # a sentence is read with its heading and the sentence before it in the same chunk
            # ("It was founded in 1987" names the club in the sentence before)
            bags = [content_words(s) | content_words(h)
                    | (content_words(pool[i - 1][2]) if i and pool[i - 1][1] == chunk else set())
                    for i, ((_, chunk, s), h) in enumerate(zip(pool, headings, strict=True))]
            near = np.flatnonzero(scores >= float(scores.max()) - self.type_window)
            coverage = max(weighted_containment(words, bags)[i] for i in {first, *near.tolist()})
            if coverage < self.min_coverage:
                return (f"the best sentences cover {coverage:.2f} of what the question is about "
                        f"(< {self.min_coverage:g})")
        return ""


def _cite(sentence: str, doc: int) -> str:
    body = sentence.rstrip().rstrip(";:,")  # a quoted list item ends as a sentence
    if body and body[-1] in ".!?":
        return f"{body[:-1]} [DOC {doc}]{body[-1]}"
    return f"{body} [DOC {doc}]."


class SupportJudge:
    """Score how well passages support a claim, sentence by sentence (not a language model)."""

    def __init__(
        self,
        encoder: LocalEmbedder | None,
        *,
        threshold: float = 0.6,
        semantic_weight: float = 0.3,
    ) -> None:
        # Mostly lexical on purpose: a claim that names things the passages never mention is
        # unsupported however similar it sounds (hallucinations restate the question fluently).
        self.threshold = threshold
        self._scorer = _SentenceScorer(encoder, semantic_weight)

    def judge(self, claim: str, documents: Sequence[Chunk]) -> JudgeVerdict:
        """Support of each claim sentence is its best match among the passages' sentences and
        pairs of adjacent sentences; the claim is supported when every sentence reaches the
        threshold, and its score is their mean."""
        clean = strip_citations(claim)
        parts = sentences(clean, min_words=2) or ([clean] if clean else [])
        if not parts:
            return JudgeVerdict(score=0.0, supported=False, reason="the claim is empty")
        singles: list[str] = []
        pairs: list[tuple[int, int]] = []  # indices into singles of adjacent sentences
        for chunk in documents:
            start = len(singles)
            singles += judge_sentences(chunk.text)
            pairs += [(i, i + 1) for i in range(start, len(singles) - 1)]
        if not singles:
            return JudgeVerdict(
                score=0.0, supported=False, reason="no passages to check the claim against",
                sentence_scores=[0.0] * len(parts),
            )
        supports = self._supports(parts, singles, pairs)
        weakest = int(np.argmin(supports))
        held = sum(s >= self.threshold for s in supports)
        reason = f"{held} of {len(parts)} claim sentence(s) supported (threshold {self.threshold})"
        if held < len(parts):
            reason += f"; weakest ({supports[weakest]:.2f}): {parts[weakest][:120]!r}"
        return JudgeVerdict(
            score=float(np.clip(np.mean(supports), 0.0, 1.0)),
            supported=held == len(parts),
            reason=reason,
            sentence_scores=[round(s, 4) for s in supports],
        )

    def _supports(self, parts: list[str], singles: list[str],
                  pairs: list[tuple[int, int]]) -> list[float]:
        """Best score of each claim sentence over the passage sentences and adjacent pairs.

        A pair's words are its two sentences' words; its vector is the normalised sum of theirs
        (the mean of two sentence embeddings, which the passages' sentences embedded once at
        ingestion give for free, where embedding the joined text would cost a forward pass per
        pair at every new question).
        """
        bags = [content_words(s) for s in singles]
        bags += [bags[a] | bags[b] for a, b in pairs]
        lexical = np.array([[containment(words, bag) for bag in bags]
                            for words in map(content_words, parts)], dtype=np.float32)
        scorer = self._scorer
        if scorer.encoder is None or scorer.semantic_weight == 0.0:
            return [float(row.max()) for row in lexical]
        vectors = scorer.encoder.encode([*parts, *singles])
        claims, units = vectors[: len(parts)], vectors[len(parts):]
        if pairs:
            left, right = zip(*pairs, strict=True)
            joined = units[list(left)] + units[list(right)]
            joined /= np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)
            units = np.concatenate([units, joined])
        scores = scorer.blend(claims @ units.T, lexical)
        return [float(row.max()) for row in scores]


def judge_sentences(text: str) -> list[str]:
    """The sentences of a passage the judge weighs a claim against (the passage itself when it
    has none: a table row, a heading)."""
    return sentences(text, min_words=2) or [text]


def passage_sentences(text: str) -> list[str]:
    """Every sentence of a passage the answerer or the judge may embed."""
    return list(dict.fromkeys([*whole_sentences(text), *judge_sentences(text)]))
