"""The metrics of one item, and the statistics over items, as plain functions.

Short-answer metrics follow SQuAD's evaluation script: answers are normalised (lower case, no
punctuation, no articles ``a an the``, whitespace folded; and ``[DOC n]`` citations dropped, see
:func:`~agentflow.checks.text.normalise_answer`), and the best score over the gold aliases counts.

- exact match: the normal forms are equal;
- token F1: the harmonic mean of token precision and recall between the normal forms (bag of
  words, repeated tokens counted once per occurrence);
- answer contains: a gold normal form occurs in the prediction's as a whole-word sequence (the
  usual "has answer" of open-domain QA, which long extractive answers need).

Retrieval metrics take the retrieved document ids in rank order (a document ranks where its best
chunk does) and the gold ids, with binary relevance:

- recall@k: the share of gold documents among the first k;
- nDCG@10: DCG of the first 10 (``1 / log2(rank + 1)`` per gold document) over the ideal DCG.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from agentflow.checks.text import normalise_answer


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the prediction's normal form equals one of the answers', else 0.0."""
    guess = normalise_answer(prediction)
    return float(any(guess == normalise_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best SQuAD token F1 of the prediction against the answers."""
    guess = normalise_answer(prediction).split()
    return max((_f1(guess, normalise_answer(a).split()) for a in answers), default=0.0)


def _f1(guess: list[str], gold: list[str]) -> float:
    if not guess or not gold:  # SQuAD: F1 is 1 when both are empty, else 0
        return float(guess == gold)
    common = sum((Counter(guess) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(guess), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_contains(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a non-empty normalised answer occurs in the normalised prediction as whole words."""
    guess = f" {normalise_answer(prediction)} "
    return float(any(norm and f" {norm} " in guess
                     for norm in (normalise_answer(a) for a in answers)))


def recall_at(retrieved: Sequence[str], gold: Iterable[str], k: int) -> float:
    """The share of gold documents among the first ``k`` retrieved."""
    wanted = set(gold)
    if not wanted:
        raise ValueError("recall needs at least one gold document id")
    return len(wanted.intersection(retrieved[:k])) / len(wanted)


def ndcg_at(retrieved: Sequence[str], gold: Iterable[str], k: int = 10) -> float:
    """Binary-relevance nDCG of the first ``k`` retrieved documents."""
    wanted = set(gold)
    if not wanted:
        raise ValueError("nDCG needs at least one gold document id")
    dcg = sum(1.0 / math.log2(rank + 2) for rank, doc in enumerate(retrieved[:k]) if doc in wanted)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
    return dcg / ideal


def unique_in_order(ids: Iterable[str]) -> list[str]:
    """Ids without repeats, first occurrence kept: chunks in rank order -> documents in rank order."""
    return list(dict.fromkeys(ids))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return sum(values) / len(values)
