"""The SQLite trace store: every run and its spans in ``.agentflow/traces.db``.

Writes happen on the store's own thread, in batches, inside one ``BEGIN IMMEDIATE`` transaction
each, on a database in WAL mode: runs in many threads and processes can share one file, readers
(the UI, ``agentflow traces``) never block writers, and a batch (or, where a batch failed,
each run's part of it) is either fully there or not.

A span is written when it starts (unless it also finished within the same batch, then it is written
once, complete), so a run that crashes leaves its open spans behind. A run the store saw start
and never finish is marked ``incomplete`` when the store closes; a process killed outright leaves
``running`` behind, which readers show as ``incomplete`` once its process is gone or its heartbeat
is stale (see :mod:`agentflow.tracing.query`).

A batch that cannot be written whole never loses the runs around the one that failed: it is
written again run by run, and a row whose values cannot be stored (a lone surrogate, a value
SQLite refuses) is stored degraded: its text repaired, else its payload replaced by a marker. A
write that fails for the whole file (disk full, locked past the busy timeout) is held in memory
and retried with backoff. Every failure is logged with the run it hit (see
:class:`~agentflow.tracing.buffer.FailureLog`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow.errors import ConfigError
from agentflow.tracing.buffer import BackgroundSink, log
from agentflow.tracing.events import Event
from agentflow.tracing.payloads import SUMMARIZED, summarize, total_tokens
from agentflow.tracing.recovery import BatchRecovery, Statement, describe
from agentflow.tracing.sanitize import TRUNCATED_KEY, Sanitizer, _encode
from agentflow.tracing.spans import (
    FINISHED_SUFFIX,
    STARTED_SUFFIX,
    SpanAssembler,
    SpanRecord,
    span_kind,
)

SCHEMA_VERSION = 2
"""2 added ``run_tags`` and ``feedback``; a writer opening an older file adds them."""
HEARTBEAT_S = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    status      TEXT NOT NULL,
    started     REAL NOT NULL,
    ended       REAL,
    duration_s  REAL,
    error       TEXT,
    thread_id   TEXT,
    inputs      TEXT,
    output      TEXT,
    graph       TEXT,
    spans       INTEGER NOT NULL DEFAULT 0,
    nodes       INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    model_calls INTEGER NOT NULL DEFAULT 0,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost        REAL,
    host        TEXT,
    pid         INTEGER,
    heartbeat   REAL
);
CREATE INDEX IF NOT EXISTS runs_by_started ON runs (started);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, started);
CREATE TABLE IF NOT EXISTS spans (
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    span_id     TEXT NOT NULL,
    parent_id   TEXT,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    step_type   TEXT,
    start       REAL NOT NULL,
    end         REAL,
    status      TEXT NOT NULL,
    error       TEXT,
    branch      INTEGER,
    pass_index  INTEGER,
    item_index  INTEGER,
    summary     TEXT,
    data        TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS run_tags (
    run_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS run_tags_by_value ON run_tags (key, value);
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    score       INTEGER NOT NULL CHECK (score IN (-1, 1)),
    comment     TEXT,
    user_id     TEXT,
    source      TEXT NOT NULL,
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_run ON feedback (run_id, created);
"""

_SPAN_COLUMNS = ("run_id", "seq", "span_id", "parent_id", "kind", "name", "step_type", "start",
                 "end", "status", "error", "summary", "data", "branch", "pass_index", "item_index")
_NO_TEXT, _NO_TIME, _NO_INDEX = "", -1.0, -1
"""What the store binds for a missing parent, end, error and branch / pass / item index, turned
back into NULL by the statement: Python's sqlite3 binds None through its adapter look-up, which
costs as much as the rest of a row's parameters together; these values never occur otherwise."""
_NULLABLE = {"parent_id": _NO_TEXT, "end": _NO_TIME, "error": _NO_TEXT, "branch": _NO_INDEX,
             "pass_index": _NO_INDEX, "item_index": _NO_INDEX}
_ROW = "({})".format(", ".join(
    f"NULLIF(?, {_NULLABLE[c]!r})" if c in _NULLABLE else "?" for c in _SPAN_COLUMNS))
