"""The ``self_consistency`` check: sample several answers, measure how much they agree, keep the
majority (or the medoid), and abstain when agreement is low (Wang et al., 2023; Manakul et al.'s
SelfCheckGPT for the long-form view).

Agreement is measured two ways, picked per set of samples:

- **short answers** (every sample at most ``short_max_words`` words once normalised): samples agree
  when their normal forms are equal (citations, case, punctuation and articles removed). The
  representative is the most frequent answer.
- **long answers**: samples are embedded (the ``embed`` alias, citations removed) and clustered by
  average-link agglomeration at cosine similarity ``similarity``. The representative is the
  medoid of the largest cluster: the sample closest, on average, to the others in it.

The agreement score is the share of samples in the largest cluster. :func:`sample_answers` draws
the samples through the router: one request with ``n`` where the model's provider accepts ``n``,
otherwise ``n`` concurrent requests, each with its own seed (so the response cache keeps them
apart). The offline answerer is deterministic, so its samples always agree: the check is
meaningful with a sampling language model.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from agentflow.checks.judge import Judge
from agentflow.checks.registry import CheckCall, CheckOptions, register_check
from agentflow.checks.result import CheckResult, Severity, error_result
from agentflow.checks.text import normalise_answer, strip_citations
from agentflow.errors import ModelError
from agentflow.models.sampling import Sampling
from agentflow.models.types import Message, OutputConstraint, PromptInputs

DEFAULT_THRESHOLD = 0.6
Mode = Literal["short", "long"]


@dataclass(frozen=True, slots=True)
class Consensus:
    """How a set of samples agrees: clusters (sample indexes), the chosen answer, the score."""

    mode: Mode
    clusters: list[list[int]]
    """Clusters of sample indexes, largest first."""
    chosen: int
    """Index of the majority (short) or medoid (long) sample."""
    agreement: float

    def as_dict(self, samples: Sequence[str]) -> dict[str, Any]:
        return {"mode": self.mode, "agreement": round(self.agreement, 4),
                "clusters": self.clusters, "chosen": self.chosen, "answer": samples[self.chosen],
                "samples": list(samples)}


def short_consensus(samples: Sequence[str]) -> Consensus:
    """Agreement by equal normal forms; the majority answer's first sample is chosen."""
    forms = [normalise_answer(s) for s in samples]
    counts = Counter(forms)
    order = sorted(counts, key=lambda f: (-counts[f], forms.index(f)))
    clusters = [[i for i, f in enumerate(forms) if f == form] for form in order]
    return Consensus("short", clusters, clusters[0][0], len(clusters[0]) / len(samples))


def long_consensus(vectors: np.ndarray, *, similarity: float) -> Consensus:
    """Average-link clusters of unit vectors at cosine ``similarity``; the largest cluster's
    medoid is chosen (ties: the tighter cluster, then the earlier sample)."""
    sims = vectors @ vectors.T
    clusters: list[list[int]] = [[i] for i in range(len(vectors))]
    while len(clusters) > 1:
        best, pair = -2.0, (0, 0)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                link = float(sims[np.ix_(clusters[a], clusters[b])].mean())
                if link > best:
                    best, pair = link, (a, b)
        if best < similarity:
            break
        a, b = pair
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]

    def tightness(c: list[int]) -> float:
        return float(sims[np.ix_(c, c)].mean())

    clusters.sort(key=lambda c: (-len(c), -tightness(c), c[0]))
    top = clusters[0]
    medoid = max(top, key=lambda i: (float(sims[i, top].sum()), -i))
    return Consensus("long", clusters, medoid, len(top) / len(vectors))


async def consensus(
    samples: Sequence[str], judge: Judge | None = None, *, short_max_words: int = 8,
    similarity: float = 0.85,
) -> Consensus:
    """The consensus of ``samples``: short answers by normal form, long ones by embeddings (the
    judge's ``embed`` alias)."""
    if not samples:
        raise ValueError("self-consistency needs at least one sample")
    if all(len(normalise_answer(s).split()) <= short_max_words for s in samples):
        return short_consensus(samples)
    if judge is None:
        raise ValueError("long answers are compared by embeddings: pass a judge")
    vectors = await judge.embed([strip_citations(s) or s for s in samples])
    return long_consensus(vectors, similarity=similarity)


