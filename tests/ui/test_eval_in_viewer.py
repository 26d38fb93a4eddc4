"""A real `agentflow eval` run (the evaluation tests' tiny workflow, offline) as the viewer reads
it: its items link to their traces, tagged `eval`, and the evaluation records its cache use."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from agentflow.eval import evaluate_prepared
from agentflow.eval.results import CACHES, read_results
from agentflow.ui.server import ServerThread
from agentflow.ui.stores import path_id
from tests.eval.test_runner import QUIET, dataset, prepared


def evaluate(*args: object, **kwargs: object) -> None:
    """Run an evaluation on a thread of its own: Playwright's sync API, used by the browser tests
    of the same session, may keep an event loop running on this one."""
    failed: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(evaluate_prepared(*args, **kwargs))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            failed.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if failed:
        raise failed[0]


def test_an_evaluation_is_listed_its_items_open_their_traces_and_its_caches_are_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "traces.db"
    monkeypatch.setenv("AGENTFLOW_TRACES_DB", str(db))
    cache = tmp_path / "embeddings.db"
    with sqlite3.connect(cache) as conn:  # a warm embedding cache of 7 vectors
        conn.execute("CREATE TABLE vectors (key BLOB PRIMARY KEY, vec BLOB)")
        conn.executemany("INSERT INTO vectors VALUES (?, ?)", [(bytes([i]), b"\0") for i in range(7)])
    monkeypatch.setenv("AGENTFLOW_EMBEDDING_CACHE", str(cache))
    out = tmp_path / "evals" / "tiny"
    evaluate(prepared(), dataset(tmp_path), out, options=QUIET)

    records = {r["id"]: r for r in read_results(out)}
    assert all(r["cache_hits"] == 0 and "model_calls" in r for r in records.values())
    (run,) = json.loads((out / CACHES).read_text())["runs"]
    assert (run["embedding_cache_before"], run["embedding_cache_after"], run["embedded"]) == (7, 7, 0)
    assert run["items"] == 5

    with ServerThread(db, evals=[tmp_path / "evals"]) as server:
        listed = httpx.get(server.url + "/api/evals").json()["evals"]
        assert [e["name"] for e in listed] == ["tiny"] and listed[0]["id"] == path_id(out)
        items = httpx.get(f"{server.url}/api/evals/{path_id(out)}").json()["items"]
        cats = next(i for i in items if i["id"] == "cats")
        assert cats["question"] == "How many hours do cats sleep a day?"
        assert cats["expected"].startswith("fifteen hours")
        run_page = httpx.get(f"{server.url}/api/runs/{cats['run_id']}").json()
        assert run_page["tags"]["origin"] == "eval" and run_page["inputs"]["question"] == cats["question"]
        crashed = next(i for i in items if i["id"] == "crash")
        assert crashed["status"] == "error" and crashed["run_id"]
        listed_runs = httpx.get(server.url + "/api/runs?tag=origin%3Deval").json()["runs"]
        assert len(listed_runs) == 5


def test_an_evaluation_without_an_embedding_cache_creates_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTFLOW_TRACES_DB", str(tmp_path / "traces.db"))
    monkeypatch.delenv("AGENTFLOW_EMBEDDING_CACHE", raising=False)
    out = tmp_path / "out"
    evaluate(prepared(), dataset(tmp_path, limit=2), out, options=QUIET)
    (run,) = json.loads((out / CACHES).read_text())["runs"]
    assert run["embedded"] is None and not (tmp_path / ".agentflow" / "embeddings.db").exists()
