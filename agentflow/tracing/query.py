"""Reading the trace store: the runs list, one run with its spans, one span's full payload.

Used by ``agentflow traces`` and the trace UI. Readers never block the writers (WAL), and never
write: the file is opened read-only (``mode=ro``), with no schema creation, no journal-mode switch
and no migration, so a store on a read-only disk or in a folder the reader may not write reads as
well as any. A run left ``running`` by a process that is gone (killed, crashed, power cut) reads
as ``incomplete``: its process is not alive on this host, or its heartbeat stopped more than
``STALE_S`` seconds ago.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentflow.errors import ConfigError, InputError
from agentflow.tracing.feedback import FEEDBACK_FIELDS, Feedback, feedback_row
from agentflow.tracing.payloads import CheckPayload, RetrievalPayload, RunPayload
from agentflow.tracing.spans import SpanRecord

log = logging.getLogger("agentflow.tracing")

SortKey = Literal["time", "latency", "cost"]
SORT_COLUMNS: dict[str, str] = {"time": "started", "latency": "duration_s", "cost": "cost"}
RUN_STATUSES = ("running", "ok", "error", "incomplete")
STALE_S = 60.0


class TraceNotFoundError(InputError):
    """No run (or span) with the given id in the trace store."""


@dataclass(slots=True)
class RunSummary:
    """One row of the runs list."""

    run_id: str
    workflow: str
    status: str
    started: float
    ended: float | None
    duration_s: float | None
    error: str | None
    spans: int
    nodes: int
    errors: int
    model_calls: int
    tokens: int
    cost: float | None
    thread_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """Where the run came from and what it was part of: ``origin`` (``run``, ``eval``, ``test``,
    ``serve``, ``python``), ``variant`` of an A/B test, anything the caller passed."""
    feedback_up: int = 0
    feedback_down: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunDetail:
    """A run with its declared graph, inputs, final state and every span (payloads left out)."""

    summary: RunSummary
    inputs: Any
    output: Any
    graph: Any
    spans: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary.to_dict(), "inputs": self.inputs, "output": self.output,
                "graph": self.graph, "spans": self.spans}


_RUN_FIELDS = ("run_id, workflow, status, started, ended, duration_s, error, spans, nodes, errors, "
               "model_calls, tokens, cost, thread_id, host, pid, heartbeat")
SPAN_FIELDS = ("seq", "span_id", "parent_id", "kind", "name", "step_type", "start", "end",
               "status", "error", "branch", "pass_index", "item_index", "summary")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def open_readonly(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to an existing trace database; raises :class:`TraceNotFoundError`
    when the file holds no traces yet, :class:`~agentflow.errors.ConfigError` when it cannot be
    read.

    ``mode=ro`` never creates the file nor changes it. Where the folder is not writable, SQLite
    cannot make the shared-memory file a WAL reader needs; the file is then read as immutable
    (nobody can be writing it there), which misses only what a crashed writer left in its
    write-ahead log, said in a warning.
    """
    uri = path.resolve().as_uri()
    try:
        conn = _probe(sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout,
                                      check_same_thread=False))
    except sqlite3.OperationalError as exc:
        if not _cannot_share(exc):
            raise _unreadable(path, exc) from exc
        if Path(f"{path}-wal").exists():
            log.warning("trace store %s: its folder is read-only, so its write-ahead log %s-wal "
                        "cannot be read; runs written last before a crash may be missing",
                        path, path)
        try:
            conn = _probe(sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True,
                                          timeout=timeout, check_same_thread=False))
        except sqlite3.Error as again:
            raise _unreadable(path, again) from again
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from exc
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA query_only = 1")
    tables = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('runs', 'spans')")}
    if tables != {"runs", "spans"}:
        conn.close()
        raise TraceNotFoundError(f"no traces at {str(path)!r} yet; run a workflow first")
    return conn


def _probe(conn: sqlite3.Connection) -> sqlite3.Connection:
    """``conn``, once it has read the schema: SQLite opens files lazily, so failures show here."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _cannot_share(exc: sqlite3.OperationalError) -> bool:
    """Whether a read-only open failed because the WAL's shared-memory file cannot be made."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or "readonly" in text or (
        "unable to open" in text)


def _unreadable(path: Path, exc: BaseException) -> ConfigError:
    return ConfigError(f"cannot read the trace store {str(path)!r}: {exc}; is it a trace "
                       "database (made by agentflow), and readable?")


