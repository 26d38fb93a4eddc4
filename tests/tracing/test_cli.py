"""`agentflow traces list|show|export` on a real store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentflow.tracing import SQLiteTraceStore

from .demo import record_demo_runs, traces


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("cli") / "traces.db"
    store = SQLiteTraceStore(path)
    ids = asyncio.run(record_demo_runs(store))
    store.close()
    return path, ids


def test_list_shows_runs_newest_first_with_filters(db, capsys: pytest.CaptureFixture[str]) -> None:
    path, ids = db
    assert traces("list", "--db", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "STARTED", "WORKFLOW", "STATUS", "LATENCY", "NODES", "TOKENS",
                                "COST", "ORIGIN", "FEEDBACK"]
    assert all(line.split()[-1] == "test" for line in lines[1:])  # recorded under pytest
    assert [line.split()[0] for line in lines[1:]] == [ids[k][:8] for k in ("failed", "chat", "ok")]
    assert "error" in lines[1] and "$0.0042" in lines[3]

    assert traces("list", "--db", str(path), "--status", "ok", "--sort", "cost", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run_id"] for r in rows] == [ids["ok"], ids["chat"]]
    assert rows[0]["tokens"] == 573 and rows[0]["nodes"] == 12


def test_show_draws_the_run_as_a_tree_with_verdicts_fan_out_and_costs(
        db, capsys: pytest.CaptureFixture[str]) -> None:
    path, ids = db
    assert traces("show", ids["ok"][:6], "--db", str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {ids['ok']}  demo_rag  ok")
    assert "12 nodes, 4 model calls, 573 tokens, cost $0.0042" in out
    assert "├─ route by_route -> knowledge (label 'knowledge')" in out
    assert "map retrieve over queries x3 (max_concurrency 2" in out
    assert "loop refine (max 3) -> passed after 2 pass(es)" in out
    assert "pass 1 failed: failing: citations, faithfulness" in out
    assert "model_call large -> offline/extractive  260 tok  $0.0021  1 retries" in out
    assert "check faithfulness  verdict pass  score 0.93" in out
    assert out.count("└─ retrieval docs  1 queries -> 2 hits") == 3

    assert traces("show", "--db", str(path)) == 0  # "last": the failed run
    out = capsys.readouterr().out
    assert "demo_rag  error" in out and "node answer  [FAILED" in out and "[REDACTED]" in out


def test_export_writes_runs_with_payloads_as_json_lines(db, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path, ids = db
    target = tmp_path / "out.jsonl"
    assert traces("export", "--all", "--db", str(path), "-o", str(target)) == 0
    assert "exported 3 run(s)" in capsys.readouterr().err
    runs = [json.loads(line) for line in target.read_text().splitlines()]
    assert {r["run_id"] for r in runs} == set(ids.values())
    ok = next(r for r in runs if r["run_id"] == ids["ok"])
    assert len(ok["spans"]) == 35 and ok["graph"]["flow"] == "demo_rag"
    call = next(s for s in ok["spans"] if s["kind"] == "model_call")
    assert call["data"]["messages"][0]["role"] == "system"


def test_unknown_runs_and_missing_stores_exit_2_with_a_clear_message(
        db, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = db
    assert traces("show", "zzzz", "--db", str(path)) == 2
    assert "no run 'zzzz'" in capsys.readouterr().err
    assert traces("list", "--db", str(tmp_path / "none.db")) == 2
    assert f"no traces at {str(tmp_path / 'none.db')!r} yet" in capsys.readouterr().err
    assert traces() == 2
    assert "choose a subcommand" in capsys.readouterr().err


ECHO_FLOW = textwrap.dedent('''
    from typing import Any
    from pydantic import BaseModel
    import agentflow as af
    from agentflow.graph.registry import NodeRegistry

    REG = NodeRegistry()

    class S(BaseModel):
        question: str
        answer: str = ""

    @af.node("echo", reads=("question",), writes=("answer",), registry=REG)
    async def echo(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        return {"answer": "you asked: " + state.question}

    flow = af.Flow("echo", state=S, inputs=("question",), steps=[echo])
''')


def agentflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_TRACES")}
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, errors="replace", timeout=120,
                          stdin=subprocess.DEVNULL)


def test_a_run_whose_input_holds_a_lone_surrogate_is_still_recorded(tmp_path: Path) -> None:
    (tmp_path / "echoflow.py").write_text(ECHO_FLOW)
    proc = agentflow(tmp_path, "run", "echoflow:flow", "-q",
                     "--input-json", '{"question": "hello \\udcff"}')
    assert proc.returncode == 0, proc.stderr
    listed = agentflow(tmp_path, "traces", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (run["workflow"], run["status"], run["nodes"]) == ("echo", "ok", 1)
    shown = agentflow(tmp_path, "traces", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["inputs"] == {"question": "hello \ufffd"}
    assert "Traceback" not in proc.stderr + listed.stderr + shown.stderr


def test_a_file_that_is_no_trace_store_is_an_error_message_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "traces.db"
    junk.write_bytes(b"this is not a database" * 100)
    assert traces("list", "--db", str(junk)) == 1
    err = capsys.readouterr().err
    assert f"cannot read the trace store {str(junk)!r}" in err and "not a database" in err
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert traces("show", "--db", str(empty)) == 2
    assert f"no traces at {str(empty)!r} yet" in capsys.readouterr().err
    assert empty.read_bytes() == b""  # a reader creates no schema
