"""The trace hook contract, run against agentflow's own hooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow.testing.contracts import TraceHookContract
from agentflow.testing.tracing import RecordingHook
from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.events import EventCollector, TraceHook
from agentflow.tracing.query import run_records
from agentflow.tracing.spans import SpanRecord


class TestEventCollector(TraceHookContract):
    @pytest.fixture
    def hook(self) -> TraceHook:
        return EventCollector()


class TestRecordingHook(TraceHookContract):
    @pytest.fixture
    def hook(self) -> TraceHook:
        return RecordingHook()


class TestSQLiteTraceStore(TraceHookContract):
    """The default trace store: batches written by a background thread, read back from the file."""

    @pytest.fixture
    def hook(self, tmp_path: Path) -> Iterator[TraceHook]:
        store = SQLiteTraceStore(tmp_path / "traces.db")
        yield store
        store.close()

    def recorded(self, hook: SQLiteTraceStore, run_id: str) -> list[SpanRecord]:
        assert hook.flush(), "the store wrote what it held"
        with TraceReader(hook.path) as reader:
            return run_records(reader.run(run_id))
