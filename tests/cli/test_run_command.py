"""`agentflow run module:attr`: inputs, JSON output, exit codes, fast start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLOWS = textwrap.dedent('''
    from typing import Any
    from pydantic import BaseModel
    import agentflow as af
    from agentflow.graph.registry import NodeRegistry

    REG = NodeRegistry()

    class S(BaseModel):
        name: str
        times: int = 1
        tags: list[str] = []
        greeting: str = ""

    @af.node("greet", reads=("name", "times"), writes=("greeting",), registry=REG)
    async def greet(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        if state.name == "crash":
            raise RuntimeError("cannot greet crash")
        return {"greeting": " ".join(["hello " + state.name] * state.times) + "".join(state.tags)}

    flow = af.Flow("hello", state=S, inputs=("name", "times", "tags"), steps=[greet])

    def make_flow():
        return flow

    broken = af.Flow("broken", state=S, inputs=("name",),
                     steps=[af.loop(greet, until="greeting")])
    not_a_flow = 42
''')


def agentflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "myflows.py").write_text(FLOWS)
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def test_run_with_inputs_prints_the_final_state_as_one_json_line(tmp_path: Path) -> None:
    proc = agentflow(tmp_path, "run", "myflows:flow", "--input", "name=Ada", "-i", "times=2",
                     "--input-json", '{"tags": ["!", "?"]}', "--output", "json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    state = json.loads(lines[0])
    assert state["greeting"] == "hello Ada hello Ada!?"
    assert state["times"] == 2  # "2" parsed as JSON
    assert "ok     greet" in proc.stderr  # live progress per node


def test_input_json_from_a_file_and_a_factory_function(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"name": "Bo"}))
    proc = agentflow(tmp_path, "run", "myflows:make_flow", "--input-json", "@in.json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "greeting: hello Bo" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize(("args", "code", "message"), [
    (["run", "myflows:flow", "-i", "name=crash", "--output", "json"], 1, "run failed: node 'greet'"),
    (["run", "myflows:flow", "-i", "nmae=x"], 2, "bad input: unknown input field(s) 'nmae'"),
    (["run", "myflows:flow", "-i", "novalue"], 2, "--input expects KEY=VALUE, got 'novalue'"),
    (["run", "myflows:flow", "--input-json", "[1]"], 2, "--input-json must be a JSON object"),
    (["run", "myflows:nothing"], 2, "module 'myflows' has no attribute 'nothing'"),
    (["run", "myflows:not_a_flow"], 2, "is a int, not an agentflow Flow"),
    (["run", "nomodule:flow"], 2, "cannot import module 'nomodule'"),
    (["run", "myflows:broken"], 3, "workflow does not build: loop 'loop_1' has no max_iterations"),
])
def test_exit_codes_scripts_can_use(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    proc = agentflow(tmp_path, *args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr


def test_a_failed_run_with_json_output_still_prints_one_json_line(tmp_path: Path) -> None:
    proc = agentflow(tmp_path, "run", "myflows:flow", "-i", "name=crash", "--output", "json")
    payload = json.loads(proc.stdout)
    assert payload["status"] == "error" and "cannot greet crash" in payload["error"]


def test_the_command_starts_without_heavy_imports() -> None:
    code = ("import sys, agentflow.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('langgraph','litellm','torch','qdrant_client','qdrant_edge',"
            "'transformers','fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_quick_exit_still_runs_the_exit_handlers_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """`agentflow` leaves without tearing its modules down; what exit handlers do still happens:
    a handler registered by a user's module runs, the trace store has the run, and a failed run
    keeps its exit code."""
    (tmp_path / "atexit_note.py").write_text(
        "import atexit, pathlib\n"
        "atexit.register(lambda: pathlib.Path('exited.txt').write_text('yes'))\n")
    db = tmp_path / "traces.db"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "AGENTFLOW_TRACES_DB": str(db)}
    (tmp_path / "myflows.py").write_text(FLOWS + "\nimport atexit_note\n")
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", "myflows:flow", "-i",
                           "name=crash"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "cannot greet crash" in proc.stderr
    assert (tmp_path / "exited.txt").read_text() == "yes"
    from agentflow.tracing import TraceReader

    with TraceReader(db) as reader:
        (run,) = reader.runs()
        summary = reader.summary(run.run_id)
        assert run.status == "error" and summary.nodes == 1 and summary.errors == 1


def test_the_quick_exit_is_a_plain_exit_while_a_thread_still_works() -> None:
    import threading

    from agentflow.cli import exit_now

    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as info:
            exit_now(3)
        assert info.value.code == 3
    finally:
        release.set()
        worker.join()


def test_a_lone_surrogate_in_the_input_is_replaced_and_the_output_is_valid_utf8(tmp_path: Path) -> None:
    (tmp_path / "myflows.py").write_text(FLOWS)
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", "myflows:flow",
                           "--input-json", '{"name": "Ada \\udcff"}', "--output", "json"],
                          cwd=tmp_path, capture_output=True, env={**os.environ, "PYTHONPATH": ""},
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout.decode("utf-8"))  # strict: no raw surrogate byte printed
    assert state["greeting"] == "hello Ada \ufffd"
    assert "replaced by U+FFFD" in proc.stderr.decode("utf-8")


def test_a_cli_run_records_its_origin_and_the_tags_given(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "AGENTFLOW_TRACES_DB": str(db)}
    (tmp_path / "myflows.py").write_text(FLOWS)
    run = [sys.executable, "-m", "agentflow.cli", "run", "myflows:flow", "-i", "name=Ada"]
    proc = subprocess.run([*run, "--tag", "experiment=v2", "-t", "owner=me"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run([*run, "--tag", "novalue"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "bad --tag 'novalue': give KEY=VALUE" in bad.stderr
    from agentflow.tracing import TraceReader

    with TraceReader(db) as reader:
        (only,) = reader.runs()
        assert only.tags == {"origin": "run", "experiment": "v2", "owner": "me"}
