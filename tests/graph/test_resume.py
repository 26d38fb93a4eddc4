"""Durable runs: with LangGraph's SQLite saver, a failed run resumes without redoing finished nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agentflow as af
from agentflow.errors import InputError, NodeError

from .nodes import REG, S

CALLS: dict[str, int] = {}
BROKEN = {"flaky": True}


class Named(af.NodeConfig):
    tag: str = ""


@af.node("counted", reads=(), writes=("log",), registry=REG)
async def counted(state: S, cfg: Named, ctx: af.RunContext) -> dict[str, Any]:
    CALLS[cfg.tag] = CALLS.get(cfg.tag, 0) + 1
    return {"log": [cfg.tag]}


@af.node("flaky", reads=("log",), writes=("answer",), registry=REG)
async def flaky(state: S, cfg: Named, ctx: af.RunContext) -> dict[str, Any]:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if BROKEN["flaky"]:
        raise ConnectionError("provider unavailable")
    return {"answer": "+".join(state.log)}


def _flow() -> af.Flow:
    return af.Flow("durable", state=S, inputs=(), steps=[
        counted("first", tag="first"),
        af.parallel(counted("left", tag="left"), counted("right", tag="right"), name="both"),
        af.loop(counted("again", tag="again"), until=lambda s: s.log.count("again") >= 2,
                max_iterations=3, name="twice"),
        flaky,
        counted("last", tag="last"),
    ])


async def test_a_failed_run_resumes_from_the_failed_node(tmp_path: Path) -> None:
    CALLS.clear()
    BROKEN["flaky"] = True
    db = tmp_path / "checkpoints.db"
    with pytest.raises(NodeError, match="provider unavailable") as info:
        await _flow().arun({}, thread_id="t-1", checkpointer=db)
    assert info.value.node == "flaky"
    assert info.value.result.state["log"][:1] == ["first"]  # the partial state, from the checkpoint
    assert CALLS == {"first": 1, "left": 1, "right": 1, "again": 2, "flaky": 1}

    BROKEN["flaky"] = False
    result = await _flow().arun(thread_id="t-1", checkpointer=db, resume=True)
    assert CALLS == {"first": 1, "left": 1, "right": 1, "again": 2, "flaky": 2, "last": 1}
    assert result["answer"] == "first+left+right+again+again"
    assert result["log"][-1] == "last"


async def test_resume_needs_a_checkpoint_to_resume_from(tmp_path: Path) -> None:
    from agentflow.tracing.events import EventCollector

    collector = EventCollector()
    with pytest.raises(InputError, match="nothing to resume: no checkpoint for thread 'nope'"):
        await _flow().arun(thread_id="nope", checkpointer=tmp_path / "c.db", resume=True,
                           hooks=[collector])
    (finished,) = collector.of_kind("run_finished")  # the trace says it failed, and why
    assert finished.status == "error" and "nothing to resume" in (finished.error or "")
    with pytest.raises(InputError, match="resume=True needs the thread_id and checkpointer"):
        await _flow().arun(resume=True)
