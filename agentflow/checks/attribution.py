"""The ``attribution`` check: which retrieved sources caused each sentence of an answer (ContextCite).

ContextCite (Cohen-Wang et al., 2024, "ContextCite: Attributing Model Generation to Context") asks the
model itself rather than a judge:

1. the context is split into sources: the ``[DOC n]`` chunks, or each chunk's sentences;
2. ``k`` random ablations each keep every source with probability 1/2 (seeded), and the fixed answer is
   scored under each ablated context by the model's own log-probabilities (one request: the model server scores
   the prompts in batched passes over their shared prefix; see :mod:`agentflow.models.logprobs`);
3. per answer sentence, the logit of its probability, ``log p - log(1 - p)``, is regressed on the ablation
   masks with a sparse linear surrogate (LASSO on standardised masks, scikit-learn, as the reference code);
   a source's weight is how much including it raises that logit.

The check reads the weights beside the answer's own citations: a ``[DOC n]`` that the attribution does
not support (its weight is below ``min_weight`` or a quarter of the sentence's top weight) is flagged, and so
is a document that drove a sentence (its weight is at least ``min_weight`` and half the top weight) without
being cited. Precision is
the share of citations supported, recall the share of driven sentences whose top document is cited; the
score is their harmonic mean, as the ``citations`` check's.

.. code-block:: python

    from agentflow.checks.attribution import attribute
    from agentflow.models.logprobs import RouterScorer

    result = await attribute(answer, chunks, question=q, scorer=RouterScorer(router, "large"), ablations=32)
    for s in result.sentences:
        print(s.text, [(w.doc, round(w.weight, 2)) for w in s.top])

Each sentence's top sources, weights, citations and flags are the check's ``details["sentences"]`` (the
trace viewer's citation panel reads them beside the citations).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from agentflow.checks.registry import CheckCall, CheckOptions, register_check
from agentflow.checks.result import (
    AbstentionPolicy,
    CheckResult,
    Severity,
    abstained_result,
    error_result,
)
from agentflow.checks.text import is_abstention, split_sentences, statements
from agentflow.documents import Chunk
from agentflow.errors import ConfigError, ModelError
from agentflow.models.logprobs import (
    PromptScorer,
    RouterScorer,
    ScoredPrompt,
    continuation_tokens,
)

SourceUnit = Literal["chunk", "sentence"]
DEFAULT_THRESHOLD = 0.75
"""F1 of supported citations and cited drivers needed to pass (as the citations check's default)."""
DEFAULT_ABLATIONS = 32
KEEP_PROBABILITY = 0.5
"""Each source survives an ablation with this probability (ContextCite's default)."""
LASSO_ALPHA = 0.01
"""The reference code's regularisation (on standardised masks and per-token outputs)."""
MIN_WEIGHT = 0.5
"""Weight (logit of the sentence's probability) a document needs to count as driving or supporting it."""
SUPPORT_SHARE = 0.25
"""A cited document supports a sentence when its weight is also at least this share of the sentence's top
weight (ablation noise gives unrelated sources weights of about 1 when one source dominates)."""
DRIVE_SHARE = 0.5
"""An uncited document drove a sentence when its weight is at least this share of the top weight."""
PROMPT = "Documents:\n{documents}\n\nQuestion: {question}\nAnswer:"
"""The scored prompt around the sources; the answer follows after one space."""


@dataclass(frozen=True)
class Source:
    """One ablatable piece of the context: a chunk, or one sentence of it."""

    index: int
    doc: int
    """The ``[DOC n]`` number of the chunk it belongs to (1-based)."""
    text: str


@dataclass(frozen=True)
class SourceWeight:
    """A source's weight for one answer sentence."""

    source: int
    doc: int
    weight: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "doc": self.doc, "weight": round(self.weight, 4), "text": self.text[:300]}


