"""Node types of the hallucination checks: ``check``, ``verdict`` and ``self_consistency``.

.. code-block:: yaml

    state:
      checks: {type: object, reducer: merge}     # parallel check nodes merge their results
    nodes:
      answer: {type: self_consistency, n: 5, output: answer, samples_output: samples}
      cite:   {type: check, kind: citations, citations_output: citations}
      ground: {type: check, kind: faithfulness, threshold: 0.8}
      judge:  {type: verdict, require: [citations, faithfulness, self_consistency],
               feedback_output: feedback, top_k_output: top_k}
    flow:
      - loop:
          body: [answer, {parallel: [cite, ground]}, judge]
          until: verdict
          max_iterations: 3

``check`` runs one check and writes ``{name: CheckResult}`` into ``output`` (default ``checks``;
give it the ``merge`` reducer, or :func:`~agentflow.checks.merge_checks` in Python, so that
parallel checks keep each other's results). ``verdict`` combines the results into a
:class:`~agentflow.checks.CheckVerdict` (``passed``, ``reason``), the field a loop's ``until``
names, and can write the failing reasons as instructions for the next pass and a wider ``top_k``.
``self_consistency`` samples ``n`` answers with the augmented prompt of ``generate``, keeps the
majority (short answers) or medoid (long ones), and records the agreement as a check.
Every check leaves a ``check`` span in the trace with its score, verdict, threshold and reason.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from agentflow.checks import (
    CheckKind,
    Judge,
    Severity,
    combine,
    record_check,
    run_check,
    sample_answers,
)
from agentflow.checks.citations import resolve_citations
from agentflow.checks.consistency import DEFAULT_THRESHOLD as CONSISTENCY_THRESHOLD
from agentflow.checks.consistency import self_consistency as consistency_check
from agentflow.checks.result import AbstentionPolicy, CheckResult, CheckVerdict
from agentflow.documents import chunks_of
from agentflow.errors import CheckFailed, ConfigError, ModelError
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.sampling import Sampling
from agentflow.nodes.generate import GenerateConfig, answer_constraint, instructions_of
from agentflow.nodes.llm import read_state
from agentflow.prompts.augmented import AugmentedPrompt, assemble
from agentflow.prompts.examples import select_examples
from agentflow.prompts.messages import split_reasoning


class CheckConfig(NodeConfig):
    """Config of the ``check`` node."""

    kind: CheckKind
    """Which check: citations, faithfulness, relevancy, self_consistency or attribution (ContextCite: which
    documents caused each sentence, from the prompt log-probabilities of ``model``, beside its citations)."""
    name: str | None = None
    """Key of the result in ``output`` and name of its trace span; the kind by default."""
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Score needed to pass; by default citations 0.75 (F1 of ALCE recall and precision),
    faithfulness 0.8, relevancy 0.7 (offline variant 0.3), self_consistency 0.6."""
    severity: Severity = "fail"
    """fail: a failed check fails the verdict; warn: it is reported as a warning only."""
    model: str = "judge"
    """The judge's model alias (an LLM, or the offline support judge)."""
    embed_model: str = "embed"
    """Embedding alias (relevancy; self_consistency on long answers)."""
    question: str = "question"
    """State field holding the user's question."""
    answer: str = "answer"
    """State field holding the answer to check."""
    documents: str | None = "chunks"
    """State field holding the retrieved chunks, in ``[DOC n]`` order."""
    samples: str | None = None
    """self_consistency: state field holding the sampled answers (a list of strings)."""
    output: str = "checks"
    """State field (a dict, merged) that receives ``{name: result}``."""
    citations_output: str | None = None
    """citations: state field that receives the resolved citations
    (``[{doc, source, chunk_id, quote, statement, valid, supported}]``)."""
    abstention: AbstentionPolicy = "fail"
    """What an answer that abstains gets: fail (a loop retries), pass, or support: the judge
    decides whether the documents support an answer (they do not: a right abstention, which
    passes and makes the verdict ``abstained``; they do: a wrong one, which fails)."""
    claim_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Offline judge: support score a claim sentence needs (its default 0.6)."""
    relevancy_questions: int = Field(3, ge=1, le=10)
    """relevancy with an LLM judge: how many questions to generate from the answer."""
    similarity: float = Field(0.85, ge=0.0, le=1.0)
    """self_consistency on long answers: cosine similarity at which samples agree."""
    ablations: int = Field(32, ge=2, le=256)
    """attribution: random ablations of the documents scored (each one more prompt to score)."""
    source_unit: Literal["chunk", "sentence"] = "chunk"
    """attribution: ablate whole ``[DOC n]`` chunks, or each of their sentences."""
    raise_on_fail: bool = False
    """Stop the run with CheckFailed when the check fails with severity fail."""

    @model_validator(mode="after")
    def _needs_samples(self) -> CheckConfig:
        if self.kind == "self_consistency" and not self.samples:
            raise ValueError("kind self_consistency needs `samples`: the state field with the "
                             "sampled answers (or use the self_consistency node type)")
        return self


def _check_reads(cfg: CheckConfig) -> tuple[str, ...]:
    fields: dict[str, tuple[str | None, ...]] = {
        "citations": (cfg.answer, cfg.documents),
        "faithfulness": (cfg.question, cfg.answer, cfg.documents),
        "relevancy": (cfg.question, cfg.answer),
        "self_consistency": (cfg.samples, cfg.answer),
        "attribution": (cfg.question, cfg.answer, cfg.documents),
    }
    if cfg.abstention == "support" and cfg.kind != "self_consistency":
        fields[cfg.kind] = (cfg.question, cfg.answer, cfg.documents)
    return tuple(dict.fromkeys(f for f in fields[cfg.kind] if f))


def _check_writes(cfg: CheckConfig) -> tuple[str, ...]:
    extra = (cfg.citations_output,) if cfg.kind == "citations" and cfg.citations_output else ()
    return (cfg.output, *extra)


def _text(state: Any, field: str | None, node_name: str) -> str:
    if not field:
        return ""
    value = read_state(state, field, node_name)
    return "" if value is None else str(value)


@node("check", reads=_check_reads, writes=_check_writes)
async def check(state: Any, cfg: CheckConfig, ctx: RunContext) -> dict[str, Any]:
    """Run one hallucination or quality check and write its result into the checks field."""
    started = time.time()
    judge = Judge(ctx.models, cfg.model, embed_alias=cfg.embed_model, tracer=ctx.tracer,
                  node=ctx.node, claim_threshold=cfg.claim_threshold)
    judged = cfg.abstention == "support" and cfg.kind != "self_consistency"
    documents = (chunks_of(read_state(state, cfg.documents, ctx.node), ctx.node)
                 if cfg.documents and (judged or cfg.kind in ("citations", "faithfulness", "attribution"))
                 else [])
    samples = None
    if cfg.kind == "self_consistency" and cfg.samples:
        samples = [str(s) for s in (read_state(state, cfg.samples, ctx.node) or [])]
        if not samples:
            raise ConfigError(f"node {ctx.node!r}: the samples field {cfg.samples!r} is empty; "
                              "a node before it must write the sampled answers")
    answer = _text(state, cfg.answer, ctx.node)
    result = await run_check(
        cfg.kind, judge=judge, answer=answer,
        question=_text(state, cfg.question, ctx.node) if judged or cfg.kind != "citations" else "",
        documents=documents, samples=samples, threshold=cfg.threshold, severity=cfg.severity,
        name=cfg.name, abstention=cfg.abstention, relevancy_questions=cfg.relevancy_questions,
        similarity=cfg.similarity, ablations=cfg.ablations, source_unit=cfg.source_unit,
    )
    record_check(ctx.tracer, result, started)
    if cfg.raise_on_fail:
        result.raise_for_failure()
    out: dict[str, Any] = {cfg.output: {result.name: result}}
    if cfg.kind == "citations" and cfg.citations_output:
        out[cfg.citations_output] = result.details.get("citations") or resolve_citations(
            answer, documents)
    return out


class VerdictConfig(NodeConfig):
    """Config of the ``verdict`` node."""

    checks: str = "checks"
    """State field holding the check results (name -> result)."""
    require: list[str] | None = None
    """Check names that must have run and passed; every result in the field when omitted."""
    output: str = "verdict"
    """State field that receives the CheckVerdict (passed, reason, failing, ...): a loop's until."""
    passed_output: str | None = None
    """Optional state field that receives just the boolean."""
    feedback_output: str | None = None
    """Optional state field that receives the failing reasons as instructions for the next
    attempt ("" when the checks passed)."""
    top_k_output: str | None = None
    """Optional state field that receives a wider top_k for the next pass when the checks fail
    (for a retrieve node's ``top_k_from``)."""
    top_k: int = Field(8, ge=1, le=100)
    """The top_k of the first pass."""
    top_k_step: int = Field(8, ge=0, le=100)
    """How much wider each failed pass makes the next retrieval."""
    top_k_max: int = Field(50, ge=1, le=100)
    widen_abstentions: int = Field(0, ge=0, le=10)
    """Passes on which a right abstention (the documents retrieved so far lack the answer) still
    retries with wider retrieval before it is accepted: 0 accepts it at once, ending the loop as
    ``abstained``; 1 looks once more, in twice as many passages, first."""
    raise_on_fail: bool = False
    """Stop the run with CheckFailed when the verdict fails (instead of letting a loop retry)."""


