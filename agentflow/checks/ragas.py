"""The two RAGAS checks (Es et al., 2023, "RAGAS: Automated Evaluation of Retrieval Augmented
Generation"): ``faithfulness`` and response ``relevancy``.

**Faithfulness**: the answer is broken into claims, each claim is judged against the retrieved
context, and the score is the share of claims the context supports. With an LLM judge, the claims
are the standalone statements the judge extracts (pronouns resolved, citations dropped) and one
structured request judges them all. The offline judge is not a language model: its claims are the
answer's sentences, and a claim is supported when every sentence of it reaches the support score
``claim_threshold`` (lexical containment plus embedding similarity against the passages' sentences
and adjacent pairs of them). The details say which judge it was.

**Relevancy**: with an LLM judge, the judge writes ``k`` questions that the answer answers (and
says whether the answer is noncommittal); the score is the mean cosine similarity of their
embeddings to the user's question's, and 0 for a noncommittal answer, as in RAGAS. The offline
judge cannot write questions. Its variant, labelled ``offline-sentence-similarity`` in the details,
scores each of the answer's sentences (citations removed) by ``RELEVANCY_OFFLINE_WEIGHT`` times
its cosine similarity to the question (the ``embed`` alias) plus the rest times the share of the
question's content words it has (question words such as "how many" left out), and takes the
mean: it drops when the answer drifts off topic, pads with unrelated sentences, or is on topic
without addressing what was asked ("Clean the chain every 300 kilometres" for "How many kilometres
does a chain last?" has no "last"). It is not the RAGAS number and has its own scale; its weight
and threshold are calibrated on data by ``benchmarks/calibrate_checks.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from agentflow.checks.judge import Judge
from agentflow.checks.registry import CheckCall, CheckOptions, register_check
from agentflow.checks.result import (
    AbstentionPolicy,
    CheckResult,
    Severity,
    abstained_result,
    error_result,
)
from agentflow.checks.text import is_abstention, statements
from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models.offline.text import (
    TYPE_WORDS,
    answer_type,
    containment,
    content_words,
    has_answer_type,
)

FAITHFULNESS_THRESHOLD = 0.8


async def faithfulness(
    answer: str,
    documents: Sequence[Chunk],
    judge: Judge,
    *,
    question: str = "",
    threshold: float = FAITHFULNESS_THRESHOLD,
    severity: Severity = "fail",
    name: str = "faithfulness",
    abstention: AbstentionPolicy = "fail",
) -> CheckResult:
    """Score the share of the answer's claims that ``documents`` support."""
    if is_abstention(answer):
        return abstained_result(name, "faithfulness", threshold=threshold, severity=severity,
                                policy=abstention, judge=judge.label)
    try:
        claims = await judge.claims(answer, question)
        if not claims:
            return CheckResult(
                name=name, kind="faithfulness", score=None, passed=False, threshold=threshold,
                reason="no claims could be found in the answer", severity=severity,
                details={"judge": judge.label, "claims": []},
            )
        verdicts = await judge.verify(claims, documents)
    except ModelError as exc:
        return error_result(name, "faithfulness", exc, threshold=threshold, severity=severity,
                            judge=judge.label)
    supported = sum(v.supported for v in verdicts)
    score = supported / len(verdicts)
    passed = score >= threshold
    reason = (f"{supported} of {len(verdicts)} claims are supported by the documents (score "
              f"{score:.2f} {'>=' if passed else '<'} {threshold:g})")
    unsupported = [v.claim for v in verdicts if not v.supported]
    if unsupported:
        shown = "; ".join(repr(c if len(c) <= 100 else c[:97] + "...") for c in unsupported[:3])
        more = f" and {len(unsupported) - 3} more" if len(unsupported) > 3 else ""
        reason += f"; unsupported: {shown}{more}"
    details = {
        "judge": judge.label,
        "claims_from": "sentences (offline)" if judge.structured else "LLM-extracted statements",
        "claims": [v.as_dict() for v in verdicts],
        "supported": supported, "total": len(verdicts), "documents": len(documents),
    }
    return CheckResult(name=name, kind="faithfulness", score=round(score, 4), passed=passed,
                       threshold=threshold, reason=reason, details=details, severity=severity)


@register_check("faithfulness", default_threshold=FAITHFULNESS_THRESHOLD,
                reads=("question", "answer", "documents"))
async def _faithfulness(call: CheckCall, options: CheckOptions) -> CheckResult:
    """The share of the answer's claims that the documents support (RAGAS)."""
    return await faithfulness(call.answer, call.documents, call.judge, question=call.question,
                              threshold=call.threshold, severity=call.severity, name=call.name,
                              abstention=call.abstention)


RELEVANCY_THRESHOLD = 0.7
"""Relevancy with an LLM judge: mean similarity of generated questions to the question."""
RELEVANCY_OFFLINE_THRESHOLD = 0.51
"""Relevancy, the offline variant: the mean score of the answer's sentences (see the module
docstring). Calibrated by ``benchmarks/calibrate_checks.py`` on CLAP NQ dev items 100-599 (the
offline answerer's answers to answerable questions vs to unanswerable ones, on topic but not an
answer): balanced accuracy 0.79; its docstring has the numbers."""
RELEVANCY_OFFLINE_WEIGHT = 1.0
"""The offline variant's weight of cosine similarity (the rest is topic-word coverage),
calibrated with the threshold: on that data the words add nothing to the cosine (weights 0-0.9
score lower), so the weight is 1."""
QUESTION_WORDS = TYPE_WORDS
"""Words that say what kind of answer is wanted, not what it is about: not counted as topic."""


