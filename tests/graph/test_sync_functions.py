"""Sync user functions never block the event loop, and a step's checkpoint is saved before the
next step starts: what keeps a run killed during a slow sync step resumable (the kill itself is in
tests/faults/test_kill_run.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest

import agentflow as af
from agentflow.nodes.python import allow_modules, python

from .nodes import S

allow_modules([__name__])

STARTED = threading.Event()
TICKED = threading.Event()
USER: ContextVar[str] = ContextVar("user", default="unset")
DB: dict[str, Path] = {}


def waits_for_the_loop(inputs: dict[str, Any]) -> dict[str, Any]:
    """Returns once a task on the event loop has run meanwhile: never, if it blocks the loop."""
    STARTED.set()
    if not TICKED.wait(timeout=3):
        raise TimeoutError("the event loop did not run while the sync function ran")
    return {"answer": USER.get()}


async def _tick() -> None:
    while not STARTED.is_set():
        await asyncio.sleep(0.001)
    TICKED.set()


async def test_a_sync_python_function_runs_off_the_event_loop_with_the_callers_context() -> None:
    STARTED.clear()
    TICKED.clear()
    USER.set("ada")
    flow = af.Flow("sync", state=S, inputs=("question",), steps=[
        python("wait", function=f"{__name__}:waits_for_the_loop", reads=["question"],
               writes=["answer"])])
    ticker = asyncio.create_task(_tick())
    try:
        result = await flow.arun({"question": "q"})
    finally:
        ticker.cancel()
    assert result.state["answer"] == "ada"  # asyncio.to_thread copied the context


def _saved_query() -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with sqlite3.connect(DB["path"], check_same_thread=False) as conn:
        saved = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": "t"}})
    return saved.checkpoint["channel_values"].get("query") if saved else None


def first(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"query": inputs["question"] + "!"}


def second_sync(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"answer": f"saved before me: {_saved_query()}"}


async def second_async(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"answer": f"saved before me: {_saved_query()}"}


@pytest.mark.parametrize("second", ["second_sync", "second_async"])
async def test_a_steps_checkpoint_is_committed_before_the_next_step_starts(
        tmp_path: Path, second: str) -> None:
    DB["path"] = tmp_path / "checkpoints.db"
    flow = af.Flow("durable", state=S, inputs=("question",), steps=[
        python("first", function=f"{__name__}:first", reads=["question"], writes=["query"]),
        python("second", function=f"{__name__}:{second}", reads=["query"], writes=["answer"])])
    result = await flow.arun({"question": "q"}, thread_id="t", checkpointer=DB["path"])
    assert result.state["answer"] == "saved before me: q!"
