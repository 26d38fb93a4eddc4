"""Training examples from recorded runs: checks passed, and where feedback exists a thumbs up; the prompt is the
answering node's last recorded model call, the completion the run's answer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentflow as af
from agentflow.graph.registry import NodeRegistry
from agentflow.tracing import SQLiteTraceStore
from agentflow.tracing.feedback import record_feedback
from agentflow.tune.base import TuneError
from agentflow.tune.traces import TraceFilter, run_passed, trace_examples

REG = NodeRegistry()
SYSTEM = "You answer with [DOC n] citations."


class State(BaseModel):
    question: str
    answer: str = ""
    verdict: dict[str, Any] = {}


@af.node("scripted_answer", reads=("question",), writes=("answer",), registry=REG)
async def answer(state: State, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    reply = f"About {state.question.rstrip('?')} [DOC 1]."
    ctx.tracer.record("model_call", "large", started=time.time(), data={
        "alias": "large", "model": "scripted", "response": reply,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": f"[DOC 1] a passage\n\nQuestion: {state.question}"}]})
    return {"answer": reply}


@af.node("scripted_verdict", reads=("answer",), writes=("verdict",), registry=REG)
async def verdict(state: State, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    return {"verdict": {"passed": "bad" not in state.question}}


def flow(name: str = "qa") -> af.Flow:
    return af.Flow(name, state=State, inputs=("question",), steps=[answer("answer"), verdict("verdict")])


@pytest.fixture()
def store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "traces.db"
    sink = SQLiteTraceStore(path)

    async def record() -> dict[str, str]:
        ids = {}
        for key, question, name, tags in [
            ("plain", "loops?", "qa", {"origin": "serve"}),
            ("liked", "maps?", "qa", {"origin": "serve"}),
            ("disliked", "routes?", "qa", {"origin": "serve"}),
            ("failed_checks", "bad routes?", "qa", {"origin": "serve"}),
            ("from_eval", "checks?", "qa", {"origin": "eval"}),
            ("other_workflow", "tags?", "other", {"origin": "serve"}),
        ]:
            ids[key] = (await flow(name).arun({"question": question}, hooks=[sink], tags=tags)).run_id
        return ids

    ids = asyncio.run(record())
    sink.close()
    record_feedback(path, ids["liked"], score="up")
    record_feedback(path, ids["disliked"], score="up")
    record_feedback(path, ids["disliked"], score="down", comment="wrong page")
    record_feedback(path, ids["disliked"], score="down")
    record_feedback(path, ids["failed_checks"], score="up")  # liked, but its checks failed: still left out
    return path, ids


def test_runs_that_passed_their_checks_and_were_not_disliked_become_chat_examples(store) -> None:  # type: ignore[no-untyped-def]
    path, ids = store
    picked = trace_examples(path, TraceFilter(workflow="qa"))
    assert sorted(e.id for e in picked.examples) == sorted([ids["plain"], ids["liked"], ids["from_eval"]])
    assert picked.considered == 5
    assert picked.left_out == {"feedback": 1, "checks did not pass": 1}
    example = next(e for e in picked.examples if e.id == ids["liked"])
    assert example.prompt == ({"role": "system", "content": SYSTEM},
                              {"role": "user", "content": "[DOC 1] a passage\n\nQuestion: maps?"})
    assert example.completion == "About maps [DOC 1]."


def test_filters_by_tag_and_required_thumbs_up(store) -> None:  # type: ignore[no-untyped-def]
    path, ids = store
    served = trace_examples(path, TraceFilter(tag="origin=serve"))
    assert sorted(e.id for e in served.examples) == sorted([ids["plain"], ids["liked"], ids["other_workflow"]])
    liked = trace_examples(path, TraceFilter(tag="origin=serve", require_feedback=True))
    assert [e.id for e in liked.examples] == [ids["liked"]]


def test_a_missing_store_or_node_says_so(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, _ = store
    with pytest.raises(TuneError, match="no trace store"):
        trace_examples(tmp_path / "none.db", TraceFilter())
    picked = trace_examples(path, TraceFilter(node="generate"))
    assert picked.examples == [] and picked.left_out["no model call of node 'generate'"] == 4


def test_what_counts_as_passed() -> None:
    assert run_passed({"verdict": {"passed": True}, "answer_status": "caveat"})
    assert not run_passed({"verdict": {"passed": False}})
    assert run_passed({"answer_status": "abstained"})
    assert not run_passed({"answer_status": "caveat"})
    assert run_passed({"checks": {"a": {"passed": True}}})
    assert not run_passed({"answer": "x"})
