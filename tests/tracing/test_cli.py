"""`agentflow traces list|show|export` on a real store."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from agentflow.tracing import SQLiteTraceStore, cli

from .demo import record_demo_runs


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("cli") / "traces.db"
    store = SQLiteTraceStore(path)
    ids = asyncio.run(record_demo_runs(store))
    store.close()
    return path, ids


def traces(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="agentflow")
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["traces", *argv])
    return int(args.handler(args))


def test_list_shows_runs_newest_first_with_filters(db, capsys: pytest.CaptureFixture[str]) -> None:
    path, ids = db
    assert traces("list", "--db", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "STARTED", "WORKFLOW", "STATUS", "LATENCY", "NODES", "TOKENS",
                                "COST"]
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
    assert "no trace store at" in capsys.readouterr().err
    assert traces() == 2
    assert "choose a subcommand" in capsys.readouterr().err
