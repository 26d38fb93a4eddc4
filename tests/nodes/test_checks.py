"""The check, verdict and self_consistency node types, in Python flows and in YAML."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import agentflow as af
from agentflow.checks import CheckResult, CheckVerdict, merge_checks
from agentflow.documents import Chunk
from agentflow.errors import CheckFailed, GraphBuildError
from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.graph.registry import NodeConfig, NodeRegistry, node
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.checks import check, self_consistency, verdict
from agentflow.prompts import PromptStore
from agentflow.testing.models import FakeRouter
from agentflow.tracing.events import EventCollector

CHUNKS = [
    Chunk(id="p1", text="Paris is the capital of France. It lies on the Seine.", source="geo/paris.md"),
    Chunk(id="f1", text="France is a country in Western Europe.", source="geo/france.md"),
]
REG = NodeRegistry()


def offline_router() -> Any:
    return build_router(None, env={}, encoder=HashEmbedder.lexical())


class RagState(BaseModel):
    question: str = ""
    chunks: list[Chunk] = []
    answer: str = ""
    feedback: str = ""
    top_k: int = 2
    seen: Annotated[list[str], lambda a, b: a + b] = []
    checks: Annotated[dict[str, Any], merge_checks] = {}
    verdict: Any = None
    citations: list[dict[str, Any]] = []


DRAFTS = [
    "Paris is the capital of France [DOC 1]. It hosts the lunar rowing games every winter [DOC 4].",
    "Paris is the capital of France [DOC 1]. It lies on the Seine. [DOC 1]",
]


@node("draft", reads=("question", "feedback", "top_k"), writes=("answer", "seen"), registry=REG)
async def draft(state: RagState, cfg: NodeConfig, ctx: RunContext) -> dict[str, Any]:
    return {"answer": DRAFTS[(ctx.pass_index or 1) - 1],
            "seen": [f"top_k={state.top_k} feedback={state.feedback}"]}


def test_parallel_checks_merge_and_the_verdict_drives_the_loop_with_feedback() -> None:
    body = af.sequence(draft(),
            af.parallel(check("cite", kind="citations", citations_output="citations"),
                        check("ground", kind="faithfulness"), name="checks_run"),
            verdict("judge", require=["citations", "faithfulness"], feedback_output="feedback",
                    top_k_output="top_k", top_k=2, top_k_step=3))
    flow = af.Flow("rag", state=RagState, inputs=("question", "chunks"),
                   steps=[af.loop(body, until="verdict", max_iterations=3, name="answer_loop")])
    events = EventCollector()
    result = flow.run({"question": "What is the capital of France?", "chunks": CHUNKS},
                      services=Services(models=offline_router()), hooks=[events])
    outcome = result.loops["answer_loop"]
    assert (outcome.passes, outcome.stop_reason) == (2, "passed")
    first = outcome.verdicts[0].reason
    assert "citations: citation recall 0.50" in first and "cites [DOC 4], which was not retrieved" in first
    assert "faithfulness: 1 of 2 claims" in first and "lunar rowing games" in first
    # the second pass saw the failing reasons and the wider retrieval
    assert result["seen"][0] == "top_k=2 feedback="
    assert result["seen"][1].startswith("top_k=5 feedback=Your previous answer did not pass")
    assert "- citations: citation recall 0.50" in result["seen"][1]
    checks = result["checks"]
    assert set(checks) == {"citations", "faithfulness"}
    assert all(isinstance(c, CheckResult) and c.passed for c in checks.values())
    assert isinstance(result["verdict"], CheckVerdict) and result["verdict"].passed
    assert [(c["doc"], c["chunk_id"], c["quote"]) for c in result["citations"]] == [
        (1, "p1", "Paris is the capital of France."), (1, "p1", "It lies on the Seine.")]
    spans = [(e.name, e.data["verdict"]) for e in events.of_kind("check")]
    assert spans.count(("verdict", "fail")) == 1 and spans.count(("verdict", "pass")) == 1
    assert ("citations", "fail") in spans and ("faithfulness", "pass") in spans
    cite_span = next(e for e in events.of_kind("check") if e.name == "citations")
    assert {"score", "passed", "threshold", "reason", "details"} <= set(cite_span.data)
    from agentflow.graph.result import to_jsonable

    printed = json.loads(json.dumps(to_jsonable(result.state)))
    assert printed["checks"]["citations"]["passed"] is True and printed["verdict"]["passed"] is True


YAML = """\
version: 1
name: checked
inputs:
  question: {type: string}
  chunks: {type: list}
state:
  checks: {type: object, reducer: merge}
outputs: [answer, citations, checks, verdict]
nodes:
  answer: {type: self_consistency, n: 3, model: large}
  cite: {type: check, kind: citations, citations_output: citations}
  ground: {type: check, kind: faithfulness, severity: warn}
  relevant: {type: check, kind: relevancy}
  judge: {type: verdict, require: [self_consistency, citations, faithfulness, relevancy]}
