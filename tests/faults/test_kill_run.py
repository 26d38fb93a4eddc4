"""kill -9 of a durable run: the finished steps stay checkpointed, and ``--resume`` finishes it.

Each test runs ``agentflow run`` in a subprocess on a workflow in ``tmp_path`` whose ``python``
nodes log each step they finish to ``log.txt``. One node holds (sync ``time.sleep`` or async
``asyncio.sleep``) after writing a marker file; the test waits for the marker, kills the process
with SIGKILL, then checks the checkpoint database, resumes, and checks that the steps that
finished before the kill did not run again and that the trace store is intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentflow.tracing.query import TraceReader

STEPS = '''
import asyncio, os, time

HOLD = float(os.environ.get("HOLD_S", "30"))


def _done(name):
    with open("log.txt", "a") as f:
        f.write(name + "\\n")


def _holds(name):
    """Whether this step holds: once, in the run that the test kills."""
    if os.path.exists("resuming"):
        return False
    open(f"started-{name}", "w").close()
    return True


def a(inputs):
    _done("a")
    return {"x": inputs["q"] + "a"}


def b_sync(inputs):
    if _holds("b"):
        time.sleep(HOLD)  # blocks its thread, as a slow library call does
    _done("b")
    return {"y": inputs["x"] + "b"}


async def b_async(inputs):
    if _holds("b"):
        await asyncio.sleep(HOLD)
    _done("b")
    return {"y": inputs["x"] + "b"}


def c(inputs):
    _done("c")
    return {"z": inputs["y"] + "c"}


def prep(inputs):
    _done("prep")
    return {"items": [f"{inputs['q']}{i}" for i in range(4)]}


def work(inputs):
    item = inputs["item"]
    if item.endswith("2") and _holds("work"):
        time.sleep(HOLD)
    _done(f"work {item}")
    return {"out": item.upper()}


def done(inputs):
    _done("done")
    return {"z": ",".join(inputs["results"])}
'''

ABC = '''
version: 1
name: abc
inputs:
  q: {{type: string}}
outputs: [z]
nodes:
  a: {{type: python, function: "kill_steps:a", reads: [q], writes: [x]}}
  b: {{type: python, function: "kill_steps:{b}", reads: [x], writes: [y]}}
  c: {{type: python, function: "kill_steps:c", reads: [y], writes: [z]}}
flow: [a, b, c]
'''

MAP = '''
version: 1
name: items
inputs:
  q: {type: string}
outputs: [z]
state:
  item: {type: string}
  results: {type: list}
nodes:
  prep: {type: python, function: "kill_steps:prep", reads: [q], writes: [items]}
  work: {type: python, function: "kill_steps:work", reads: [item], writes: [out]}
  done: {type: python, function: "kill_steps:done", reads: [results], writes: [z]}
flow:
  - prep
  - map: {name: each, over: items, item: item, node: work, into: results, max_concurrency: 1}
  - done
'''

WAIT_S = 30.0
"""The bound on every wait: a broken build fails the test instead of hanging it."""


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_TRACES")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    return env


def _command(workflow: str, thread: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentflow.cli", "run", workflow, "--allow-module", "kill_steps",
            "--checkpoint", "runs.db", "--thread-id", thread, "-q", "--output", "json", *extra]


def _run(project: Path, workflow: str, thread: str, *extra: str) -> dict[str, object]:
    proc = subprocess.run(_command(workflow, thread, *extra), cwd=project, env=_env(project),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the run exited (code {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")
        time.sleep(0.02)


def _kill_during(project: Path, workflow: str, marker: str,
                 durable: Callable[[], bool] | None = None) -> None:
    """Start a run, wait until ``marker`` exists (and ``durable()`` holds), SIGKILL it."""
    proc = subprocess.Popen(_command(workflow, "T", "-i", "q=Q"), cwd=project, env=_env(project),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        _wait_for(f"the marker {marker}", (project / marker).exists, proc)
        if durable is not None:
            _wait_for("the finished steps' checkpoints", durable, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL


def _read_only(db: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                              check_same_thread=False))


def _log(project: Path) -> list[str]:
    return (project / "log.txt").read_text().splitlines()


def _checkpoint(project: Path, thread: str) -> tuple[dict[str, object], list[tuple[str, object]]]:
    """The latest checkpoint of ``thread``: its channel values and its pending writes."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    with _read_only(project / "runs.db") as conn:
        saved = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread}})
    assert saved is not None, "no checkpoint of the killed run"
    writes = [(channel, value) for _, channel, value in saved.pending_writes or ()]
    return saved.checkpoint["channel_values"], writes


