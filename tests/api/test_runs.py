"""Runs over HTTP: the workflows list, a run and its trace, threads, resuming, streaming, feedback."""

from __future__ import annotations

import json
from pathlib import Path

from agentflow.cli import main as agentflow
from tests.api.conftest import Served
from tests.api.support import sse_events


def test_workflows_list_names_inputs_outputs_and_the_json_schema_of_the_inputs(served: Served) -> None:
    with served.client() as http:
        listed = {w["name"]: w for w in http.get("/workflows").json()["workflows"]}
    assert set(listed) == {"echo", "slow", "flaky", "timeout"}
    echo = listed["echo"]
    assert echo["outputs"] == ["answer", "citations", "said"]
    assert echo["inputs"]["question"] == {"type": "string", "description": "The user's question.",
                                          "required": True, "default": None}
    schema = echo["input_schema"]
    assert schema["required"] == ["question"] and schema["additionalProperties"] is False
    assert schema["properties"]["n"]["anyOf"][0] == {"type": "integer"}
    assert echo["chat"] == {"question": "question", "history": "history", "answer": "answer"}


def test_a_run_returns_its_outputs_and_its_trace_records_it_as_served(served: Served) -> None:
    with served.client() as http:
        ran = http.post("/workflows/echo/runs", json={"inputs": {"question": "hello", "n": 3},
                                                      "user_id": "ana"})
        assert ran.status_code == 200, ran.text
        body = ran.json()
        assert body["status"] == "ok" and body["outputs"]["answer"] == "turn 1: hello (n=3) [DOC 1]"
        trace = http.get(f"/runs/{body['run_id']}")
    assert trace.status_code == 200, trace.text
    detail = trace.json()
    assert detail["status"] == "ok" and detail["workflow"] == "echo"
    assert detail["tags"] == {"origin": "serve", "user": "ana"}
    assert [s["name"] for s in detail["spans"]] == ["reply"]


def test_a_thread_continues_the_conversation_through_the_history_input(served: Served) -> None:
    with served.client() as http:
        first = http.post("/workflows/echo/runs", json={"inputs": {"question": "one"}, "thread_id": "conv-1"})
        second = http.post("/workflows/echo/runs", json={"inputs": {"question": "two"}, "thread_id": "conv-1"})
        other = http.post("/workflows/echo/runs", json={"inputs": {"question": "solo"}, "thread_id": "conv-2"})
        state = http.get("/workflows/echo/threads/conv-1").json()
        missing = http.get("/workflows/echo/threads/nobody")
    assert first.json()["turn"] == 1 and second.json()["turn"] == 2
    assert second.json()["outputs"]["answer"] == "turn 2: two (n=1) [DOC 1]"
    assert second.json()["outputs"]["said"] == ["one", "turn 1: one (n=1) [DOC 1]"]
    assert other.json()["outputs"]["said"] == []  # threads do not mix
    assert state["turns"] == 2 and state["status"] == "finished"
    assert state["values"]["answer"] == "turn 2: two (n=1) [DOC 1]"
    assert missing.status_code == 404 and "no thread 'nobody'" in missing.json()["error"]["message"]


def test_a_failed_run_resumes_from_the_step_that_failed(served: Served) -> None:
    flag, log = served.root / "fail.flag", served.root / "first.log"
    log.unlink(missing_ok=True)
    flag.write_text("on")
    with served.client() as http:
        failed = http.post("/workflows/flaky/runs", json={"inputs": {"question": "q"}, "thread_id": "res-1"})
        assert failed.status_code == 500, failed.text
        assert failed.json()["error_type"] == "run_error" and failed.json()["resumable"] is True
        assert "fail.flag is there" in failed.json()["error"]
        flag.unlink()
        resumed = http.post("/workflows/flaky/runs", json={"thread_id": "res-1", "resume": True})
        again = http.post("/workflows/flaky/runs", json={"thread_id": "res-1", "resume": True})
        no_thread = http.post("/workflows/flaky/runs", json={"resume": True})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["outputs"] == {"answer": "done after first"} and resumed.json()["turn"] == 1
    assert log.read_text() == "x"  # the first step ran once: the resumed run started at the failed one
    assert again.status_code == 409 and "finished" in again.json()["error"]["message"]
    assert no_thread.status_code == 422 and "thread_id" in no_thread.json()["error"]["message"]