_INSERT_SPAN = f"INSERT INTO spans ({', '.join(_SPAN_COLUMNS)}) VALUES {_ROW}"
_INSERT_SPAN_OR_IGNORE = _INSERT_SPAN.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
"""Used only when a batch collides with rows already there (two stores given the same run): a
plain INSERT is cheaper, as SQLite then checks the key while inserting rather than before."""
_WIDTH = len(_SPAN_COLUMNS)
_CHUNK = 60
"""Rows per multi-row INSERT: one statement (one step, one release of the GIL) per 60 spans rather
than one per span; 60 x 16 columns stays under SQLite's oldest limit of 999 variables."""
_INSERT_SPANS_CHUNK = (f"INSERT INTO spans ({', '.join(_SPAN_COLUMNS)}) VALUES "
                       + ", ".join([_ROW] * _CHUNK))
_FINISH_SPAN = (f"UPDATE spans SET end = ?, status = ?, error = NULLIF(?, {_NO_TEXT!r}), "
                "summary = ?, data = ? WHERE run_id = ? AND seq = ?")

_INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow, status, started, thread_id, inputs, graph, host, "
    "pid, heartbeat) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO NOTHING")
_FINISH_RUN = (
    "INSERT INTO runs (run_id, workflow, status, started, ended, duration_s, error, output,"
    " heartbeat) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
    "status = excluded.status, ended = excluded.ended, "
    "duration_s = excluded.ended - runs.started, error = excluded.error, "
    "output = excluded.output, heartbeat = excluded.heartbeat")
_INSERT_TAG = ("INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?) "
               "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value")
_RUN_STATS = ("UPDATE runs SET spans = ?, nodes = ?, errors = ?, model_calls = ?, tokens = ?, "
              "cost = ? WHERE run_id = ?")
_STATEMENTS = {
    _INSERT_SPAN_OR_IGNORE: Statement("a span", 0, {10: False, 11: True, 12: True}),
    _FINISH_SPAN: Statement("a span's end", 5, {2: False, 3: True, 4: True}),
    _INSERT_RUN: Statement("a run", 0, {4: True, 5: True}),
    _FINISH_RUN: Statement("a run's end", 0, {5: False, 6: True}),
    _RUN_STATS: Statement("a run's totals", 6),
    _INSERT_TAG: Statement("a run's tag", 0, {2: False}),
}
"""How a batch that failed whole is written again (see :mod:`agentflow.tracing.recovery`)."""
_ENCODE_ERRORS = (TypeError, ValueError, RecursionError)


def connect(path: str | Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to a trace database in WAL mode, its schema created if missing."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")  # one process creates the schema, the others wait
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(
            f"cannot open the trace store {str(path)!r}: {exc}; set AGENTFLOW_TRACES_DB to a "
            "writable file, or AGENTFLOW_TRACES=off to run without traces"
        ) from exc
    return conn


def _insert(conn: sqlite3.Connection, values: list[Any]) -> None:
    """Insert span rows given as one flat list of their values, ``_CHUNK`` rows per statement."""
    step = _CHUNK * _WIDTH
    n = len(values)
    full = n - n % step
    for i in range(0, full, step):
        conn.execute(_INSERT_SPANS_CHUNK, values[i:i + step])
    if full < n:
        conn.executemany(_INSERT_SPAN, _rows(values[full:]))


def _rows(values: list[Any]) -> list[list[Any]]:
    """A flat list of span row values cut into rows."""
    return [values[i:i + _WIDTH] for i in range(0, len(values), _WIDTH)]


_START, _FINISH, _SINGLE = "start", "finish", "single"
_ROLES: dict[str, tuple[str, str]] = {}
"""Event kind -> (what the event does to its span, the span's kind), filled by :func:`_role`."""


