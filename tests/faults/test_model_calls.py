"""Faults in model calls, end to end: a model that hangs, and HTTP 500s and 429s from a server on
127.0.0.1 reached through LiteLLM. Each run is a real workflow traced to a real SQLite store; the
tests assert what the error says (the alias, the model, the timeout or the status) and that
nothing is lost: the run, the node that finished before the fault, and the failed model call are
all in the store.

Retries, backoff and fallbacks themselves are pinned down in tests/models/test_router.py and
tests/models/test_litellm_http.py; these tests add what a user sees after the fault.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentflow.errors import NodeError
from agentflow.graph.context import Services
from agentflow.models import ModelEntry, ModelRouter, RetryConfig
from agentflow.spec.load import load_workflow
from agentflow.spec.services import default_services
from agentflow.testing.models import FakeChatModel
from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.query import run_records
from tests.models.conftest import http_server  # noqa: F401  (the fixture: a local OpenAI-style server)
from tests.models.support import RecordingServer, Reply, openai_reply

WORKFLOW = """
version: 1
name: two_calls
inputs:
  question: {type: string}
nodes:
  greet: {type: chat, input: question, output: greeting, model: small}
  answer: {type: chat, input: question, output: answer, model: large}
flow: [greet, answer]
"""

FAST_RETRIES = RetryConfig(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.05)


def _run(tmp_path: Path, router: ModelRouter) -> tuple[Any, BaseException | None]:
    """Run the workflow traced to ``tmp_path/traces.db``; its stored run and the error raised."""
    flow = load_workflow("two_calls.yaml", text=WORKFLOW).flow
    services = default_services(root=tmp_path, base=Services(models=router))
    store = SQLiteTraceStore(tmp_path / "traces.db")
    error: BaseException | None = None
    try:
        asyncio.run(flow.arun({"question": "What is a loop?"}, services=services, hooks=[store]))
    except NodeError as exc:
        error = exc
    finally:
        store.close()
    reader = TraceReader(tmp_path / "traces.db")
    (summary,) = reader.runs(limit=10)
    return reader.run(summary.run_id, with_data=True), error


def _spans(detail: Any, kind: str) -> list[Any]:
    return [s for s in run_records(detail) if s.kind == kind]


def _router(large: list[ModelEntry] | FakeChatModel, *, timeout_s: float = 30.0) -> ModelRouter:
    small = FakeChatModel(["Hello!"], name="greeter", repeat_last=True)
    if isinstance(large, FakeChatModel):
        return ModelRouter(models={"small": small, "large": large}, retries=FAST_RETRIES,
                           timeout_s=timeout_s)
    return ModelRouter({"large": large}, models={"small": small}, retries=FAST_RETRIES,
                       timeout_s=timeout_s)


def _assert_nothing_lost(detail: Any, error: BaseException | None, *needles: str) -> None:
    """The run is stored as failed with the error; the node before the fault finished and its
    model call is there; the failing node and its model call are stored as errors."""
    assert error is not None, "the run should have failed"
    assert detail.summary.status == "error"
    for needle in needles:
        assert needle in str(error), (needle, str(error))
        assert needle in (detail.summary.error or ""), (needle, detail.summary.error)
    nodes = {s.name: s for s in _spans(detail, "node")}
    assert nodes["greet"].status == "ok" and nodes["answer"].status == "error"
    calls = _spans(detail, "model_call")
    assert [c.status for c in calls] == ["ok", "error"], [(c.name, c.status) for c in calls]
    failed = calls[-1]
    assert failed.name == "large" and failed.error
    for needle in needles:
        assert needle in failed.error, (needle, failed.error)


def test_a_hanging_model_times_out_with_an_error_naming_alias_model_and_timeout(
        tmp_path: Path) -> None:
    async def hang(request: Any) -> str:
        await asyncio.sleep(60)
        return "never"

    detail, error = _run(tmp_path, _router(FakeChatModel(hang, name="stuck-model"), timeout_s=0.2))
    _assert_nothing_lost(detail, error, "'large'", "stuck-model", "0.2 s")
    assert "timeout" in str(error)


def test_a_hanging_http_server_times_out_through_litellm_and_the_run_is_recorded(
        tmp_path: Path, http_server: RecordingServer) -> None:
    http_server.reply(*[Reply(body=openai_reply("late"), delay_s=1.5) for _ in range(3)])
    entry = ModelEntry(model="openai/slow-model", api_base=f"{http_server.url}/v1", timeout_s=0.3)
    detail, error = _run(tmp_path, _router([entry]))
    _assert_nothing_lost(detail, error, "'large'", "slow-model", "timeout")
    assert len(http_server.chat_requests()) >= 2  # retried after the first timeout, then gave up


@pytest.mark.parametrize(("status", "reason"), [(500, "server"), (429, "rate")])
def test_http_errors_are_retried_then_the_answer_is_recorded(
        tmp_path: Path, http_server: RecordingServer, status: int, reason: str) -> None:
    http_server.reply(Reply(status, {"error": {"message": "try again"}}),
                      Reply(status, {"error": {"message": "try again"}}),
                      Reply(body=openai_reply("a loop repeats its body")))
    entry = ModelEntry(model="openai/flaky-model", api_base=f"{http_server.url}/v1")
    detail, error = _run(tmp_path, _router([entry]))
    assert error is None and detail.summary.status == "ok"
    assert len(http_server.chat_requests()) == 3
    call = _spans(detail, "model_call")[-1]
    assert call.status == "ok" and call.data["retries"] == 2
    assert call.data["response"] == "a loop repeats its body"


@pytest.mark.parametrize(("status", "reason"), [(500, "server"), (429, "rate")])
def test_http_errors_that_never_stop_are_a_clear_error_and_the_run_is_recorded(
        tmp_path: Path, http_server: RecordingServer, status: int, reason: str) -> None:
    """The server's message is kept in the stored error, but not the database password it
    echoes (the trace store redacts URL passwords)."""
    message = f"status {status}: upstream postgresql://svc:Hunter2-db@10.0.0.5/app unavailable"
    http_server.reply(*[Reply(status, {"error": {"message": message}}) for _ in range(3)])
    entry = ModelEntry(model="openai/broken-model", api_base=f"{http_server.url}/v1")
    detail, error = _run(tmp_path, _router([entry]))
    _assert_nothing_lost(detail, error, "'large'", "broken-model", reason)
    assert len(http_server.chat_requests()) == 3  # retried up to max_attempts, then failed
    assert "upstream postgresql://svc:[REDACTED]@10.0.0.5/app" in (detail.summary.error or "")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("traces.db*"))
    assert b"Hunter2-db" not in stored