class TraceReader:
    """Read-only access to a trace store file (it never writes, nor needs to be able to).

    >>> reader = TraceReader(".agentflow/traces.db")
    >>> [r.run_id for r in reader.runs(workflow="rag", status="error", sort="cost")]
    """

    def __init__(self, path: str | Path = ".agentflow/traces.db") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TraceNotFoundError(
                f"no traces at {str(self.path)!r} yet; run a workflow first (runs are traced to "
                ".agentflow/traces.db by default) or pass --db PATH"
            )
        self._conn = open_readonly(self.path)
        self._host = socket.gethostname()
        self._extras: bool | None = None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -------------------------------------------------------------------------------------
    def runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        sort: SortKey = "time",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunSummary]:
        """Runs, newest (or slowest, or costliest) first, filtered by workflow, status and a tag
        (``"origin=eval"``, or ``"variant"`` for runs that have the tag at all)."""
        if sort not in SORT_COLUMNS:
            raise ValueError(f"unknown sort {sort!r}; valid: {', '.join(SORT_COLUMNS)}")
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(RUN_STATUSES)}")
        where, params = [], []
        if workflow:
            where.append("workflow = ?")
            params.append(workflow)
        if status in ("running", "incomplete"):
            where.append("status IN ('running', 'incomplete')")  # refined per row below
        elif status:
            where.append("status = ?")
            params.append(status)
        if tag:
            if not self._has_extras:
                return []  # a store written before tags existed has none
            key, eq, value = tag.partition("=")
            if eq:
                where.append("run_id IN (SELECT run_id FROM run_tags WHERE key = ? AND value = ?)")
                params += [key.strip(), value.strip()]
            else:
                where.append("run_id IN (SELECT run_id FROM run_tags WHERE key = ?)")
                params.append(key.strip())
        column = SORT_COLUMNS[sort]
        order = "DESC" if descending else "ASC"
        sql = (f"SELECT {_RUN_FIELDS} FROM runs {'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY {column} IS NULL, {column} {order}, started DESC LIMIT ? OFFSET ?")
        rows = self._conn.execute(sql, (*params, limit, offset)).fetchall()
        runs = [self._summary(row) for row in rows]
        self._add_extras(runs)
        return [r for r in runs if status is None or r.status == status]

    def tags(self, run_id: str) -> dict[str, str]:
        """A run's tags (``origin``, ``variant``, ...)."""
        if not self._has_extras:
            return {}
        rows = self._conn.execute("SELECT key, value FROM run_tags WHERE run_id = ? ORDER BY key",
                                  (self.resolve(run_id),))
        return {k: v for k, v in rows}

    def feedback(self, run_id: str | None = None) -> list[Feedback]:
        """The feedback on one run (or on every run), oldest first."""
        if not self._has_extras:
            return []
        if run_id is None:
            rows = self._conn.execute(f"SELECT {FEEDBACK_FIELDS} FROM feedback ORDER BY created, id")
        else:
            rows = self._conn.execute(
                f"SELECT {FEEDBACK_FIELDS} FROM feedback WHERE run_id = ? ORDER BY created, id",
                (self.resolve(run_id),))
        return [feedback_row(r) for r in rows]

    @property
    def _has_extras(self) -> bool:
        """Whether the file has the ``run_tags`` and ``feedback`` tables (readers never add them:
        a store last written by an older version has neither)."""
        if self._extras is None:
            found = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('run_tags', 'feedback')")}
            self._extras = found == {"run_tags", "feedback"}
        return self._extras

    def _add_extras(self, runs: list[RunSummary]) -> None:
        """Fill in the tags and feedback counts of ``runs`` (two queries for the whole list)."""
        if not runs or not self._has_extras:
            return
        by_id = {r.run_id: r for r in runs}
        marks = ", ".join("?" * len(by_id))
        for run_id, key, value in self._conn.execute(
                f"SELECT run_id, key, value FROM run_tags WHERE run_id IN ({marks})", list(by_id)):
            by_id[run_id].tags[key] = value
        for run_id, up, down in self._conn.execute(
                f"SELECT run_id, SUM(score > 0), SUM(score < 0) FROM feedback "
                f"WHERE run_id IN ({marks}) GROUP BY run_id", list(by_id)):
            by_id[run_id].feedback_up, by_id[run_id].feedback_down = int(up), int(down)

    def workflows(self) -> list[str]:
        """The names of the workflows with at least one run, sorted."""
        rows = self._conn.execute("SELECT DISTINCT workflow FROM runs ORDER BY workflow")
        return [r[0] for r in rows]

    def resolve(self, ref: str) -> str:
        """A full run id from an id, a unique prefix of one, or ``last``."""
        if ref in ("last", "latest"):
            row = self._conn.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            if row is None:
                raise TraceNotFoundError(f"no runs in {str(self.path)!r} yet")
            return str(row[0])
        rows = self._conn.execute("SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 2",
                                  (ref, ref + "\uffff")).fetchall()
        if not rows:
            raise TraceNotFoundError(f"no run {ref!r} in {str(self.path)!r}")
        if len(rows) > 1 and rows[0][0] != ref:
            raise TraceNotFoundError(f"run id prefix {ref!r} is ambiguous; give more characters")
        return str(rows[0][0])

    def summary(self, run_id: str) -> RunSummary:
        row = self._conn.execute(f"SELECT {_RUN_FIELDS} FROM runs WHERE run_id = ?",
                                 (self.resolve(run_id),)).fetchone()
        summary = self._summary(row)
        self._add_extras([summary])
        return summary

    def summaries(self, run_ids: Sequence[str]) -> dict[str, RunSummary]:
        """The summaries of many runs by full id, in three queries (ids not found are left out)."""
        out: dict[str, RunSummary] = {}
        ids = list(dict.fromkeys(run_ids))
        for start in range(0, len(ids), 500):  # within SQLite's limit on bound values
            part = ids[start:start + 500]
            marks = ", ".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT {_RUN_FIELDS} FROM runs WHERE run_id IN ({marks})", part).fetchall()
            found = [self._summary(row) for row in rows]
            self._add_extras(found)
            out.update((r.run_id, r) for r in found)
        return out

    def run(self, run_id: str, *, with_data: bool = False, with_spans: bool = True) -> RunDetail:
        """A run and its spans in start order; ``with_data`` adds each span's full payload."""
        run_id = self.resolve(run_id)
        row = self._conn.execute(
            f"SELECT {_RUN_FIELDS}, inputs, output, graph FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        summary = self._summary(row[:17])
        self._add_extras([summary])
        spans = self.spans(run_id, with_data=with_data, run_status=summary.status) if with_spans else []
        return RunDetail(summary, _loads(row[17]), _loads(row[18]), _loads(row[19]), spans)

    def spans(self, run_id: str, *, with_data: bool = False,
              run_status: str | None = None) -> list[dict[str, Any]]:
        """The spans of a run as dicts (``summary`` parsed; ``data`` too with ``with_data``)."""
        columns = ", ".join(f'"{c}"' for c in SPAN_FIELDS) + (", data" if with_data else "")
        rows = self._conn.execute(
            f"SELECT {columns} FROM spans WHERE run_id = ? ORDER BY start, seq", (run_id,))
        out = []
        for row in rows:
            span = dict(zip(SPAN_FIELDS, row, strict=False))
            span["summary"] = _loads(span["summary"]) or {}
            if with_data:
                span["data"] = _loads(row[len(SPAN_FIELDS)])
            if span["status"] == "running" and run_status in ("incomplete", "error", "ok"):
                span["status"] = "incomplete"
            out.append(span)
        return out

    def spans_json(self, run_id: str, *, run_status: str | None = None) -> str:
        """The spans of a run as one JSON array of rows in :data:`SPAN_FIELDS` order, built by
        SQLite (fast for runs of many thousands of spans). Span and parent ids are relative to the
        run: the run id prefix is cut (the run itself is ``""``), which halves the payload."""
        finished = run_status in ("incomplete", "error", "ok")
        cut = len(run_id) + 1

        def rel(col: str) -> str:
            return (f"CASE WHEN {col} = :run THEN '' WHEN substr({col}, 1, :n) = :run || '/' "
                    f"THEN substr({col}, :cut) ELSE {col} END")

        row = self._conn.execute(
            f"SELECT '[' || coalesce(group_concat(j, ','), '') || ']' FROM (SELECT json_array("
            f"seq, {rel('span_id')}, {rel('parent_id')}, kind, name, step_type, start, \"end\", "
            "CASE WHEN status = 'running' AND :finished THEN 'incomplete' ELSE status END, error, "
            "branch, pass_index, item_index, json(coalesce(summary, '{}'))) AS j "
            "FROM spans WHERE run_id = :run ORDER BY start, seq)",
            {"run": run_id, "n": cut, "cut": cut + 1, "finished": finished}).fetchone()
        return str(row[0])

    def span(self, run_id: str, seq: int) -> dict[str, Any]:
        """One span with its full payload."""
        columns = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
        row = self._conn.execute(f"SELECT {columns}, data FROM spans WHERE run_id = ? AND seq = ?",
                                 (run_id, seq)).fetchone()
        if row is None:
            raise TraceNotFoundError(f"run {run_id!r} has no span #{seq}")
        span = dict(zip(SPAN_FIELDS, row, strict=False))
        span["summary"] = _loads(span["summary"]) or {}
        span["data"] = _loads(row[-1])
        return span

    def children(self, run_id: str, span_id: str) -> list[dict[str, Any]]:
        """The direct child spans of a span, with their payloads, in start order."""
        columns = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
        rows = self._conn.execute(
            f"SELECT {columns}, data FROM spans WHERE run_id = ? AND parent_id = ? "
            "ORDER BY start, seq", (run_id, span_id))
        out = []
        for row in rows:
            span = dict(zip(SPAN_FIELDS, row, strict=False))
            span["summary"] = _loads(span["summary"]) or {}
            span["data"] = _loads(row[-1])
            out.append(span)
        return out

    def retrieval_hits(self, run_id: str) -> list[dict[str, Any]]:
        """Every hit of every retrieval span of a run, in order (for resolving citations)."""
        hits: list[dict[str, Any]] = []
        rows = self._conn.execute(
            "SELECT data FROM spans WHERE run_id = ? AND kind = 'retrieval' ORDER BY start, seq",
            (run_id,))
        for (text,) in rows:
            data = _loads(text)
            found = RetrievalPayload.from_data(data).hits if isinstance(data, dict) else None
            if isinstance(found, list):
                hits.extend(h for h in found if isinstance(h, dict))
        return hits

    def last_check(self, run_id: str, kind: str) -> dict[str, Any] | None:
        """The payload of the run's last check span of ``kind`` (``attribution``, ...), if any."""
        rows = self._conn.execute(
            "SELECT data FROM spans WHERE run_id = ? AND kind = 'check' ORDER BY start DESC, seq DESC",
            (run_id,))
        for (text,) in rows:
            data = _loads(text)
            if isinstance(data, dict) and CheckPayload.from_data(data).kind == kind:
                return data
        return None

    # helpers ----------------------------------------------------------------------------------
    def _summary(self, row: tuple[Any, ...] | None) -> RunSummary:
        if row is None:
            raise TraceNotFoundError(f"no such run in {str(self.path)!r}")
        (run_id, workflow, status, started, ended, duration, error, spans, nodes, errors,
         model_calls, tokens, cost, thread_id, host, pid, heartbeat) = row
        if status == "running" and self._gone(host, pid, heartbeat):
            status = "incomplete"
            error = error or "incomplete: the process writing this run stopped before it finished"
        if duration is None and ended is None and status == "running":
            duration = time.time() - started
        return RunSummary(run_id, workflow, status, started, ended, duration, error, spans, nodes,
                          errors, model_calls, tokens, cost, thread_id)

    def _gone(self, host: str | None, pid: int | None, heartbeat: float | None) -> bool:
        if host == self._host and pid is not None and not _alive(int(pid)):
            return True
        return heartbeat is not None and time.time() - heartbeat > STALE_S


def span_record(row: dict[str, Any], run_id: str) -> SpanRecord:
    """A stored span (from :meth:`TraceReader.spans` with data) as a :class:`SpanRecord`."""
    return SpanRecord(run_id, row["span_id"], row["parent_id"], row["kind"], row["name"],
                      row["step_type"] or "", row["start"], row["end"], row["status"],
                      row["error"], row["branch"], row["pass_index"], row["item_index"],
                      row.get("data") or {})


def run_records(detail: RunDetail) -> list[SpanRecord]:
    """A stored run as span records, its root span first (for re-export over OTLP)."""
    s = detail.summary
    data = RunPayload(inputs=detail.inputs, thread_id=s.thread_id, state=detail.output).to_data()
    root = SpanRecord(s.run_id, s.run_id, None, "run", s.workflow, "flow", s.started, s.ended,
                      s.status, s.error, data=data)
    return [root, *(span_record(row, s.run_id) for row in detail.spans)]
