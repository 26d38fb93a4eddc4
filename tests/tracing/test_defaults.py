"""Where runs are traced by default, and what every run gets attached."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.tracing import OTelExporter, SQLiteTraceStore
from agentflow.tracing.defaults import (
    default_db_path,
    default_hooks,
    flush_default_hooks,
    shared_store,
    tracing_enabled,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AGENTFLOW_TRACES", "AGENTFLOW_TRACES_DB", "AGENTFLOW_OTLP_ENDPOINT", "AGENTFLOW_OTEL"):
        monkeypatch.delenv(key, raising=False)


def test_default_hooks_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_db_path(tmp_path) == tmp_path / ".agentflow" / "traces.db"
    (hook,) = default_hooks(tmp_path)
    assert hook is shared_store(tmp_path / ".agentflow" / "traces.db")  # one writer per file
    assert (tmp_path / ".agentflow" / "traces.db").exists()
    monkeypatch.setenv("AGENTFLOW_TRACES_DB", str(tmp_path / "elsewhere.db"))
    assert default_db_path(tmp_path) == tmp_path / "elsewhere.db"
    monkeypatch.setenv("AGENTFLOW_TRACES", "off")
    assert not tracing_enabled() and default_hooks(tmp_path) == []
    hook.close()
    assert shared_store(tmp_path / ".agentflow" / "traces.db") is not hook  # reopened after close
    shared_store(tmp_path / ".agentflow" / "traces.db").close()


def test_an_otlp_endpoint_adds_the_opentelemetry_exporter(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLOW_OTLP_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    store, exporter = default_hooks(tmp_path)
    assert isinstance(store, SQLiteTraceStore) and isinstance(exporter, OTelExporter)
    assert default_hooks(tmp_path)[1] is exporter  # one exporter per process
    flush_default_hooks(timeout=5)
    store.close()


async def test_runs_with_the_default_hooks_land_in_the_project_store(tmp_path: Path) -> None:
    from agentflow.tracing import TraceReader

    from .demo import make_flow

    result = await make_flow().arun({"question": "hello"}, hooks=default_hooks(tmp_path))
    flush_default_hooks()
    with TraceReader(tmp_path / ".agentflow" / "traces.db") as reader:
        (run,) = reader.runs()
    assert (run.run_id, run.status, run.nodes) == (result.run_id, "ok", 2)
    shared_store(tmp_path / ".agentflow" / "traces.db").close()