async def self_consistency(
    samples: Sequence[str],
    judge: Judge | None = None,
    *,
    answer: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    severity: Severity = "fail",
    name: str = "self_consistency",
    short_max_words: int = 8,
    similarity: float = 0.85,
) -> CheckResult:
    """Check that sampled answers agree; ``details`` carry the chosen answer and ``abstain``.

    With ``answer`` (the answer being checked, e.g. the one a ``generate`` node wrote), the details
    also say whether it agrees with the majority (it counts as one more sample).
    """
    pool = [*samples, answer] if answer is not None else list(samples)
    try:
        found = await consensus(pool, judge, short_max_words=short_max_words,
                                similarity=similarity)
    except ModelError as exc:
        return error_result(name, "self_consistency", exc, threshold=threshold,
                            severity=severity)
    passed = found.agreement >= threshold
    details = found.as_dict(pool)
    details.update(abstain=not passed, n=len(pool), similarity=similarity,
                   short_max_words=short_max_words)
    if answer is not None:
        details["answer_agrees"] = (len(pool) - 1) in found.clusters[0]
    majority = len(found.clusters[0])
    reason = (f"{majority} of {len(pool)} samples agree ({found.mode} answers, agreement "
              f"{found.agreement:.2f} {'>=' if passed else '<'} {threshold:g})")
    if not passed:
        reason += f"; the samples split into {len(found.clusters)} different answers"
    if answer is not None and not details["answer_agrees"]:
        reason += "; the checked answer is not the majority answer"
    return CheckResult(name=name, kind="self_consistency", score=round(found.agreement, 4),
                       passed=passed, threshold=threshold, reason=reason, details=details,
                       severity=severity)


class ConsistencyOptions(CheckOptions):
    """Options of the ``self_consistency`` check kind."""

    similarity: float = Field(0.85, ge=0.0, le=1.0)
    """Long answers: cosine similarity at which samples agree."""
    short_max_words: int = Field(8, ge=1)
    """Answers of at most this many words are compared by normal form, longer ones by embeddings."""


@register_check("self_consistency", options=ConsistencyOptions, default_threshold=DEFAULT_THRESHOLD,
                reads=("samples", "answer"), judges_abstention=False)
async def _self_consistency(call: CheckCall, options: ConsistencyOptions) -> CheckResult:
    """How much sampled answers agree (the share in the largest cluster), and whether the checked
    answer is the majority's."""
    if not call.samples:
        raise ValueError("the self_consistency check needs sampled answers (samples=...)")
    return await self_consistency(call.samples, call.judge, answer=call.answer or None,
                                  threshold=call.threshold, severity=call.severity, name=call.name,
                                  short_max_words=options.short_max_words,
                                  similarity=options.similarity)


async def sample_answers(
    models: Any,
    alias: str,
    messages: Sequence[Message],
    *,
    n: int,
    sampling: Sampling | None = None,
    inputs: PromptInputs | None = None,
    tracer: Any = None,
    node: str | None = None,
    max_concurrency: int = 16,
    constraint: OutputConstraint | None = None,
) -> tuple[list[str], str]:
    """Draw ``n`` answers from ``alias``; returns them and how (``"n"``: one request with ``n``,
    ``"concurrent"``: separate requests, ``"n+concurrent"``: a short ``n`` reply topped up)."""
    base = sampling or Sampling(temperature=0.7)
    primary = models.chain(alias)[0].model
    answers: list[str] = []
    how = "concurrent"
    if "n" not in primary.sampling_plan(base.model_copy(update={"n": n})).dropped:
        response = await models.complete(
            alias, messages, sampling=base.model_copy(update={"n": n}), inputs=inputs,
            constraint=constraint, tracer=tracer, node=node, trace_data={"purpose": "self_consistency", "samples": n},
        )
        answers = list(response.all_choices())[:n]
        how = "n"
        if len(answers) >= n:
            return answers, how
        how = "n+concurrent"
    gate = asyncio.Semaphore(max_concurrency)
    seed0 = (base.seed or 0) + len(answers)

    async def one(i: int) -> str:
        # a seed per sample: providers that honour it vary, and the cache keeps samples apart
        single = base.model_copy(update={"n": None, "seed": seed0 + i})
        async with gate:
            response = await models.complete(
                alias, messages, sampling=single, inputs=inputs, constraint=constraint,
                tracer=tracer, node=node,
                trace_data={"purpose": "self_consistency", "sample": len(answers) + i},
            )
        return response.text

    answers += await asyncio.gather(*(one(i) for i in range(n - len(answers))))
    return answers, how