@dataclass
class SentenceAttribution:
    """One answer sentence: its top sources with weights, its citations, what disagrees between them."""

    index: int
    text: str
    start: int
    end: int
    cited: list[int]
    top: list[SourceWeight]
    doc_weights: dict[int, float]
    """Per document, the largest weight among its sources."""
    tokens: int
    unsupported_citations: list[int] = field(default_factory=list)
    uncited_sources: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "sentence": self.text, "start": self.start, "end": self.end, "cited": self.cited,
            "sources": [w.as_dict() for w in self.top],
            "doc_weights": {str(d): round(w, 4) for d, w in sorted(self.doc_weights.items())},
            "unsupported_citations": self.unsupported_citations, "uncited_sources": self.uncited_sources,
            "tokens": self.tokens,
        }


@dataclass
class Attribution:
    """ContextCite's result for one answer."""

    answer: str
    sources: list[Source]
    sentences: list[SentenceAttribution]
    whole: SentenceAttribution
    """The whole answer as one span (its top sources answer "what caused this answer")."""
    ablations: int
    forward_passes: int
    seconds: float
    full_logprob: float
    model: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "ablations": self.ablations, "forward_passes": self.forward_passes,
            "seconds": round(self.seconds, 3), "full_logprob": round(self.full_logprob, 4),
            "sources": len(self.sources), "sentences": [s.as_dict() for s in self.sentences],
            "answer_sources": [w.as_dict() for w in self.whole.top],
        }


def split_sources(documents: Sequence[Chunk], unit: SourceUnit = "chunk") -> list[Source]:
    """The context's sources: one per chunk, or one per sentence of each chunk."""
    if unit not in ("chunk", "sentence"):
        raise ValueError(f"source unit {unit!r} is not valid; valid: 'chunk', 'sentence'")
    sources: list[Source] = []
    for doc, chunk in enumerate(documents, start=1):
        texts = [" ".join(chunk.text.split())] if unit == "chunk" else split_sentences(chunk.text)
        for text in texts:
            if text:
                sources.append(Source(len(sources), doc, text))
    return sources


def build_prompt(question: str, sources: Sequence[Source], keep: Sequence[bool], *,
                 template: str = PROMPT) -> str:
    """The context with only the kept sources (a document none of whose sources is kept disappears; the
    others keep their ``[DOC n]`` numbers, so the answer's citations still name them)."""
    kept: dict[int, list[str]] = {}
    for source, k in zip(sources, keep, strict=True):
        if k:
            kept.setdefault(source.doc, []).append(source.text)
    docs = "\n".join(f"[DOC {doc}] {' '.join(parts)}" for doc, parts in sorted(kept.items()))
    return template.format(documents=docs or "(none)", question=question)