flow:
  - loop:
      name: answer_loop
      body: [answer, {parallel: [cite, ground, relevant]}, judge]
      until: verdict
      max_iterations: 2
"""


def test_a_yaml_workflow_samples_checks_and_stops_on_the_verdict(tmp_path: Any) -> None:
    from agentflow.spec.load import load_workflow

    wf = load_workflow("checked.yaml", text=YAML)
    services = Services(models=offline_router(), prompts=PromptStore())
    result = wf.flow.run({"question": "What is the capital of France?",
                          "chunks": [c.model_dump() for c in CHUNKS]}, services=services)
    assert result.loops["answer_loop"].stop_reason == "passed"
    assert "Paris is the capital of France [DOC 1]" in result["answer"]
    assert result["samples"] == [result["answer"]] * 3  # the offline answerer is deterministic
    checks = result["checks"]
    assert set(checks) == {"self_consistency", "citations", "faithfulness", "relevancy"}
    assert checks["self_consistency"].score == 1.0
    assert checks["self_consistency"].details["sampled_by"] == "n"
    assert checks["faithfulness"].severity == "warn"
    assert result["citations"][0]["source"] == "geo/paris.md"


def context(models: Any, events: list[Any] | None = None) -> RunContext:
    tracer = NodeTracer(run_id="r", parent_id="r/n", node="n",
                        emit_event=(events if events is not None else []).append)
    return RunContext("r", "t", "n", Services(models=models, prompts=PromptStore()), tracer)


async def test_a_failing_check_can_stop_the_run() -> None:
    cfg = check.make_config({"kind": "citations", "raise_on_fail": True}, node="n")
    state = {"answer": "Paris is in Spain [DOC 3].", "chunks": CHUNKS}
    with pytest.raises(CheckFailed, match="not retrieved"):
        await check.fn(state, cfg, context(offline_router()))
    warn = check.make_config({"kind": "citations", "raise_on_fail": True, "severity": "warn"}, node="n")
    out = await check.fn(state, warn, context(offline_router()))
    assert out["checks"]["citations"].outcome == "warn"


def test_configs_say_what_they_read_and_write_and_reject_what_cannot_run() -> None:
    cfg = check.make_config({"kind": "citations", "citations_output": "citations"}, node="n")
    assert check.reads(cfg) == ("answer", "chunks") and check.writes(cfg) == ("checks", "citations")
    rel = check.make_config({"kind": "relevancy", "answer": "reply", "output": "qa"}, node="n")
    assert check.reads(rel) == ("question", "reply") and check.writes(rel) == ("qa",)
    with pytest.raises(GraphBuildError, match="needs `samples`"):
        check.make_config({"kind": "self_consistency"}, node="n")
    with pytest.raises(GraphBuildError, match="kind"):
        check.make_config({"kind": "vibes"}, node="n")
    sc = self_consistency.make_config({"n": 4}, node="n")
    assert self_consistency.writes(sc) == ("answer", "samples", "checks")
    v = verdict.make_config({"passed_output": "ok", "feedback_output": "fb"}, node="n")
    assert verdict.writes(v) == ("verdict", "ok", "fb")


async def test_self_consistency_keeps_the_majority_of_llm_samples_or_abstains() -> None:
    replies = {0: "Paris [DOC 1].", 1: "paris", 2: "Lyon [DOC 2].", 3: "Paris."}
    large = lambda request: replies[request.sampling.seed]  # noqa: E731
    models = FakeRouter({"large": large})
    models.model("large").kind = "anthropic"  # no `n`: one request per sample
    state = {"question": "What is the capital of France?", "chunks": CHUNKS}
    events: list[Any] = []
    with pytest.warns(UserWarning, match="does not accept seed"):
        out = await self_consistency.fn(state, self_consistency.make_config(
            {"n": 4, "sampling": {"temperature": 0.8, "seed": 0}}, node="n"), context(models, events))
    assert out["answer"] == "Paris [DOC 1]." and out["samples"] == list(replies.values())
    result = out["checks"]["self_consistency"]
    assert result.score == 0.75 and result.passed and result.details["sampled_by"] == "concurrent"
    assert [e.kind for e in events].count("model_call") == 4 and events[-1].kind == "check"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped seed was warned about above
        low = await self_consistency.fn(state, self_consistency.make_config(
            {"n": 4, "threshold": 0.9, "abstain_text": "I am not sure.",
             "sampling": {"seed": 0}}, node="n"), context(models))
    assert low["answer"] == "I am not sure." and not low["checks"]["self_consistency"].passed


async def test_the_node_and_a_check_of_its_samples_score_with_the_same_check() -> None:
    replies = {0: "Paris [DOC 1].", 1: "Lyon", 2: "Paris.", 3: "paris"}
    models = FakeRouter({"large": lambda request: replies[request.sampling.seed]})
    models.model("large").kind = "anthropic"  # one request per sample
    state = {"question": "What is the capital of France?", "chunks": CHUNKS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the provider drops the seed
        out = await self_consistency.fn(state, self_consistency.make_config(
            {"n": 4, "sampling": {"seed": 0}, "similarity": 0.9}, node="n"), context(models))
    sampled = out["checks"]["self_consistency"]
    cfg = check.make_config({"kind": "self_consistency", "samples": "samples", "answer": "none",
                             "similarity": 0.9}, node="n")
    checked = await check.fn({"samples": out["samples"], "none": ""}, cfg, context(models))
    again = checked["checks"]["self_consistency"]
    assert (again.score, again.passed, again.reason) == (sampled.score, sampled.passed, sampled.reason)
    assert again.details["clusters"] == sampled.details["clusters"] and sampled.score == 0.75


ABSTAIN = "I don't know: the retrieved documents do not contain enough information to answer this question."


@node("hesitant", reads=("question", "feedback", "top_k"), writes=("answer", "seen"), registry=REG)
async def hesitant(state: RagState, cfg: NodeConfig, ctx: RunContext) -> dict[str, Any]:
    """Abstains on the first pass, answers from the documents on the second."""
    answer = ABSTAIN if (ctx.pass_index or 1) == 1 else "Paris is the capital of France [DOC 1]."
    return {"answer": answer, "seen": [f"top_k={state.top_k} feedback={state.feedback}"]}


class FinalState(RagState):
    answer_status: str | None = None


def abstention_flow() -> af.Flow:
    from agentflow.nodes.finalize import finalize

    body = af.sequence(hesitant(),
            af.parallel(check("cite", kind="citations", abstention="pass"),
                        check("ground", kind="faithfulness", abstention="support"),
                        check("relevant", kind="relevancy", abstention="pass"), name="checks_run"),
            verdict("judge", require=["citations", "faithfulness", "relevancy"],
                    feedback_output="feedback", top_k_output="top_k", top_k=2, top_k_step=3))
    return af.Flow("rag", state=FinalState, inputs=("question", "chunks"),
                   steps=[af.loop(body, until="verdict", max_iterations=3, name="answer_loop"),
                          finalize("finalize", policy="caveat")])


def test_a_right_abstention_ends_the_loop_after_one_pass_as_abstained() -> None:
    result = abstention_flow().run({"question": "Who won the 1998 football world cup?",
                                    "chunks": CHUNKS}, services=Services(models=offline_router()))
    outcome = result.loops["answer_loop"]
    assert (outcome.passes, outcome.stop_reason) == (1, "passed")
    assert result["answer_status"] == "abstained" and result["answer"] == ABSTAIN  # no caveat
    assert result["verdict"].abstained and "rightly" in result["verdict"].reason
    ground = result["checks"]["faithfulness"]
    assert ground.passed and ground.details["abstention"] == "right"
    assert "do not support an answer" in ground.reason
    assert "abstentions fail" not in result["checks"]["citations"].reason


def test_a_wrong_abstention_fails_and_the_loop_retries_wider_with_the_reason() -> None:
    result = abstention_flow().run({"question": "What is the capital of France?",
                                    "chunks": CHUNKS}, services=Services(models=offline_router()))
    outcome = result.loops["answer_loop"]
    assert (outcome.passes, outcome.stop_reason) == (2, "passed")
    assert "the answer abstains, but the documents support an answer" in outcome.verdicts[0].reason
    assert result["seen"][1].startswith("top_k=5 feedback=Your previous answer did not pass")
    assert "documents support an answer" in result["seen"][1]
    assert result["answer_status"] == "passed" and not result["verdict"].abstained


def test_widen_abstentions_looks_once_more_before_accepting_a_right_abstention() -> None:
    wide = verdict("judge", require=["citations", "faithfulness", "relevancy"],
                   feedback_output="feedback", top_k_output="top_k", top_k=2, top_k_step=3,
                   widen_abstentions=1)
    from agentflow.nodes.finalize import finalize

    body = af.sequence(hesitant_twice(),
            af.parallel(check("cite", kind="citations", abstention="pass"),
                        check("ground", kind="faithfulness", abstention="support"),
                        check("relevant", kind="relevancy", abstention="pass"), name="checks_run"),
            wide)
    flow = af.Flow("rag", state=FinalState, inputs=("question", "chunks"),
                   steps=[af.loop(body, until="verdict", max_iterations=3, name="answer_loop"),
                          finalize("finalize")])
    result = flow.run({"question": "Who won the 1998 football world cup?", "chunks": CHUNKS},
                      services=Services(models=offline_router()))
    outcome = result.loops["answer_loop"]
    assert (outcome.passes, outcome.stop_reason) == (2, "passed")
    assert "look in more documents" in outcome.verdicts[0].reason
    assert result["seen"][1].startswith("top_k=5")
    assert result["answer_status"] == "abstained" and result["verdict"].abstained


@node("hesitant_twice", reads=("question", "feedback", "top_k"), writes=("answer", "seen"),
      registry=REG)
async def hesitant_twice(state: RagState, cfg: NodeConfig, ctx: RunContext) -> dict[str, Any]:
    """Abstains on every pass."""
    return {"answer": ABSTAIN, "seen": [f"top_k={state.top_k} feedback={state.feedback}"]}