def _role(event_kind: str) -> tuple[str, str]:
    """``node_started`` -> (_START, "node"), ``node_finished`` -> (_FINISH, "node"),
    ``model_call`` -> (_SINGLE, "model_call"): one dict look-up per event instead of suffix tests."""
    if event_kind.endswith(STARTED_SUFFIX):
        role = (_START, span_kind(event_kind))
    elif event_kind.endswith(FINISHED_SUFFIX):
        role = (_FINISH, span_kind(event_kind))
    else:
        role = (_SINGLE, event_kind)
    if len(_ROLES) < 256:  # event kinds are a small set; custom ones are not cached
        _ROLES[event_kind] = role
    return role


_ERROR_KINDS = frozenset({"node", "model_call", "retrieval", "check"})
"""Kinds of spans whose failures count as the run's errors."""


@dataclass(slots=True)
class _RunStats:
    spans: int = 0
    nodes: int = 0
    errors: int = 0
    model_calls: int = 0
    tokens: int = 0
    cost: float | None = None
    dirty: bool = True

    def count(self, kind: str, status: str, data: dict[str, Any]) -> None:
        """Count a finished span of ``kind`` with ``status`` and (merged) ``data``; the caller
        marks the run ``dirty``."""
        self.spans += 1
        if kind == "node":
            self.nodes += 1
        elif kind == "model_call":
            self.model_calls += 1
            self.tokens += total_tokens(data.get("tokens")) or 0
            cost = data.get("cost")
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                self.cost = (self.cost or 0.0) + float(cost)
        if status == "error" and kind in _ERROR_KINDS:
            self.errors += 1


