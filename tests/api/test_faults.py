"""Bad input and faults: malformed JSON, unknown workflow, wrong input types, a body over the limit, a client
that disconnects mid-stream, a model that times out; the key and the Host header."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from agentflow.tracing.query import TraceReader
from tests.api.conftest import Served, start
from tests.api.support import HangingServer, project, sse_events


def test_malformed_json_is_a_400_that_says_where(served: Served) -> None:
    with served.client() as http:
        r = http.post("/workflows/echo/runs", content=b'{"inputs": {"question": ', 
                      headers={"content-type": "application/json"})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("request body is not valid JSON") and "position 24" in message


def test_an_unknown_workflow_is_a_404_naming_the_served_ones(served: Served) -> None:
    with served.client() as http:
        r = http.post("/workflows/ecco/runs", json={"inputs": {"question": "x"}})
        chat = http.post("/v1/chat/completions", json={"model": "ecco", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == ("no workflow 'ecco' is served here; served: 'echo', 'flaky', "
                                            "'slow', 'timeout'")
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_found"
    assert chat.json()["error"]["param"] == "model"


def test_wrong_input_types_are_a_422_naming_each_field_and_what_is_valid(served: Served) -> None:
    with served.client() as http:
        r = http.post("/workflows/echo/runs", json={"inputs": {"question": 5, "n": "3"}})
        missing = http.post("/workflows/echo/runs", json={"inputs": {}})
        unknown = http.post("/workflows/echo/runs", json={"inputs": {"question": "x", "questoin": "y"}})
        not_object = http.post("/workflows/echo/runs", json={"inputs": ["x"]})
    assert r.status_code == 422
    problems = r.json()["error"]["problems"]
    assert problems == [
        {"field": "question", "message": "Input should be a valid string, got a whole number 5",
         "valid": "question is a string: The user's question."},
        {"field": "n", "message": "Input should be a valid integer, got a string '3'",
         "valid": "n is a whole number: A number."}]
    assert missing.status_code == 422 and missing.json()["error"]["problems"][0]["field"] == "question"
    assert "missing required input" in missing.json()["error"]["message"]
    assert unknown.status_code == 422
    assert unknown.json()["error"]["problems"][0]["valid"].startswith("inputs: question (a string, required)")
    assert not_object.status_code == 422 and not_object.json()["error"]["param"] == "inputs"


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(served: Served) -> None:
    big = {"inputs": {"question": "x" * (70 * 1024)}}
    with served.client() as http:
        r = http.post("/workflows/echo/runs", json=big)
        chat = http.post("/v1/chat/completions", json={"model": "echo", "messages": [
            {"role": "user", "content": "x" * (70 * 1024)}]})
    assert r.status_code == 413 and "over this server's limit of 65536 bytes" in r.json()["error"]["message"]
    assert chat.status_code == 413


def _wait_status(db: Path, run_id: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    status = "missing"
    while time.monotonic() < deadline:
        if db.is_file():
            with TraceReader(db) as reader:
                runs = [r for r in reader.runs(limit=1000) if r.run_id == run_id]
                if runs and runs[0].status not in ("running",):
                    return runs[0].status
                status = runs[0].status if runs else "missing"
        time.sleep(0.1)
    return status


def test_a_client_that_disconnects_mid_stream_cancels_the_run_and_the_trace_records_it(served: Served) -> None:
    log = served.root / "first.log"
    log.unlink(missing_ok=True)
    with served.client() as http, http.stream("POST", "/workflows/slow/runs/stream",
                                              json={"inputs": {"question": "q"}}) as response:
        lines = response.iter_lines()
        events = sse_events(lines)
        kind, started = next(events)
        assert kind == "run_started"
        while next(events)[0] != "node_finished":  # the first step finished: the run waits in the second
            pass
    # leaving the block closed the connection mid-run
    run_id = started["run_id"]
    assert _wait_status(served.traces, run_id) == "error"
    with TraceReader(served.traces) as reader:
        summary = reader.summary(run_id)
        spans = reader.spans(run_id)
    assert "client disconnected" in (summary.error or "")
    assert [(s["name"], s["status"]) for s in spans] == [("first", "ok"), ("wait", "error")]


def test_a_model_that_times_out_is_a_clear_error_event_and_the_trace_records_it(served: Served) -> None:
    with served.client() as http:
        with http.stream("POST", "/workflows/timeout/runs/stream", json={"inputs": {"question": "hi"}}) as response:
            events = list(sse_events(response.iter_lines()))
        plain = http.post("/workflows/timeout/runs", json={"inputs": {"question": "hi"}})
        chat = http.post("/v1/chat/completions", json={"model": "timeout", "messages": [{"role": "user", "content": "hi"}]})
    kind, error = events[-1]
    assert kind == "error" and error["status"] == "error" and error["error_type"] == "model_timeout"
    assert "timeout" in error["error"].lower() and "'stuck'" in error["error"]
    failed_calls = [d for k, d in events if k == "model_call"]
    assert failed_calls and failed_calls[0]["status"] == "error"
    assert plain.status_code == 504 and plain.json()["error_type"] == "model_timeout"
    assert chat.status_code == 504 and chat.json()["error"]["type"] == "model_timeout"
    with TraceReader(served.traces) as reader:
        assert _wait_status(served.traces, error["run_id"]) == "error"
        assert "timeout" in (reader.summary(error["run_id"]).error or "").lower()


def test_the_host_header_must_name_this_server(served: Served) -> None:
    with served.client() as http:
        r = http.get("/workflows", headers={"host": "evil.example:8080"})
    assert r.status_code == 403 and "--allow-host" in r.json()["error"]["message"]


def test_an_api_key_is_checked_on_every_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging = HangingServer()
    root = project(tmp_path, hanging_port=hanging.port)
    monkeypatch.chdir(root)
    monkeypatch.setenv("AF_TEST_SERVE_KEY", "s3cret-key")
    server = start(root, hanging, api_key_env="AF_TEST_SERVE_KEY")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for method, path, body in [("GET", "/health", None), ("GET", "/workflows", None),
                                       ("POST", "/workflows/echo/runs", {"inputs": {"question": "x"}}),
                                       ("GET", "/v1/models", None), ("GET", "/runs/abc", None),
                                       ("POST", "/v1/chat/completions", {"model": "echo", "messages": []})]:
                r = http.request(method, path, json=body)
                assert r.status_code == 401, (path, r.text)
                wrong = http.request(method, path, json=body, headers={"authorization": "Bearer nope"})
                assert wrong.status_code == 401
            ok = http.post("/workflows/echo/runs", json={"inputs": {"question": "x"}},
                           headers={"authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200, ok.text
        stored = (root / ".agentflow" / "traces.db").read_bytes()
        assert b"s3cret-key" not in stored
    finally:
        server.stop()
        hanging.close()


def test_the_server_binds_loopback_unless_told_otherwise() -> None:
    from agentflow.api.settings import ServeSettings
    from agentflow.cli import build_parser

    args = build_parser().parse_args(["serve", "x.yaml"])
    assert args.host == "127.0.0.1" and ServeSettings(files=()).host == "127.0.0.1"
    with socket.socket() as s:
        assert s.family == socket.AF_INET


def test_json_errors_say_what_is_wrong_in_the_request_body(served: Served) -> None:
    with served.client() as http:
        r = http.post("/workflows/echo/runs", json={"inputs": {"question": "x"}, "thread_id": 5})
        bad_thread = http.post("/workflows/echo/runs", json={"inputs": {"question": "x"}, "thread_id": "a b"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "thread_id"
    assert bad_thread.status_code == 422 and "thread_id 'a b' is not valid" in bad_thread.json()["error"]["message"]
    assert json.loads(r.text)["error"]["type"] == "invalid_request_error"