def _check_traces(project: Path) -> None:
    """The trace store survived the kill: intact, the earlier run and the resumed run listed."""
    db = project / ".agentflow" / "traces.db"
    with _read_only(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with TraceReader(db) as reader:
        runs = [(r.thread_id, r.status) for r in reader.runs()]
    assert runs.count(("earlier", "ok")) == 1 and runs.count(("T", "ok")) == 1, runs
    killed = [status for thread, status in runs if thread == "T" and status != "ok"]
    assert set(killed) <= {"incomplete"}, runs  # the killed run, where its start was recorded


def _setup(project: Path, name: str, text: str) -> str:
    (project / "kill_steps.py").write_text(STEPS)
    (project / name).write_text(text)
    return name


def _resume(project: Path, workflow: str) -> dict[str, object]:
    (project / "resuming").touch()
    return _run(project, workflow, "T", "--resume")


@pytest.mark.parametrize("b", ["b_sync", "b_async"])
def test_a_run_killed_during_a_node_resumes_after_the_steps_that_finished(
        tmp_path: Path, b: str) -> None:
    flow = _setup(tmp_path, "abc.yaml", ABC.format(b=b))
    (tmp_path / "resuming").touch()
    assert _run(tmp_path, flow, "earlier", "-i", "q=E") == {"z": "Eabc"}
    (tmp_path / "resuming").unlink()
    (tmp_path / "log.txt").unlink()

    _kill_during(tmp_path, flow, "started-b")
    assert _log(tmp_path) == ["a"]
    values, _ = _checkpoint(tmp_path, "T")
    assert values.get("x") == "Qa", f"the checkpoint lacks a's write: {values}"
    assert "y" not in values

    assert _resume(tmp_path, flow) == {"z": "Qabc"}
    assert _log(tmp_path) == ["a", "b", "c"]  # a did not run again
    _check_traces(tmp_path)


def test_a_map_killed_during_an_item_resumes_with_the_unfinished_items(tmp_path: Path) -> None:
    flow = _setup(tmp_path, "items.yaml", MAP)
    (tmp_path / "resuming").touch()
    assert _run(tmp_path, flow, "earlier", "-i", "q=e") == {"z": "E0,E1,E2,E3"}
    (tmp_path / "resuming").unlink()
    (tmp_path / "log.txt").unlink()

    def items_saved() -> bool:  # the writes of items 0 and 1, saved while item 2 holds
        with _read_only(tmp_path / "runs.db") as conn:
            row = conn.execute(
                "SELECT count(DISTINCT task_id) FROM writes WHERE thread_id = 'T' "
                "AND channel = '_af' AND task_path LIKE '~__pregel_push%'").fetchone()
        return row[0] >= 2

    _kill_during(tmp_path, flow, "started-work", items_saved)
    assert _log(tmp_path) == ["prep", "work Q0", "work Q1"]
    values, writes = _checkpoint(tmp_path, "T")
    assert values.get("items") == ["Q0", "Q1", "Q2", "Q3"]
    saved = {i for channel, w in writes if channel == "_af" for i in w["map"]["each"]}
    assert saved == {"0", "1"}, f"pending writes of the finished items: {writes}"

    assert _resume(tmp_path, flow) == {"z": "Q0,Q1,Q2,Q3"}
    assert _log(tmp_path) == ["prep", "work Q0", "work Q1", "work Q2", "work Q3", "done"]
    _check_traces(tmp_path)
