"""When a batch of trace writes fails: written again run by run, degraded row by row, held back.

The trace store writes a batch in one transaction (fast, and all or nothing). When that fails,
:class:`BatchRecovery` takes over, so one bad run never costs the others their traces:

- the batch is cut into one :class:`Unit` per run, each written in a transaction of its own;
- within a run, a row whose values cannot be stored (a lone surrogate in a string, a value SQLite
  refuses) is stored degraded: its text repaired, else its payloads replaced by a marker that says
  why (the viewer shows it with a "truncated" badge), else left out; the run is still recorded;
- a failure of the file itself (disk full, locked past the busy timeout, read-only) holds the
  run's writes in memory, tried again with backoff, in order per run, up to a bound;
- every failure is logged through the sink's :class:`~agentflow.tracing.buffer.FailureLog`, with
  the run it hit: the first of each kind in full, the repeats counted.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentflow.tracing.buffer import FailureLog, log
from agentflow.tracing.sanitize import TRUNCATED_KEY, _encode

MAX_HELD_ROWS = 100_000
"""Rows held back while the file takes no writes; past this the oldest are dropped (logged)."""
MAX_ATTEMPTS = 10
"""Tries of one run's held-back writes (backoff 0.2 s doubling to 5 s: about half a minute)."""

_SURROGATES = re.compile("[\ud800-\udfff]")
_FILE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY",
                "SQLITE_CANTOPEN", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_NOMEM")
_FILE_ERROR_WORDS = ("locked", "busy", "full", "disk", "i/o", "readonly", "read-only",
                     "unable to open", "malformed", "not a database", "out of memory")


@dataclass(frozen=True, slots=True)
class Statement:
    """What the recovery needs to know of one SQL statement of the store."""

    what: str
    """What it writes, for messages: ``"a span"``."""
    run_id_at: int
    """The position of the run id among its parameters."""
    payloads: dict[int, bool] = field(default_factory=dict)
    """The positions of its payload values, replaced by markers when the row cannot be stored
    (True: the column holds JSON text; False: plain text such as an error message)."""


@dataclass(slots=True)
class Unit:
    """What one batch writes for one run, statement by statement, in order."""

    run_id: str
    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)
    attempts: int = 0


def file_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the file takes no write now (full, locked, read-only, broken),
    rather than that one row's values cannot be stored."""
    if isinstance(exc, (OSError, MemoryError)):
        return True
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(
            exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_FILE_ERRORS):
        return True
    text = str(exc).lower()
    return any(word in text for word in _FILE_ERROR_WORDS)


def describe(exc: BaseException) -> str:
    """``UnicodeEncodeError: ...`` in at most 300 characters, itself storable."""
    return _SURROGATES.sub("\ufffd", f"{type(exc).__name__}: {exc}")[:300]


def repaired(params: Sequence[Any]) -> list[Any] | None:
    """``params`` with lone surrogates in their strings replaced by U+FFFD (JSON text stays
    valid JSON); None when no string held one."""
    out, changed = list(params), False
    for i, value in enumerate(out):
        if isinstance(value, str):
            fixed = _SURROGATES.sub("\ufffd", value)
            if fixed != value:
                out[i], changed = fixed, True
    return out if changed else None


def marked(statement: Statement, params: Sequence[Any], why: str) -> list[Any] | None:
    """``params`` with the statement's payloads replaced by markers that say why; None for a
    statement without payloads."""
    if not statement.payloads:
        return None
    out = list(params)
    text = f"[unstorable payload: {why}]"
    for i, is_json in statement.payloads.items():
        if out[i] is not None and out[i] != "":  # no payload (no error) stays none
            out[i] = _encode({TRUNCATED_KEY: text}) if is_json else text
    return out


