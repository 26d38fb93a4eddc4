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
is the mean cosine similarity of the answer's sentences (citations removed) to the question, with
the ``embed`` alias: it drops when the answer drifts off topic or pads with unrelated sentences, but
it is not the RAGAS number and its scale is lower (MiniLM places an answer sentence further from a
question than a paraphrased question), hence its own default threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agentflow.checks.judge import Judge
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
        "claims_from": "sentences (offline)" if judge.offline else "LLM-extracted statements",
        "claims": [v.as_dict() for v in verdicts],
        "supported": supported, "total": len(verdicts), "documents": len(documents),
    }
    return CheckResult(name=name, kind="faithfulness", score=round(score, 4), passed=passed,
                       threshold=threshold, reason=reason, details=details, severity=severity)


RELEVANCY_THRESHOLD = 0.7
"""Relevancy with an LLM judge: mean similarity of generated questions to the question."""
RELEVANCY_OFFLINE_THRESHOLD = 0.3
"""Relevancy, the offline variant: mean similarity of answer sentences to the question (MiniLM)."""


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
    offline = judge.offline
    limit = threshold if threshold is not None else (
        RELEVANCY_OFFLINE_THRESHOLD if offline else RELEVANCY_THRESHOLD)
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
    score = 0.0 if noncommittal else float(sims.mean())
    passed = score >= limit
    what = "answer sentences" if offline else "questions generated from the answer"
    reason = (f"mean similarity of the {what} to the question {score:.2f} "
              f"{'>=' if passed else '<'} {limit:g}")
    if noncommittal:
        reason = f"the answer is noncommittal (score 0 < {limit:g})"
    elif not passed:
        worst = int(np.argmin(sims))
        reason += f"; least related: {probes[worst][:100]!r} ({float(sims[worst]):.2f})"
    key = "sentences" if offline else "questions"
    details = {
        "judge": judge.label, "method": method, "noncommittal": noncommittal,
        key: [{"text": p, "similarity": round(float(s), 4)} for p, s in zip(probes, sims, strict=True)],
    }
    return CheckResult(name=name, kind="relevancy", score=round(score, 4), passed=passed,
                       threshold=limit, reason=reason, details=details, severity=severity)