def _verdict_writes(cfg: VerdictConfig) -> tuple[str, ...]:
    extra = (cfg.passed_output, cfg.feedback_output, cfg.top_k_output)
    return (cfg.output, *(f for f in extra if f))


@node("verdict", reads=lambda c: (c.checks,), writes=_verdict_writes)
async def verdict(state: Any, cfg: VerdictConfig, ctx: RunContext) -> dict[str, Any]:
    """Combine the check results into one verdict with the failing reasons."""
    started = time.time()
    results = read_state(state, cfg.checks, ctx.node) or {}
    combined = combine(results, require=cfg.require)
    if combined.abstained and (ctx.pass_index or 1) <= cfg.widen_abstentions:
        combined = _widen(combined)
    ctx.tracer.record("check", "verdict", started=started, data={
        "kind": "verdict", "passed": combined.passed, "verdict": "pass" if combined.passed else "fail",
        "reason": combined.reason, "failing": combined.failing, "warnings": combined.warnings,
        "scores": combined.scores, "abstained": combined.abstained,
    })
    if cfg.raise_on_fail and not combined.passed:
        raise CheckFailed(f"node {ctx.node!r}: the checks did not pass: {combined.reason}")
    out: dict[str, Any] = {cfg.output: combined}
    if cfg.passed_output:
        out[cfg.passed_output] = combined.passed
    if cfg.feedback_output:
        out[cfg.feedback_output] = combined.feedback()
    if cfg.top_k_output and not combined.passed:
        passes = ctx.pass_index or 1
        out[cfg.top_k_output] = min(cfg.top_k + cfg.top_k_step * passes, cfg.top_k_max)
    return out