TYPED_ANSWERS = ("money", "distance", "duration", "year", "number", "frequency", "date", "person")
"""Answer types the offline variant requires. ``benchmarks/calibrate_checks.py`` measured how many
NQ-Open sentences that hold the gold answer have the type: number 0.97, date 0.94, person 0.99,
place only 0.66 (so place is not required; nor is a "how do I" procedure, too loose a type). The
units (money, distance, duration, year) refine number and date."""
TYPE_MISMATCH_FACTOR = 0.5
"""The offline variant's score is multiplied by this when the answer lacks the wanted type:
``benchmarks/calibrate_checks.py`` measures how often a right answer would (``type_rule``)."""


def relevancy_threshold(judge: Judge) -> float:
    return RELEVANCY_OFFLINE_THRESHOLD if judge.structured else RELEVANCY_THRESHOLD


relevancy_threshold.__doc__ = (  # the YAML reference shows it, with the numbers of today
    f"{RELEVANCY_THRESHOLD:g} with an LLM judge; {RELEVANCY_OFFLINE_THRESHOLD:g} with the offline "
    "judge, whose variant has its own scale")


def relevancy_lexical(question: str, answer: str) -> float:
    """The share of the question's topic words (content words less :data:`QUESTION_WORDS`)
    that the answer has."""
    return containment(content_words(question) - QUESTION_WORDS, content_words(answer))


async def response_relevancy(
    question: str,
    answer: str,
    judge: Judge,
    *,
    k: int = 3,
    threshold: float | None = None,
    severity: Severity = "fail",
    name: str = "relevancy",
    abstention: AbstentionPolicy = "fail",
) -> CheckResult:
    """How well the answer addresses the question; see the module docstring."""
    offline = judge.structured  # the offline variant: sentences scored, no questions written
    limit = threshold if threshold is not None else relevancy_threshold(judge)
    if is_abstention(answer):
        return abstained_result(name, "relevancy", threshold=limit, severity=severity,
                                policy=abstention, judge=judge.label)
    try:
        if offline:
            probes = [s.clean for s in statements(answer)] or [answer]
            method, noncommittal = "offline-sentence-similarity", False
        else:
            generated = await judge.questions(answer, k)
            probes, noncommittal = generated.questions, generated.noncommittal
            method = "ragas-generated-questions"
        vectors = await judge.embed([question, *probes])
    except ModelError as exc:
        return error_result(name, "relevancy", exc, threshold=limit, severity=severity,
                            judge=judge.label)
    sims = np.clip(vectors[1:] @ vectors[0], -1.0, 1.0)
    if offline:  # cosine and topic-word coverage, weighed as calibrated
        lexical = np.array([relevancy_lexical(question, p) for p in probes], dtype=np.float32)
        sims = RELEVANCY_OFFLINE_WEIGHT * sims + (1.0 - RELEVANCY_OFFLINE_WEIGHT) * lexical
    score = 0.0 if noncommittal else float(sims.mean())
    kind = answer_type(question) if offline else None
    mismatch = kind in TYPED_ANSWERS and not any(has_answer_type(p, kind) for p in probes)
    if mismatch:  # the question wants a number (a date, a name, a place) and none is given
        score *= TYPE_MISMATCH_FACTOR
    passed = score >= limit
    what = ("answer sentences (cosine and topic words)" if offline
            else "questions generated from the answer")
    reason = (f"mean similarity of the {what} to the question {score:.2f} "
              f"{'>=' if passed else '<'} {limit:g}")
    if noncommittal:
        reason = f"the answer is noncommittal (score 0 < {limit:g})"
    elif mismatch:
        reason = (f"the question asks for a {kind} and the answer gives none (score halved to "
                  f"{score:.2f} {'>=' if passed else '<'} {limit:g})")
    elif not passed:
        worst = int(np.argmin(sims))
        reason += f"; least related: {probes[worst][:100]!r} ({float(sims[worst]):.2f})"
    key = "sentences" if offline else "questions"
    details = {
        "judge": judge.label, "method": method, "noncommittal": noncommittal,
        **({"answer_type": {"wanted": kind, "found": not mismatch}} if kind in TYPED_ANSWERS else {}),
        key: [{"text": p, "similarity": round(float(s), 4)} for p, s in zip(probes, sims, strict=True)],
    }
    return CheckResult(name=name, kind="relevancy", score=round(score, 4), passed=passed,
                       threshold=limit, reason=reason, details=details, severity=severity)


class RelevancyOptions(CheckOptions):
    """Options of the ``relevancy`` check kind."""

    relevancy_questions: int = Field(3, ge=1, le=10)
    """With an LLM judge: how many questions to generate from the answer."""


@register_check("relevancy", options=RelevancyOptions, default_threshold=relevancy_threshold,
                reads=("question", "answer"))
async def _relevancy(call: CheckCall, options: RelevancyOptions) -> CheckResult:
    """How well the answer addresses the question (RAGAS response relevancy; the offline judge's
    variant has its own scale and threshold)."""
    return await response_relevancy(call.question, call.answer, call.judge,
                                    k=options.relevancy_questions, threshold=call.threshold,
                                    severity=call.severity, name=call.name,
                                    abstention=call.abstention)
