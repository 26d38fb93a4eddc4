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
``self_consistency`` draws ``n`` answers with ``generate``'s answer step (the same augmented
prompt), keeps the majority (short answers) or medoid (long ones), and records the agreement as
the registered ``self_consistency`` check, the one a ``check`` node of that kind runs over a
``samples`` field (which ``generate`` writes with ``sampling.n`` and ``samples_output``).
Every check leaves a ``check`` span in the trace with its score, verdict, threshold and reason.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue

from agentflow.checks import (
    CheckCall,
    CheckOptions,
    ConsistencyOptions,
    Judge,
    RegisteredCheck,
    Severity,
    check_kinds,
    combine,
    record_check,
    run_call,
    run_check,
)
from agentflow.checks.consistency import DEFAULT_THRESHOLD as CONSISTENCY_THRESHOLD
from agentflow.checks.result import AbstentionPolicy, CheckResult, CheckVerdict
from agentflow.documents import chunks_of
from agentflow.errors import CheckFailed, ConfigError, ModelError
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.sampling import Sampling
from agentflow.nodes.generate import GenerateConfig, answer_step, new_turn
from agentflow.nodes.llm import read_state


class CheckConfig(NodeConfig):
    """Config of the ``check`` node: the fields below, plus the fields of its kind (a registered
    check kind's options: ``citations_output``, ``relevancy_questions``, ``similarity``, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    kind: str
    """Which check: a registered check kind (the kinds and their own fields are listed below)."""
    name: str | None = None
    """Key of the result in ``output`` and name of its trace span; the kind by default."""
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Score needed to pass; by default the kind's own (its default threshold)."""
    severity: Severity = "fail"
    """fail: a failed check fails the verdict; warn: it is reported as a warning only."""
    model: str = "judge"
    """The judge's model alias (an LLM, or the offline support judge); attribution scores prompts
    with its log-probabilities."""
    embed_model: str = "embed"
    """Embedding alias (relevancy; self_consistency on long answers)."""
    question: str = "question"
    """State field holding the user's question."""
    answer: str = "answer"
    """State field holding the answer to check."""
    documents: str | None = "chunks"
    """State field holding the retrieved chunks, in ``[DOC n]`` order."""
    samples: str | None = None
    """State field holding sampled answers (a list of strings), for kinds that read them
    (self_consistency)."""
    output: str = "checks"
    """State field (a dict, merged) that receives ``{name: result}``."""
    abstention: AbstentionPolicy = "fail"
    """What an answer that abstains gets: fail (a loop retries), pass, or support: the judge
    decides whether the documents support an answer (they do not: a right abstention, which
    passes and makes the verdict ``abstained``; they do: a wrong one, which fails)."""
    claim_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Offline judge: support score a claim sentence needs (its default 0.6)."""
    raise_on_fail: bool = False
    """Stop the run with CheckFailed when the check fails with severity fail."""

    _options: CheckOptions = PrivateAttr()

    @model_validator(mode="after")
    def _kind_and_options(self) -> CheckConfig:
        try:
            spec = check_kinds.get(self.kind)
            self._options = spec.make_options(self.__pydantic_extra__)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if "samples" in spec.reads and not self.samples:
            raise ValueError(f"kind {self.kind} needs `samples`: the state field with the "
                             "sampled answers (or use the self_consistency node type)")
        return self

    @property
    def spec(self) -> RegisteredCheck[Any]:
        """The registered check kind."""
        return check_kinds.get(self.kind)

    @property
    def options(self) -> CheckOptions:
        """The kind's own fields, validated by its options model."""
        return self._options

    @property
    def judges_abstention(self) -> bool:
        """Whether an answer that abstains is judged (policy ``support``, a kind that allows it)."""
        return self.abstention == "support" and self.spec.judges_abstention

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The node's schema with the registered kinds: ``kind`` is one of them, each kind's own
        fields are properties (for editors), and ``x-kinds`` says which fields are whose (for
        the YAML reference)."""
        schema = handler(core)
        target = handler.resolve_ref_schema(schema)
        props = target.setdefault("properties", {})
        kinds = sorted(check_kinds, key=lambda k: k.name)
        props["kind"] = {**props.get("kind", {}), "enum": [k.name for k in kinds]}
        described: dict[str, Any] = {}
        for kind in kinds:
            own = handler.resolve_ref_schema(handler(kind.options.__pydantic_core_schema__))
            fields = own.get("properties", {})
            for field_name, prop in fields.items():
                props.setdefault(field_name, prop)  # a field two kinds share: the first one's
            described[kind.name] = {
                "description": kind.description, "default_threshold": kind.threshold_text(),
                "reads": list(kind.reads), "properties": fields,
                "required": own.get("required", [])}
        target["additionalProperties"] = False
        target["x-kinds"] = {"field": "kind", "kinds": described}
        return schema


def _input_fields(cfg: CheckConfig) -> dict[str, str | None]:
    """The state field each check input comes from."""
    return {"question": cfg.question, "answer": cfg.answer, "documents": cfg.documents,
            "samples": cfg.samples}


def _inputs(cfg: CheckConfig) -> tuple[str, ...]:
    """The inputs this node's check reads (an abstention judged by support reads the question
    and the documents too)."""
    if cfg.judges_abstention:
        return ("question", "answer", "documents")
    return cfg.spec.reads


def _check_reads(cfg: CheckConfig) -> tuple[str, ...]:
    fields = _input_fields(cfg)
    return tuple(dict.fromkeys(f for f in (fields[i] for i in _inputs(cfg)) if f))


def _check_writes(cfg: CheckConfig) -> tuple[str, ...]:
    return (cfg.output, *cfg.spec.writes(cfg.options))


def _text(state: Any, field: str | None, node_name: str) -> str:
    if not field:
        return ""
    value = read_state(state, field, node_name)
    return "" if value is None else str(value)


def _samples(state: Any, cfg: CheckConfig, node_name: str) -> list[str] | None:
    if "samples" not in _inputs(cfg) or not cfg.samples:
        return None
    samples = [str(s) for s in (read_state(state, cfg.samples, node_name) or [])]
    if not samples:
        raise ConfigError(f"node {node_name!r}: the samples field {cfg.samples!r} is empty; "
                          "a node before it must write the sampled answers")
    return samples


@node("check", reads=_check_reads, writes=_check_writes)
async def check(state: Any, cfg: CheckConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Run one hallucination or quality check and write its result into the checks field."""
    started = time.time()
    judge = Judge(ctx.models, cfg.model, embed_alias=cfg.embed_model, tracer=ctx.tracer,
                  node=ctx.node, claim_threshold=cfg.claim_threshold)
    inputs = _inputs(cfg)
    documents = (chunks_of(read_state(state, cfg.documents, ctx.node), ctx.node)
                 if cfg.documents and "documents" in inputs else [])
    call = CheckCall(
        kind=cfg.kind, name=cfg.name or cfg.kind, judge=judge, severity=cfg.severity,
        threshold=cfg.threshold if cfg.threshold is not None else cfg.spec.threshold_for(judge),
        abstention=cfg.abstention, documents=documents, samples=_samples(state, cfg, ctx.node),
        answer=_text(state, cfg.answer, ctx.node) if "answer" in inputs else "",
        question=_text(state, cfg.question, ctx.node) if "question" in inputs else "")
    result = await run_call(call, cfg.options)
    record_check(ctx.tracer, result, started)
    if cfg.raise_on_fail:
        result.raise_for_failure()
    out: dict[str, Any] = {cfg.output: {result.name: result}}
    for option, make in cfg.spec.outputs.items():
        target = getattr(cfg.options, option)
        if target:
            out[target] = make(result, call)
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
async def verdict(state: Any, cfg: VerdictConfig, ctx: RunContext[Any]) -> dict[str, Any]:
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