class SQLiteTraceStore(BackgroundSink):
    """A trace hook that records runs in a SQLite file (WAL), in batches, off the hot path.

    >>> store = SQLiteTraceStore(".agentflow/traces.db")
    >>> await flow.arun(inputs, hooks=[store])
    >>> store.close()  # or store.flush() to wait for the writes and keep going

    One store serves any number of concurrent runs; any number of stores (in threads or processes)
    may write the same file. Payloads are redacted and capped by ``sanitizer``
    (see :class:`~agentflow.tracing.sanitize.Sanitizer`).
    """

    def __init__(
        self,
        path: str | Path = ".agentflow/traces.db",
        *,
        sanitizer: Sanitizer | None = None,
        flush_interval: float = 0.1,
        batch_size: int = 2_000,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.sanitizer = sanitizer or Sanitizer()
        # fails here, in the caller, when the file is unusable
        self._conn = connect(self.path, timeout=busy_timeout)
        self._assembler = SpanAssembler()
        self._written: dict[tuple[str, str], tuple[int, SpanRecord]] = {}
        self._seq: dict[str, int] = {}
        self._stats: dict[str, _RunStats] = {}
        self._active: set[str] = set()
        self._host, self._pid = socket.gethostname(), os.getpid()
        self._last_beat = 0.0
        super().__init__(flush_interval=flush_interval, batch_size=batch_size,
                         name="agentflow-trace-store")
        self._recovery = BatchRecovery(name=f"trace store {str(self.path)!r}",
                                       statements=_STATEMENTS, transaction=self._transaction,
                                       failures=self.failures)

    def __repr__(self) -> str:
        return f"SQLiteTraceStore({str(self.path)!r})"

    # batches ----------------------------------------------------------------------------------
    def process(self, events: list[Event]) -> None:
        """Turn a batch of events into span rows, run rows and run totals, written in one go.

        Most spans start and finish within one batch: those are paired here, straight from their
        two events, into one complete row (building a :class:`SpanRecord` per span, then a tuple
        from it, cost about as much as inserting the row). Finishes of spans opened in an earlier
        batch, and finishes whose start was never seen, go through the :class:`SpanAssembler`;
        spans still open at the end of the batch are written open and handed to it.
        """
        runs: list[tuple[str, tuple[Any, ...]]] = []
        # spans started in this batch, in start order: [seq, kind, start event, finish event,
        # data of the two]
        started: dict[tuple[str, str], list[Any]] = {}
        singles: list[Any] = []  # the values of the rows of single events (and late finishes)
        finished: list[tuple[int, SpanRecord]] = []
        ended: list[str] = []
        open_spans, seqs, stats, roles = self._assembler.open, self._seq, self._stats, _ROLES
        # the totals of the run of the last event, looked up again when the run changes (the
        # first _RunStats is a placeholder: no run_id is None)
        st_run, st = None, _RunStats()
        for event in events:
            kind = event.kind
            if kind == "run_started" or kind == "run_finished":
                st_run = None  # a run started (again) gets new totals
                if kind == "run_started":
                    runs.append(self._run_started(event))
                    runs += self._tags(event)
                else:
                    runs.append(self._run_finished(event))
                    ended.append(event.run_id)
                continue
            role, kind = roles.get(kind) or _role(kind)
            run_id = event.run_id
            if role == _START:
                key = (run_id, event.span_id)
                open_spans.pop(key, None)  # a span started again replaces the one open before
                seq = seqs.get(run_id, 0)
                seqs[run_id] = seq + 1
                started[key] = [seq, kind, event, None, None]
                continue
            if run_id != st_run:
                st_run, st = run_id, stats.get(run_id)
                if st is None:
                    st = stats[run_id] = _RunStats()
                st.dirty = True
            if role == _FINISH:
                key = (run_id, event.span_id)
                entry = started.get(key)
                if entry is not None and entry[3] is None:  # opened in this batch: one row
                    data = entry[2].data
                    if event.data:  # a new dict: the events' own payloads are never changed
                        data = {**data, **event.data} if data else event.data
                    entry[3], entry[4] = event, data
                    st.count(kind, event.status or "ok", data)
                    continue
                span, was_open = self._assembler.add(event)
                st.count(span.kind, span.status, span.data)
                if was_open and key in self._written:  # written open by an earlier batch
                    finished.append(self._written.pop(key))
                else:
                    singles += self._span_row(self._next_seq(run_id), span)
                continue
            # a single event: a finished span of its own (a model call, a retrieval, a check)
            data = event.data
            duration = data.get("duration_s")
            end = event.time + float(duration) if isinstance(duration, (int, float)) else event.time
            status = event.status or "ok"
            branch, pass_index, item_index = event.branch, event.pass_index, event.item_index
            if branch is None or pass_index is None or item_index is None:
                # child spans of a node take its branch, pass and item indices (while it is open)
                parent_key = (run_id, event.parent_id or "")
                entry = started.get(parent_key)
                if entry is None:
                    parent: Any = open_spans.get(parent_key)
                else:
                    parent = entry[2] if entry[3] is None else None
                if parent is not None:
                    if branch is None:
                        branch = parent.branch
                    if pass_index is None:
                        pass_index = parent.pass_index
                    if item_index is None:
                        item_index = parent.item_index
            st.count(kind, status, data)
            seq = seqs.get(run_id, 0)
            seqs[run_id] = seq + 1
            error, summary, text = self._payload(run_id, kind, data, event.error)
            singles += (run_id, seq, event.span_id, event.parent_id or _NO_TEXT, kind, event.name,
                        event.step_type, event.time, end, status, error or _NO_TEXT, summary, text,
                        _NO_INDEX if branch is None else branch,
                        _NO_INDEX if pass_index is None else pass_index,
                        _NO_INDEX if item_index is None else item_index)
        rows: list[Any] = []  # the values of all rows, one after the other (see _insert)
        for key, (seq, kind, start, finish, data) in started.items():
            if finish is None:  # still open: written as it is, finished by a later batch
                span = SpanRecord.opened(start)
                open_spans[key] = span
                self._written[key] = (seq, span)
                rows += self._span_row(seq, span)
                continue
            error, summary, text = self._payload(start.run_id, kind, data, finish.error)
            branch, pass_index, item_index = start.branch, start.pass_index, start.item_index
            rows += (start.run_id, seq, start.span_id, start.parent_id or _NO_TEXT, kind,
                     start.name, start.step_type, start.time, finish.time, finish.status or "ok",
                     error or _NO_TEXT, summary, text, _NO_INDEX if branch is None else branch,
                     _NO_INDEX if pass_index is None else pass_index,
                     _NO_INDEX if item_index is None else item_index)
        rows += singles
        self._write(runs, rows, finished)
        for run_id in ended:
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        """Drop the bookkeeping of a finished run."""
        self._seq.pop(run_id, None)
        self._stats.pop(run_id, None)
        self._assembler.forget(run_id)
        for key in [k for k in self._written if k[0] == run_id]:
            del self._written[key]

    def _next_seq(self, run_id: str) -> int:
        n = self._seq.get(run_id, 0)
        self._seq[run_id] = n + 1
        return n

    def _run_started(self, event: Event) -> tuple[str, tuple[Any, ...]]:
        run_id = event.run_id
        self._active.add(run_id)
        self._stats[run_id] = _RunStats()
        return (
            _INSERT_RUN,
            (run_id, event.name, event.time, event.data.get("thread_id"),
             self._dumps(run_id, "inputs", event.data.get("inputs", {})),
             self._dumps(run_id, "graph", event.data.get("graph")),
             self._host, self._pid, time.time()),
        )

    def _tags(self, event: Event) -> list[tuple[str, tuple[Any, ...]]]:
        tags = event.data.get("tags") or {}
        return [(_INSERT_TAG, (event.run_id, str(k), self._tag_value(event.run_id, v)))
                for k, v in tags.items()]

    def _tag_value(self, run_id: str, value: Any) -> str:
        try:
            return self.sanitizer.text(str(value))
        except Exception as exc:  # a value the sanitizer chokes on: say so instead
            return self._unstorable(run_id, "a tag", exc)

    def _run_finished(self, event: Event) -> tuple[str, tuple[Any, ...]]:
        run_id = event.run_id
        self._active.discard(run_id)
        state = event.data.get("state")
        error = None
        if event.error:
            try:
                error = self.sanitizer.text(event.error)
            except Exception as exc:  # an error text the sanitizer chokes on: say so instead
                error = self._unstorable(run_id, "the run's error", exc)
        return (
            _FINISH_RUN,
            (run_id, event.name, event.status or "ok", event.time, event.time, error,
             self._dumps(run_id, "output", state) if state is not None else None, time.time()),
        )

    def _dumps(self, run_id: str, what: str, value: Any) -> str:
        """``sanitizer.dumps(value)``, or a marker saying why it could not be turned into JSON."""
        try:
            return self.sanitizer.dumps(value)
        except Exception as exc:
            return _encode({TRUNCATED_KEY: self._unstorable(run_id, f"the run's {what}", exc)})

    def _unstorable(self, run_id: str, what: str, exc: BaseException) -> str:
        """Log that ``what`` could not be stored as it was; the marker stored instead."""
        why = describe(exc)
        self.failures.report(f"{type(exc).__name__} preparing a payload",
                             f"{what} could not be prepared for storage ({why}); "
                             "stored as a marker instead", run_id=run_id)
        return f"[unstorable payload: {why}]"

    def _payload(self, run_id: str, kind: str, data: dict[str, Any],
                 error: str | None) -> tuple[str | None, str, str]:
        """A span's error, summary and data as stored: redacted, capped, and never raising (a
        payload that cannot be prepared is stored as a marker that says why)."""
        try:
            return self._prepare(kind, data, error)
        except Exception as exc:
            marker = self._unstorable(run_id, f"the payload of a {kind} span", exc)
            return (marker if error else None), "{}", _encode({TRUNCATED_KEY: marker})

    def _prepare(self, kind: str, data: dict[str, Any],
                 error: str | None) -> tuple[str | None, str, str]:
        """A span's error, summary and data as stored: redacted and capped.

        The summary holds a few of the data's values under fixed keys: when the data needs no
        redaction neither does the summary, else the summary is taken from the redacted data.
        """
        s = self.sanitizer
        error = s.text(error) if error else None
        if not data:
            return error, "{}", "{}"
        text = s.dumps_if_clean(data)
        if text is not None:
            if kind not in SUMMARIZED:
                return error, "{}", text
            summary = summarize(kind, data)
            if not summary:
                return error, "{}", text
            try:
                return error, _encode(summary), text
            except _ENCODE_ERRORS:  # NaN in the summary: the careful path turns it into text
                pass
        cleaned = s.clean(data)
        summary = summarize(kind, cleaned) if isinstance(cleaned, dict) else {}
        return error, s.dumps(summary, cleaned=True), s.dumps(cleaned, cleaned=True)

    def _span_row(self, seq: int, span: SpanRecord) -> tuple[Any, ...]:
        error, summary, data = self._payload(span.run_id, span.kind, span.data, span.error)
        end, branch, pass_index, item_index = (span.end, span.branch, span.pass_index,
                                               span.item_index)
        return (span.run_id, seq, span.span_id, span.parent_id or _NO_TEXT, span.kind, span.name,
                span.step_type, span.start, _NO_TIME if end is None else end, span.status,
                error or _NO_TEXT, summary, data, _NO_INDEX if branch is None else branch,
                _NO_INDEX if pass_index is None else pass_index,
                _NO_INDEX if item_index is None else item_index)

    def _write(self, runs: list[tuple[str, tuple[Any, ...]]], rows: list[Any],
               finished: list[tuple[int, SpanRecord]]) -> None:
        """Write a batch in one transaction; ``rows`` are the values of the new span rows, one
        row after the other."""
        updates = []
        for seq, span in finished:
            error, summary, data = self._payload(span.run_id, span.kind, span.data, span.error)
            updates.append((span.end, span.status, error or _NO_TEXT, summary, data, span.run_id,
                            seq))
        stats = self._dirty_stats()

        def write(conn: sqlite3.Connection) -> None:
            for sql, params in runs:
                conn.execute(sql, params)
            try:
                _insert(conn, rows)
            except sqlite3.IntegrityError:  # rows of this run are there already: keep those
                conn.executemany(_INSERT_SPAN_OR_IGNORE, _rows(rows))
            conn.executemany(_FINISH_SPAN, updates)
            conn.executemany(_RUN_STATS, stats)

        recovery = self._recovery
        recovery.retry()
        if not recovery.held:
            try:
                self._transaction(write)
                return
            except Exception as exc:  # written again below, run by run, row by row
                log.debug("trace store %s: a batch failed whole (%s); writing it run by run",
                          self.path, describe(exc))
        recovery.write(recovery.units([
            *runs, *((_INSERT_SPAN_OR_IGNORE, row) for row in _rows(rows)),
            *((_FINISH_SPAN, u) for u in updates), *((_RUN_STATS, st) for st in stats)]))

    def _dirty_stats(self) -> list[tuple[Any, ...]]:
        out = []
        for run_id, st in self._stats.items():
            if st.dirty:
                st.dirty = False
                out.append((st.spans, st.nodes, st.errors, st.model_calls, st.tokens, st.cost,
                            run_id))
        return out

    def _transaction(self, write: Any, attempts: int = 5) -> None:
        conn = self._conn
        for attempt in range(attempts):
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            try:
                write(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error as exc:  # the original error says more
                        log.debug("trace store %s: rollback failed: %s", self.path, exc)
                raise
            return

    # liveness and the end -------------------------------------------------------------------
    def tick(self) -> None:
        self._recovery.retry()
        now = time.time()
        if self._active and now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            active = [(now, r) for r in self._active]
            self._transaction(lambda c: c.executemany(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ?", active))

    def finalize(self) -> None:
        """Mark what never finished as incomplete: runs still active and their open spans."""
        try:
            self._recovery.retry(force=True)
            self._mark_incomplete()
        finally:
            self._recovery.drop_held("the store closed while the file took no writes")
            self._conn.close()

    def _mark_incomplete(self) -> None:
        message = "incomplete: the trace store closed before the run finished"
        stale = [(message, span.run_id, seq) for seq, span in self._written.values()
                 if span.run_id in self._active]
        runs = [(message, r) for r in self._active]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE spans SET status = 'incomplete', error = ? "
                             "WHERE run_id = ? AND seq = ? AND end IS NULL", stale)
            conn.executemany("UPDATE runs SET status = 'incomplete', error = ? "
                             "WHERE run_id = ? AND status = 'running'", runs)

        if stale or runs:
            log.warning("trace store %s: %d run(s) did not finish; stored as incomplete",
                        self.path, len(runs))
            self._transaction(write)
        self._active.clear()