def ablation_masks(sources: int, ablations: int, *, seed: int = 0,
                   keep: float = KEEP_PROBABILITY) -> np.ndarray:
    """``[ablations, sources]`` booleans, each source kept with probability ``keep`` (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.random((ablations, sources)) < keep


def logit_of(logprob: np.ndarray) -> np.ndarray:
    """``log p - log(1 - p)`` of a sequence log-probability (ContextCite's output), kept finite."""
    lp = np.minimum(logprob, -1e-6)
    return lp - np.log(-np.expm1(lp))


def fit_surrogate(masks: np.ndarray, outputs: np.ndarray, tokens: int, *,
                  alpha: float = LASSO_ALPHA) -> tuple[np.ndarray, float]:
    """LASSO of ``outputs`` on ``masks`` (standardised, as ContextCite's solver): weights per source and bias,
    in the outputs' units (the fit runs on per-token outputs, then scales back)."""
    try:
        from sklearn.linear_model import Lasso
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise ConfigError("the attribution check fits its surrogate with scikit-learn, which is not "
                          "installed: pip install 'agentflow[attribution]'") from exc

    x = masks.astype(np.float64)
    y = outputs / max(tokens, 1)
    scaler = StandardScaler()
    lasso = Lasso(alpha=alpha, random_state=0, fit_intercept=True)
    make_pipeline(scaler, lasso).fit(x, y)
    weight = lasso.coef_ / scaler.scale_
    bias = float(lasso.intercept_ - (scaler.mean_ / scaler.scale_) @ lasso.coef_)
    return weight * tokens, bias * tokens


def _spans(answer: str) -> list[tuple[int, int, str, list[int]]]:
    """Each answer sentence as ``(start, end, text, cited)``; spans tile the answer (a sentence runs to the
    next one's start)."""
    found: list[tuple[int, str, list[int]]] = []
    cursor = 0
    for st in statements(answer):
        words = st.text.split()
        at = -1
        for n in range(len(words), 0, -1):  # a citation moved back onto this sentence is not contiguous
            at = answer.find(" ".join(words[:n]), cursor)
            if at >= 0:
                break
        if at < 0:
            continue
        found.append((at, st.text, list(st.cited)))
        cursor = at + 1
    if not found:
        return [(0, len(answer), answer, [])]
    spans = []
    for i, (start, text, cited) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(answer)
        spans.append((0 if i == 0 else start, end, text, cited))
    return spans


def _token_positions(scored: ScoredPrompt, answer: str, count: int | None = None) -> tuple[int, list[int]]:
    """How many trailing tokens spell `` answer``, and where each one's text starts in ``answer`` (negative for a
    token that straddles the prompt's end)."""
    count = count or scored.tail(" " + answer)
    texts = scored.tokens[-count:]
    total = sum(len(t) for t in texts)
    starts, pos = [], len(answer) - total
    for t in texts:
        starts.append(pos + len(t) - len(t.lstrip()))  # a token's leading space belongs to the gap before it
        pos += len(t)
    return count, starts


def _sentence_of(starts: list[int], spans: list[tuple[int, int, str, list[int]]]) -> list[int]:
    """The sentence each answer token belongs to (the first span that ends after the token starts)."""
    return [next((j for j, span in enumerate(spans) if start < span[1]), len(spans) - 1) for start in starts]


def _sentence_logprobs(scored: ScoredPrompt, count: int, starts: list[int],
                       spans: list[tuple[int, int, str, list[int]]]) -> np.ndarray:
    sums = np.zeros(len(spans))
    for value, i in zip(scored.logprobs[-count:], _sentence_of(starts, spans), strict=True):
        sums[i] += value or 0.0
    return sums


def _attribution_of(index: int, text: str, start: int, end: int, cited: list[int], weights: np.ndarray,
                    sources: Sequence[Source], tokens: int, top_k: int, min_weight: float) -> SentenceAttribution:
    order = [int(j) for j in np.argsort(-weights, kind="stable") if weights[j] > 0][:top_k]
    top = [SourceWeight(j, sources[j].doc, float(weights[j]), sources[j].text) for j in order]
    doc_weights: dict[int, float] = {}
    for j, source in enumerate(sources):
        doc_weights[source.doc] = max(doc_weights.get(source.doc, -math.inf), float(weights[j]))
    result = SentenceAttribution(index, text, start, end, cited, top, doc_weights, tokens)
    best = max(doc_weights.values(), default=0.0)
    support = max(min_weight, SUPPORT_SHARE * best)
    result.unsupported_citations = [d for d in cited if doc_weights.get(d, 0.0) < support]
    result.uncited_sources = sorted(d for d, w in doc_weights.items()
                                    if w >= max(min_weight, DRIVE_SHARE * best) and d not in cited)
    return result


async def attribute(
    answer: str, documents: Sequence[Chunk], *, scorer: PromptScorer, question: str = "",
    ablations: int = DEFAULT_ABLATIONS, unit: SourceUnit = "chunk", seed: int = 0, top_k: int = 3,
    min_weight: float = MIN_WEIGHT, template: str = PROMPT,
) -> Attribution:
    """ContextCite on one answer (see the module docstring): ``ablations`` random contexts and the full one,
    scored in one request; per sentence its ``top_k`` sources with weights, and the flags."""
    if ablations < 2:
        raise ValueError(f"ablations must be at least 2, got {ablations}")
    answer = " ".join(answer.split())
    sources = split_sources(documents, unit)
    if not sources:
        raise ValueError("attribution needs at least one non-empty document")
    masks = ablation_masks(len(sources), ablations, seed=seed)
    full = [True] * len(sources)
    context = build_prompt(question, sources, full, template=template)
    # the full context without the answer too: the answer's token count is the difference (it is a prefix of
    # the next prompt, so the model server computes nothing more for it)
    prompts = [context, context + " " + answer]
    prompts += [build_prompt(question, sources, list(m), template=template) + " " + answer for m in masks]
    started = time.perf_counter()
    bare, *scored = await scorer.score(prompts)
    seconds = time.perf_counter() - started
    return fit_attribution(answer, sources, masks, scored, seconds=seconds, top_k=top_k, min_weight=min_weight,
                           model=getattr(scorer, "name", type(scorer).__name__),
                           answer_tokens=continuation_tokens(bare, scored[0]))


def fit_attribution(
    answer: str, sources: Sequence[Source], masks: np.ndarray, scored: Sequence[ScoredPrompt], *,
    seconds: float = 0.0, top_k: int = 3, min_weight: float = MIN_WEIGHT, model: str = "",
    answer_tokens: int | None = None,
) -> Attribution:
    """The surrogates from scored prompts: ``scored[0]`` the full context, ``scored[1:]`` the ablations of
    ``masks`` in order (the first ``k`` masks of a larger seeded set are the ``k``-ablation run's masks, so one
    scoring of 64 ablations also gives the fits for 16 and 32). ``answer_tokens``: how many trailing tokens are
    the answer (:func:`~agentflow.models.logprobs.continuation_tokens`); by default read from the token texts."""
    if len(scored) != len(masks) + 1:
        raise ValueError(f"expected {len(masks) + 1} scored prompts (the full context and each ablation), got "
                         f"{len(scored)}")
    spans = _spans(answer)
    rows = []
    counts: list[int] = []
    for s in scored:
        count, starts = _token_positions(s, answer, answer_tokens)
        counts.append(count)
        rows.append(_sentence_logprobs(s, count, starts, spans))
    table = np.array(rows)  # [1 + ablations, sentences]
    _, starts0 = _token_positions(scored[0], answer, answer_tokens)
    owners = _sentence_of(starts0, spans)
    sentences = []
    for i, (s0, end, text, cited) in enumerate(spans):
        tokens = max(owners.count(i), 1)
        weights, _ = fit_surrogate(masks, logit_of(table[1:, i]), tokens)
        sentences.append(_attribution_of(i, text, s0, end, cited, weights, sources, tokens, top_k, min_weight))
    weights, _ = fit_surrogate(masks, logit_of(table[1:].sum(axis=1)), max(counts[0], 1))
    cited_all = sorted({d for s in sentences for d in s.cited})
    whole = _attribution_of(-1, answer, 0, len(answer), cited_all, weights, sources, counts[0], top_k, min_weight)
    return Attribution(answer, list(sources), sentences, whole, len(masks), len(scored), seconds,
                       float(table[0].sum()), model)


def scores_of(result: Attribution, min_weight: float = MIN_WEIGHT) -> tuple[float, float, int, int]:
    """``(precision, recall, citations, driven)``: the share of citations the attribution supports; the share
    of driven sentences (their top document reaches ``min_weight``) whose top document is cited."""
    citations = sum(len(s.cited) for s in result.sentences)
    supported = sum(len(s.cited) - len(s.unsupported_citations) for s in result.sentences)
    driven = [s for s in result.sentences if s.top and s.doc_weights[s.top[0].doc] >= min_weight]
    recalled = sum(1 for s in driven if s.top[0].doc in s.cited)
    precision = supported / citations if citations else 0.0
    recall = recalled / len(driven) if driven else 1.0
    return precision, recall, citations, len(driven)


async def check_attribution(
    answer: str, documents: Sequence[Chunk], scorer: PromptScorer | None, *, question: str = "",
    threshold: float = DEFAULT_THRESHOLD, severity: Severity = "fail", name: str = "attribution",
    abstention: AbstentionPolicy = "fail", ablations: int = DEFAULT_ABLATIONS, unit: SourceUnit = "chunk",
    seed: int = 0, scorer_error: str | None = None,
) -> CheckResult:
    """The ``attribution`` check (see the module docstring); a scorer that fails gives an error result."""
    if is_abstention(answer):
        return abstained_result(name, "attribution", threshold=threshold, severity=severity, policy=abstention)
    if scorer is None:
        return error_result(name, "attribution", ModelError(scorer_error or "no prompt scorer"),
                            threshold=threshold, severity=severity)
    try:
        result = await attribute(answer, documents, scorer=scorer, question=question, ablations=ablations,
                                 unit=unit, seed=seed)
    except (ModelError, ValueError) as exc:
        return error_result(name, "attribution", exc, threshold=threshold, severity=severity,
                            judge=getattr(scorer, "name", ""))
    precision, recall, citations, driven = scores_of(result)
    score = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    problems = []
    for s in result.sentences:
        for d in s.unsupported_citations:
            problems.append(f"[DOC {d}] is cited for {_quote(s.text)} but the attribution gives it weight "
                            f"{s.doc_weights.get(d, 0.0):.2f}")
        for d in s.uncited_sources:
            problems.append(f"[DOC {d}] drove {_quote(s.text)} (weight {s.doc_weights[d]:.2f}) but is not cited")
    passed = score >= threshold
    if not citations:
        reason = "the answer cites no document; the attribution says what drove it: " + ", ".join(
            f"[DOC {w.doc}] ({w.weight:.2f})" for w in result.whole.top) if result.whole.top else \
            "the answer cites no document, and no source drove it"
        passed = False
    elif problems:
        reason = f"attribution F1 {score:.2f} (precision {precision:.2f}, recall {recall:.2f}): " + "; ".join(problems)
    else:
        reason = f"every citation is supported by the attribution (F1 {score:.2f})"
    details = {**result.as_dict(), "precision": round(precision, 4), "recall": round(recall, 4),
               "citations": citations, "driven_sentences": driven, "unit": unit}
    return CheckResult(name=name, kind="attribution", score=round(score, 4), passed=passed, threshold=threshold,
                       reason=reason, details=details, severity=severity)


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class AttributionOptions(CheckOptions):
    """Options of the ``attribution`` check kind."""

    ablations: int = Field(DEFAULT_ABLATIONS, ge=2, le=256)
    """Random ablations of the documents scored (each one more prompt to score)."""
    source_unit: SourceUnit = "chunk"
    """Ablate whole ``[DOC n]`` chunks, or each of their sentences."""


@register_check("attribution", options=AttributionOptions, default_threshold=DEFAULT_THRESHOLD,
                reads=("question", "answer", "documents"))
async def _attribution(call: CheckCall, options: AttributionOptions) -> CheckResult:
    """ContextCite: which documents caused each sentence, from the prompt log-probabilities of the
    check's model, read beside the answer's citations."""
    scorer, problem = call.scorer, None
    if scorer is None:
        try:
            scorer = RouterScorer(call.judge.models, call.judge.alias)
        except ModelError as exc:
            problem = str(exc)
    return await check_attribution(
        call.answer, call.documents, scorer, question=call.question, threshold=call.threshold,
        severity=call.severity, name=call.name, abstention=call.abstention,
        ablations=options.ablations, unit=options.source_unit, scorer_error=problem)