class BatchRecovery:
    """Writes what a failed batch held, run by run and row by row; holds back what the file
    took none of. Used on the store's worker thread only."""

    def __init__(self, *, name: str, statements: dict[str, Statement],
                 transaction: Callable[[Callable[[sqlite3.Connection], None]], None],
                 failures: FailureLog) -> None:
        self.name = name
        self._statements = statements
        self._transaction = transaction
        self.failures = failures
        self.held: list[Unit] = []
        self._retry_at = 0.0

    def units(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Unit]:
        """A batch's statements cut into one :class:`Unit` per run, in order."""
        units: dict[str, Unit] = {}
        for sql, params in statements:
            run_id = params[self._statements[sql].run_id_at]
            unit = units.get(run_id)
            if unit is None:
                unit = units[run_id] = Unit(run_id)
            unit.statements.append((sql, params))
        return list(units.values())

    def write(self, units: list[Unit]) -> None:
        """Write each run's part in a transaction of its own, so a failure keeps the other
        runs; a run with writes held back queues behind them (their order is kept), and once
        the file takes no writes at all, the rest is held back without trying."""
        held = {u.run_id for u in self.held}
        for i, unit in enumerate(units):
            if unit.run_id in held:
                self._hold(unit, None)
                continue
            try:
                self._transaction(functools.partial(self._write_unit, unit=unit))
            except Exception as exc:
                self._hold(unit, exc)
                held.add(unit.run_id)
                if file_error(exc):  # the rest would fail alike: counted as tried
                    for rest in units[i + 1:]:
                        self._hold(rest, None if rest.run_id in held else exc)
                    return

    def retry(self, *, force: bool = False) -> None:
        """Try the held-back writes again once their backoff is over (or at once: ``force``)."""
        if not self.held or (not force and time.monotonic() < self._retry_at):
            return
        units, self.held = self.held, []
        rows = sum(len(u.statements) for u in units)
        self.write(units)
        if not self.held:
            log.info("%s: stored %d row(s) held back by an earlier failure", self.name, rows)

    def drop_held(self, why: str) -> None:
        """Give up on what is held back (the store closes), saying what was lost."""
        for unit in self.held:
            self._drop(unit, why)
        self.held.clear()

    # a run's rows ------------------------------------------------------------------------------
    def _write_unit(self, conn: sqlite3.Connection, unit: Unit) -> None:
        """Each statement of a run, degraded where its values cannot be stored: the text
        repaired, else the payloads replaced by markers, else the row left out (logged); a
        failure of the file itself aborts the run's transaction."""
        for sql, params in unit.statements:
            try:
                conn.execute(sql, params)
            except Exception as exc:
                if file_error(exc):
                    raise
                self._degrade(conn, unit.run_id, sql, params, exc)

    def _degrade(self, conn: sqlite3.Connection, run_id: str, sql: str, params: Sequence[Any],
                 exc: Exception) -> None:
        statement = self._statements[sql]
        why, kind = describe(exc), f"{type(exc).__name__} writing {statement.what}"
        fixed = repaired(params)
        forms = ((fixed, "with its text repaired (lone surrogates replaced)"),
                 (marked(statement, fixed or params, why), "with its payload replaced by a marker"))
        for form, how in forms:
            if form is None:
                continue
            try:
                conn.execute(sql, form)
            except Exception as again:
                if file_error(again):
                    raise
                continue
            self.failures.report(kind, f"{statement.what} could not be stored as it was ({why}); "
                                 f"stored {how}", run_id=run_id)
            return
        self.failures.report(kind, f"{statement.what} could not be stored ({why}); left out",
                             run_id=run_id, level=logging.ERROR)

    # held back ---------------------------------------------------------------------------------
    def _hold(self, unit: Unit, exc: BaseException | None) -> None:
        """Keep a run's writes for a later try; past :data:`MAX_ATTEMPTS` tries, or past
        :data:`MAX_HELD_ROWS` rows held, the oldest are dropped (logged)."""
        if exc is not None:
            unit.attempts += 1
            if unit.attempts >= MAX_ATTEMPTS:
                self._drop(unit, f"{unit.attempts} tries failed, the last with {describe(exc)}")
                return
            self.failures.report(f"{type(exc).__name__} writing a batch",
                                 f"writing {len(unit.statements)} row(s) failed ({describe(exc)});"
                                 " held in memory and tried again", run_id=unit.run_id)
        self.held.append(unit)
        rows = sum(len(u.statements) for u in self.held)
        while rows > MAX_HELD_ROWS and len(self.held) > 1:
            oldest = self.held.pop(0)
            rows -= len(oldest.statements)
            self._drop(oldest, f"over {MAX_HELD_ROWS:,} rows were held back")
        if exc is not None:
            tries = min(u.attempts for u in self.held)
            self._retry_at = time.monotonic() + min(0.1 * 2 ** tries, 5.0)

    def _drop(self, unit: Unit, why: str) -> None:
        self.failures.report("trace rows dropped", f"{len(unit.statements)} row(s) were not "
                             f"stored: {why}", run_id=unit.run_id, level=logging.ERROR)
