"""Where runs are traced by default, and the hooks every run gets.

Every run is traced to ``.agentflow/traces.db`` under the project directory (the current directory
unless told otherwise). Environment variables change that without code:

- ``AGENTFLOW_TRACES=off`` turns tracing off (also ``0``, ``false``, ``no``);
- ``AGENTFLOW_TRACES_DB=/path/to/traces.db`` stores traces elsewhere;
- ``AGENTFLOW_OTLP_ENDPOINT=http://localhost:4318/v1/traces`` also exports every run over OTLP
  (``AGENTFLOW_OTEL=1`` does the same with the standard ``OTEL_EXPORTER_OTLP_*`` settings).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from agentflow.tracing.events import TraceHook
from agentflow.tracing.store import SQLiteTraceStore

TRACES_DB = Path(".agentflow") / "traces.db"
_OFF = {"0", "off", "false", "no", "none"}

_lock = threading.Lock()
_stores: dict[Path, SQLiteTraceStore] = {}
_otel: list[TraceHook] = []


def default_db_path(project_dir: str | Path | None = None,
                    environ: Mapping[str, str] | None = None) -> Path:
    """``$AGENTFLOW_TRACES_DB``, else ``<project_dir>/.agentflow/traces.db``."""
    env = os.environ if environ is None else environ
    override = env.get("AGENTFLOW_TRACES_DB")
    if override:
        return Path(override).expanduser()
    return Path(project_dir or Path.cwd()) / TRACES_DB


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``AGENTFLOW_TRACES`` says off."""
    env = os.environ if environ is None else environ
    return env.get("AGENTFLOW_TRACES", "on").strip().lower() not in _OFF


def shared_store(path: str | Path) -> SQLiteTraceStore:
    """The process-wide store of a database file: one writer thread per file, however many runs.

    It is flushed and closed at interpreter exit; call ``flush()`` to wait for the writes sooner.
    """
    key = Path(path).expanduser().resolve()
    with _lock:
        store = _stores.get(key)
        if store is None or store.closed:
            store = _stores[key] = SQLiteTraceStore(key)
        return store


def default_hooks(project_dir: str | Path | None = None) -> list[TraceHook]:
    """The trace hooks to add to every run: the project's SQLite store, and OTLP export when
    configured (see the module docs). Empty when tracing is off.

    >>> await flow.arun(inputs, hooks=default_hooks())
    """
    if not tracing_enabled():
        return []
    hooks: list[TraceHook] = [shared_store(default_db_path(project_dir))]
    endpoint = os.environ.get("AGENTFLOW_OTLP_ENDPOINT")
    if endpoint or os.environ.get("AGENTFLOW_OTEL", "").strip().lower() in ("1", "on", "true", "yes"):
        with _lock:
            if not _otel or getattr(_otel[0], "closed", False):
                from agentflow.tracing.otel import OTelExporter

                _otel[:] = [OTelExporter(endpoint=endpoint or None)]
            hooks.append(_otel[0])
    return hooks


def hooks_or_warn(what: str = "this run", project_dir: str | Path | None = None) -> list[TraceHook]:
    """:func:`default_hooks`, or none with a warning on stderr when the store cannot be opened
    (a read-only folder, say): the work goes on untraced rather than not at all."""
    from agentflow.errors import ConfigError

    try:
        return list(default_hooks(project_dir))
    except ConfigError as exc:
        print(f"agentflow: warning: tracing is off for {what}: {exc}", file=sys.stderr)
        return []


def flush_default_hooks(timeout: float = 30.0) -> None:
    """Wait until every shared store and exporter has written what it buffered."""
    with _lock:
        sinks = [*_stores.values(), *_otel]
    for sink in sinks:
        flush = getattr(sink, "flush", None)
        if callable(flush):
            flush(timeout)