def test_the_stream_sends_the_events_astream_yields_then_the_outcome(served: Served) -> None:
    with served.client() as http, http.stream("POST", "/workflows/echo/runs/stream",
                                              json={"inputs": {"question": "streamed"}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response.iter_lines()))
    kinds = [k for k, _ in events]
    assert kinds == ["run_started", "node_started", "node_finished", "run_finished", "end"]
    assert events[2][1]["data"]["update"]["answer"] == "turn 1: streamed (n=1) [DOC 1]"
    end = events[-1][1]
    assert end["status"] == "ok" and end["run_id"] == events[0][1]["run_id"]
    assert end["outputs"]["answer"] == "turn 1: streamed (n=1) [DOC 1]"


def test_feedback_is_stored_with_the_run_and_exported_by_agentflow_traces_export(
        served: Served, tmp_path: Path, capsys: object) -> None:
    with served.client() as http:
        run_id = http.post("/workflows/echo/runs", json={"inputs": {"question": "rate me"}}).json()["run_id"]
        up = http.post(f"/runs/{run_id}/feedback", json={"score": "up", "comment": "cites the page",
                                                         "user_id": "ana"})
        down = http.post(f"/runs/{run_id}/feedback", json={"score": -1})
        bad = http.post(f"/runs/{run_id}/feedback", json={"score": "meh"})
        unknown = http.post("/runs/0000nope/feedback", json={"score": "up"})
        trace = http.get(f"/runs/{run_id}").json()
    assert up.status_code == 201 and up.json()["score"] == 1 and up.json()["source"] == "serve"
    assert down.status_code == 201 and down.json()["score"] == -1
    assert bad.status_code == 422 and "'up' or 'down'" in bad.json()["error"]["message"]
    assert unknown.status_code == 404 and "no run '0000nope'" in unknown.json()["error"]["message"]
    assert [(f["score"], f["comment"], f["user_id"]) for f in trace["feedback"]] == [
        (1, "cites the page", "ana"), (-1, None, None)]
    out = tmp_path / "export.jsonl"
    assert agentflow(["traces", "export", run_id, "--db", str(served.traces), "-o", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert [f["score"] for f in exported["feedback"]] == [1, -1]
    assert exported["tags"]["origin"] == "serve"


def test_services_are_built_once_per_worker_not_per_request(served: Served, monkeypatch: object) -> None:
    import pytest

    from agentflow.spec.load import Workflow

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request built services")

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setattr(Workflow, "aservices", refuse)
    mp.setattr("agentflow.spec.services.default_services", refuse)
    mp.setattr("agentflow.models.factory.build_router", refuse)
    with served.client() as http:
        for i in range(3):
            assert http.post("/workflows/echo/runs", json={"inputs": {"question": f"q{i}"}}).status_code == 200
        chat = http.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200, chat.text


def test_a_streamed_run_on_a_thread_continues_it_and_a_bad_resume_is_an_http_error(served: Served) -> None:
    with served.client() as http:
        http.post("/workflows/echo/runs", json={"inputs": {"question": "before"}, "thread_id": "stream-1"})
        with http.stream("POST", "/workflows/echo/runs/stream",
                         json={"inputs": {"question": "after"}, "thread_id": "stream-1"}) as response:
            end = [d for k, d in sse_events(response.iter_lines()) if k == "end"][0]
        finished = http.post("/workflows/echo/runs/stream", json={"thread_id": "stream-1", "resume": True})
        unknown = http.post("/workflows/echo/runs/stream", json={"thread_id": "stream-9", "resume": True})
    assert end["turn"] == 2 and end["outputs"]["said"] == ["before", "turn 1: before (n=1) [DOC 1]"]
    assert finished.status_code == 409 and "finished" in finished.json()["error"]["message"]
    assert unknown.status_code == 404 and "has no run" in unknown.json()["error"]["message"]