def _widen(combined: CheckVerdict) -> CheckVerdict:
    """A right abstention held back for one more, wider pass (``widen_abstentions``)."""
    why = "the answer abstains and these documents lack the answer; look in more documents"
    return combined.model_copy(update={
        "passed": False, "abstained": False, "failing": ["abstention"],
        "reasons": {**combined.reasons, "abstention": why}, "reason": f"abstention: {why}"})


class SelfConsistencyConfig(GenerateConfig):
    """Config of the ``self_consistency`` node: ``generate``'s fields, plus the sampling and the
    agreement check."""

    n: int = Field(5, ge=2, le=32)
    """How many answers to sample."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.7))
    samples_output: str | None = "samples"
    """State field that receives every sampled answer."""
    checks: str | None = "checks"
    """State field (a dict, merged) that receives the agreement check ``{name: result}``."""
    name: str = "self_consistency"
    """Key of the check result and name of its trace span."""
    threshold: float = Field(CONSISTENCY_THRESHOLD, ge=0.0, le=1.0)
    """Agreement (share of samples in the largest cluster) needed to pass."""
    severity: Severity = "fail"
    embed_model: str = "embed"
    """Embedding alias for comparing long answers."""
    similarity: float = Field(0.85, ge=0.0, le=1.0)
    short_max_words: int = Field(8, ge=1)
    """Answers of at most this many words are compared by normal form, longer ones by embeddings."""
    abstain_text: str | None = None
    """When set, the answer written below the threshold (otherwise the majority answer)."""
    max_concurrency: int = Field(8, ge=1, le=64)
    """Concurrent requests when the provider cannot return n samples in one."""


def _sc_writes(cfg: SelfConsistencyConfig) -> tuple[str, ...]:
    extra = (cfg.samples_output, cfg.checks, cfg.history_output)
    return (cfg.output, *(f for f in extra if f))


def _sc_reads(cfg: SelfConsistencyConfig) -> tuple[str, ...]:
    return tuple(f for f in (cfg.query, cfg.documents, cfg.history, cfg.instructions_from) if f)


@node("self_consistency", reads=_sc_reads, writes=_sc_writes)
async def self_consistency(state: Any, cfg: SelfConsistencyConfig, ctx: RunContext) -> dict[str, Any]:
    """Sample n answers, keep the majority (or medoid) answer, and check their agreement."""
    started = time.time()
    query = str(read_state(state, cfg.query, ctx.node))
    documents = chunks_of(read_state(state, cfg.documents, ctx.node), ctx.node) if cfg.documents else []
    history = (read_state(state, cfg.history, ctx.node) or []) if cfg.history else []
    examples = await select_examples(cfg.examples, ctx.examples if cfg.few_shot_k else None,
                                     query, cfg.few_shot_k)
    prompt = AugmentedPrompt(query=query, documents=documents, history=history, examples=examples,
                             instructions=instructions_of(state, cfg, ctx.node),
                             chain_of_thought=cfg.chain_of_thought, template=cfg.prompt)
    await ctx.models.ready(cfg.model)  # a node started now counts the prompt's tokens
    messages, inputs, _report = assemble(prompt, ctx.prompts, ctx.models, cfg.model,
                                         cfg.sampling, history_share=cfg.history_share)
    raw, how = await sample_answers(ctx.models, cfg.model, messages, n=cfg.n,
                                    sampling=cfg.sampling, inputs=inputs, tracer=ctx.tracer,
                                    node=ctx.node, max_concurrency=cfg.max_concurrency,
                                    constraint=answer_constraint(cfg, inputs))
    answers = [split_reasoning(text)[0] for text in raw]
    usable = [a for a in answers if a.strip()]
    if not usable:
        raise ModelError(f"node {ctx.node!r}: none of the {cfg.n} samples of model alias "
                         f"{cfg.model!r} has an answer outside its scratchpad")
    judge = Judge(ctx.models, cfg.model, embed_alias=cfg.embed_model, tracer=ctx.tracer,
                  node=ctx.node)
    result = await consistency_check(usable, judge, threshold=cfg.threshold,
                                     severity=cfg.severity, name=cfg.name,
                                     short_max_words=cfg.short_max_words,
                                     similarity=cfg.similarity)
    result = result.model_copy(update={"details": {**result.details, "sampled_by": how}})
    record_check(ctx.tracer, result, started)
    chosen = _chosen(result, usable)
    if not result.passed and result.error is None and cfg.abstain_text is not None:
        chosen = cfg.abstain_text
    out: dict[str, Any] = {cfg.output: chosen}
    if cfg.samples_output:
        out[cfg.samples_output] = answers
    if cfg.checks:
        out[cfg.checks] = {result.name: result}
    if cfg.history_output:
        from langchain_core.messages import AIMessage, HumanMessage  # the history's message types

        out[cfg.history_output] = [HumanMessage(content=query), AIMessage(content=chosen)]
    return out


def _chosen(result: CheckResult, samples: list[str]) -> str:
    index = result.details.get("chosen")
    return samples[index] if isinstance(index, int) and 0 <= index < len(samples) else samples[0]


__all__ = ["CheckConfig", "SelfConsistencyConfig", "VerdictConfig", "check", "self_consistency",
           "verdict"]