class SelfConsistencyConfig(ConsistencyOptions, GenerateConfig):
    """Config of the ``self_consistency`` node: ``generate``'s fields, plus the sampling and the
    agreement check (with the ``self_consistency`` check kind's own fields)."""

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
async def self_consistency(state: Any, cfg: SelfConsistencyConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Sample n answers, keep the majority (or medoid) answer, and check their agreement."""
    started = time.time()
    drawn = await answer_step(state, cfg, ctx, n=cfg.n, max_concurrency=cfg.max_concurrency)
    usable = [a for a in drawn.answers if a.strip()]
    if not usable:
        raise ModelError(f"node {ctx.node!r}: none of the {cfg.n} samples of model alias "
                         f"{cfg.model!r} has an answer outside its scratchpad")
    judge = Judge(ctx.models, cfg.model, embed_alias=cfg.embed_model, tracer=ctx.tracer,
                  node=ctx.node)
    result = await run_check(
        "self_consistency", judge=judge, samples=usable, threshold=cfg.threshold,
        severity=cfg.severity, name=cfg.name,
        options=ConsistencyOptions.model_validate(
            cfg.model_dump(include=set(ConsistencyOptions.model_fields))))
    result = result.model_copy(update={"details": {**result.details, "sampled_by": drawn.sampled_by}})
    record_check(ctx.tracer, result, started)
    chosen = _chosen(result, usable)
    if not result.passed and result.error is None and cfg.abstain_text is not None:
        chosen = cfg.abstain_text
    out: dict[str, Any] = {cfg.output: chosen}
    if cfg.samples_output:
        out[cfg.samples_output] = drawn.answers
    if cfg.checks:
        out[cfg.checks] = {result.name: result}
    if cfg.history_output:
        out[cfg.history_output] = new_turn(drawn.query, chosen)
    return out


def _chosen(result: CheckResult, samples: list[str]) -> str:
    index = result.details.get("chosen")
    return samples[index] if isinstance(index, int) and 0 <= index < len(samples) else samples[0]


__all__ = ["CheckConfig", "SelfConsistencyConfig", "VerdictConfig", "check", "self_consistency",
           "verdict"]
