"""Tracing: events and hooks, the SQLite trace store, its reader, and OpenTelemetry export.

>>> from agentflow.tracing import SQLiteTraceStore
>>> store = SQLiteTraceStore(".agentflow/traces.db")
>>> await flow.arun(inputs, hooks=[store]); store.flush()

Names are imported on first use so that importing the events (every run does) stays cheap.
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

from typing import TYPE_CHECKING

_EXPORTS: dict[str, str] = {
    "Event": "agentflow.tracing.events",
    "EventCollector": "agentflow.tracing.events",
    "TraceHook": "agentflow.tracing.events",
    "SQLiteTraceStore": "agentflow.tracing.store",
    "TraceReader": "agentflow.tracing.query",
    "RunSummary": "agentflow.tracing.query",
    "RunDetail": "agentflow.tracing.query",
    "TraceNotFoundError": "agentflow.tracing.query",
    "SpanRecord": "agentflow.tracing.spans",
    "Sanitizer": "agentflow.tracing.sanitize",
    "default_hooks": "agentflow.tracing.defaults",
    "default_db_path": "agentflow.tracing.defaults",
    "shared_store": "agentflow.tracing.defaults",
    "flush_default_hooks": "agentflow.tracing.defaults",
    "hooks_or_warn": "agentflow.tracing.defaults",
    "tracing_enabled": "agentflow.tracing.defaults",
    "OTelExporter": "agentflow.tracing.otel",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from agentflow.tracing.defaults import (
        default_db_path,
        default_hooks,
        flush_default_hooks,
        hooks_or_warn,
        shared_store,
        tracing_enabled,
    )
    from agentflow.tracing.events import Event, EventCollector, TraceHook
    from agentflow.tracing.otel import OTelExporter
    from agentflow.tracing.query import RunDetail, RunSummary, TraceNotFoundError, TraceReader
    from agentflow.tracing.sanitize import Sanitizer
    from agentflow.tracing.spans import SpanRecord
    from agentflow.tracing.store import SQLiteTraceStore
