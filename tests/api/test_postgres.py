"""Scale-out on PostgreSQL: servers (and workers) that share LangGraph's PostgreSQL checkpointer continue
each other's threads, and a server killed mid-run loses nothing that was checkpointed.

The cluster is a throw-away one on a free local port (:mod:`tests.api.postgres`), or the database of
``AGENTFLOW_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.postgres import NoPostgres, throwaway_cluster
from tests.api.support import project


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with throwaway_cluster() as url:
            yield url
    except NoPostgres as exc:
        pytest.skip(f"PostgreSQL is not installed here: {exc}")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``agentflow serve`` in a process group of its own (so that a kill takes its workers too)."""

    def __init__(self, root: Path, url: str, *options: str, wait_s: float = 30.0,
                 files: tuple[str, ...] = ("echo.yaml", "slow.yaml"), env: dict[str, str] | None = None) -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "AF_TEST_WAIT_S": str(wait_s), **(env or {})}
        env.pop("AGENTFLOW_TRACES_DB", None)
        self.log = root / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentflow.cli", "serve", *files, "--port", str(self.port),
             "--checkpoint", url, *options],
            cwd=root, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"agentflow serve did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def _turn(url: str, thread: str, question: str) -> dict[str, object]:
    r = httpx.post(f"{url}/workflows/echo/runs", json={"inputs": {"question": question}, "thread_id": thread},
                   timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_two_servers_and_two_workers_continue_the_same_thread(postgres_url: str, tmp_path: Path) -> None:
    root = project(tmp_path)
    a = Server(root, postgres_url, "--workers", "2")
    try:
        b = Server(root, postgres_url)
        try:
            answers = []
            for i, server in enumerate([a, b, a, b, a, a, b, b]):
                body = _turn(server.url, "shared-thread", f"q{i}")
                assert body["turn"] == i + 1
                answers.append(body["outputs"])
            said = answers[-1]["said"]
            assert said[::2] == [f"q{i}" for i in range(7)]  # every earlier question, whichever server ran it
            assert said[1::2] == [f"turn {i + 1}: q{i} (n=1) [DOC 1]" for i in range(7)]
            state = httpx.get(f"{a.url}/workflows/echo/threads/shared-thread", timeout=30).json()
            assert state["turns"] == 8 and state["status"] == "finished"
        finally:
            b.stop()
    finally:
        a.stop()


def test_a_server_killed_mid_run_loses_nothing_that_was_checkpointed(postgres_url: str, tmp_path: Path) -> None:
    root = project(tmp_path)
    log = root / "first.log"
    doomed = Server(root, postgres_url, wait_s=120)
    result: dict[str, object] = {}

    def call() -> None:
        try:
            httpx.post(f"{doomed.url}/workflows/slow/runs", json={"inputs": {"question": "q"}, "thread_id": "k-1"},
                       timeout=150)
        except httpx.HTTPError as exc:  # the server dies under it
            result["error"] = exc

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 60
    while not log.exists():
        assert time.monotonic() < deadline, "the first step never ran"
        time.sleep(0.05)
    time.sleep(0.5)  # the step's checkpoint is written before the next step starts (durability "sync")
    doomed.kill()
    caller.join(30)
    assert "error" in result
    survivor = Server(root, postgres_url, wait_s=0.05)
    try:
        state = httpx.get(f"{survivor.url}/workflows/slow/threads/k-1", timeout=30).json()
        assert state["turns"] == 1 and state["status"] == "interrupted"
        assert state["values"]["step"] == "first" and state["values"]["question"] == "q"
        resumed = httpx.post(f"{survivor.url}/workflows/slow/runs", json={"thread_id": "k-1", "resume": True},
                             timeout=60)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["outputs"] == {"answer": "waited"}
        assert log.read_text() == "x"  # the finished step was not run again
    finally:
        survivor.stop()


def test_machines_without_a_shared_trace_store_share_runs_and_feedback_for_the_ab_report(
        postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from http.server import ThreadingHTTPServer

    from agentflow.cli import main as agentflow
    from tests.api.test_variants import EXPERIMENT, TALK
    from tests.tracing.test_otel import _Collector

    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)  # both machines export their traces here
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    _Collector.requests.clear()
    otlp = {"AGENTFLOW_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"}
    roots = []
    for name in ("machine-a", "machine-b"):  # each its own folder: its own SQLite trace store
        root = project(tmp_path / name)
        (root / "talk.yaml").write_text(TALK)
        (root / "talk.ab.yaml").write_text(EXPERIMENT.replace("talk-model", "shared-records"))
        roots.append(root)
    a = Server(roots[0], postgres_url, files=("talk.yaml",), env=otlp)
    try:
        b = Server(roots[1], postgres_url, files=("talk.yaml",), env=otlp)
        try:
            ran = [httpx.post(f"{server.url}/workflows/talk/runs", timeout=60,
                              json={"inputs": {"question": "hi"}, "thread_id": f"t{i}"}).json()
                   for i, server in enumerate([a, b] * 5)]
            assert all(r["status"] == "ok" for r in ran)
            # a run of machine A rated through machine B, which has no trace of it
            rated = httpx.post(f"{b.url}/runs/{ran[0]['run_id']}/feedback", json={"score": "up"}, timeout=30)
            assert rated.status_code == 201, rated.text
            assert rated.json()["run_id"] == ran[0]["run_id"] and rated.json()["score"] == 1
            assert httpx.post(f"{b.url}/runs/{ran[1]['run_id']}/feedback", json={"score": "down"},
                              timeout=30).status_code == 201
            unknown = httpx.post(f"{b.url}/runs/nope/feedback", json={"score": "up"}, timeout=30)
            assert unknown.status_code == 404
        finally:
            b.stop()
    finally:
        a.stop()
    collector.shutdown()
    exported = {s.trace_id.hex() for req in _Collector.requests for rs in req.resource_spans
                for ss in rs.scope_spans for s in ss.spans}
    assert {r["run_id"] for r in ran} <= exported  # every run of both machines reached the collector
    assert agentflow(["ab", "report", "shared-records", "--db", postgres_url, "--format", "json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    variants = {v["name"]: v for v in report["variants"]}
    assert sum(v["runs"] for v in variants.values()) == 10  # both machines' runs
    assert sum(v["up"] for v in variants.values()) == 1 and sum(v["down"] for v in variants.values()) == 1
    assert report["comparisons"][0]["decision"] == "sample too small"
