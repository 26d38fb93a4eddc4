"""Faults of the SQLite trace store: a write that fails, a store nobody may write, many writers.

Each test runs real runs into a real store in ``tmp_path`` and then checks that nothing was
lost, nothing stored before was damaged (``PRAGMA integrity_check``), and that the failure was
logged saying what failed, where (the file) and for which run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.ui.server import ServerThread
from tracing.demo import make_flow, record_demo_runs, synthetic_events, traces

TESTS = Path(__file__).resolve().parents[1]


def _run(store: SQLiteTraceStore, question: str = "What is a loop?") -> str:
    """One real run of the demo flow traced to ``store``; the run's own result must be ok."""
    result = asyncio.run(make_flow().arun({"question": question}, hooks=[store]))
    assert result.state["answer"]  # the run completed and returned its result
    return result.run_id


def _intact(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    return conn


class _FailingWrites:
    """Makes every write of a store's connection fail as ``error`` does until ``repair``."""

    def __init__(self, conn: sqlite3.Connection, error: Exception) -> None:
        self._conn, self._error, self.broken = conn, error, True

    def execute(self, sql: str, params: object = ()) -> object:
        if self.broken and not sql.startswith(("BEGIN", "ROLLBACK", "COMMIT", "PRAGMA")):
            raise self._error
        return self._conn.execute(sql, params)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: object) -> object:
        if self.broken:
            raise self._error
        return self._conn.executemany(sql, rows)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def _full_disk(store: SQLiteTraceStore) -> Callable[[], None]:
    """A real SQLITE_FULL: the file may not grow by a page (``max_page_count``)."""
    conn = store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return lambda: conn.execute("PRAGMA max_page_count = 1073741823") and None


def _io_error(store: SQLiteTraceStore) -> Callable[[], None]:
    """An injected ``disk I/O error`` (what ENOSPC or a failing disk gives) on every write."""
    failing = _FailingWrites(store._conn, sqlite3.OperationalError("disk I/O error"))
    store._conn = failing  # type: ignore[assignment]

    def repair() -> None:
        failing.broken = False

    return repair


@pytest.mark.parametrize("fault", [_full_disk, _io_error], ids=["full-disk", "io-error"])
def test_a_trace_write_failing_on_one_flush_loses_no_run_and_says_what_and_where(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        fault: Callable[[SQLiteTraceStore], Callable[[], None]]) -> None:
    db = tmp_path / "traces.db"
    store = SQLiteTraceStore(db, flush_interval=60)
    before = _run(store)
    assert store.flush(timeout=30)
    with TraceReader(db) as reader:
        stored_before = reader.run(before, with_data=True).to_dict()

    repair = fault(store)
    with caplog.at_level("WARNING", logger="agentflow.tracing"):
        failed = _run(store)  # the run itself is not affected by its trace failing
        assert store.flush(timeout=30)
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(db) in m and f"run {failed}" in m and "held in memory" in m
               and ("disk is full" in m or "disk I/O error" in m) for m in messages), messages

    repair()
    after = _run(store)
    assert store.flush(timeout=30)
    with TraceReader(db) as reader:  # later batches are stored while the failed one waits
        assert reader.summary(after).status == "ok"
    store.close()  # and the held-back batch is written at the latest when the store closes

    conn = _intact(db)
    counts = dict(conn.execute("SELECT run_id, count(*) FROM spans GROUP BY run_id").fetchall())
    assert counts == {before: 35, failed: 35, after: 35}
    with TraceReader(db) as reader:
        assert reader.run(before, with_data=True).to_dict() == stored_before
        assert {r.run_id: (r.status, r.spans) for r in reader.runs()} == {
            before: ("ok", 35), failed: ("ok", 35), after: ("ok", 35)}


def test_a_store_locked_past_its_busy_timeout_holds_the_batch_and_writes_it_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "traces.db"
    store = SQLiteTraceStore(db, flush_interval=60, busy_timeout=0.05)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with caplog.at_level("WARNING", logger="agentflow.tracing"):
            run_id = _run(store)
            assert store.flush(timeout=60)
        assert any("database is locked" in r.getMessage() and run_id in r.getMessage()
                   for r in caplog.records)
    finally:
        other.execute("COMMIT")
    store.close()
    with TraceReader(db) as reader:
        summary = reader.summary(run_id)
    assert (summary.status, summary.spans) == ("ok", 35)


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``chmod -R a-w`` on ``folder`` for the duration (root still writes; see the spy below)."""
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for p in paths:
            p.chmod(modes[p])


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    db = tmp_path / "ro" / ".agentflow" / "traces.db"
    store = SQLiteTraceStore(db)
    ids = asyncio.run(record_demo_runs(store))
    store.close()
    return db, ids


def _spy_connect(monkeypatch: pytest.MonkeyPatch, *, shared_memory: bool = True) -> list[str]:
    """Record how SQLite is opened; without ``shared_memory``, a plain read-only open fails as it
    does for a user who may not write the folder (no ``-shm`` file can be made)."""
    opened: list[str] = []
    real = sqlite3.connect

    def connect(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(database))
        if not shared_memory and "immutable=1" not in str(database):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", connect)
    return opened


@pytest.mark.parametrize("shared_memory", [True, False], ids=["ro", "ro-immutable"])
def test_readers_print_a_read_only_store_and_never_write_it(
        stored: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], shared_memory: bool) -> None:
    db, ids = stored
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    opened = _spy_connect(monkeypatch, shared_memory=shared_memory)
    with _read_only(db.parent.parent):
        assert traces("list", "--db", str(db), "--json") == 0
        listed = [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()]
        assert listed == [ids["failed"], ids["chat"], ids["ok"]]
        assert traces("show", ids["ok"][:8], "--db", str(db)) == 0
        assert "loop refine (max 3) -> passed after 2 pass(es)" in capsys.readouterr().out
        assert traces("export", "--all", "--db", str(db)) == 0
        assert len(capsys.readouterr().out.splitlines()) == 3
        with ServerThread(db) as server:
            response = httpx.get(f"{server.url}/api/runs", timeout=10)
            assert response.status_code == 200, response.text
            assert len(response.json()["runs"]) == 3
            run = httpx.get(f"{server.url}/api/runs/{ids['ok']}", timeout=10)
            assert run.status_code == 200 and len(run.json()["spans"]) == 35
    assert opened and all(u.startswith("file:") and "mode=ro" in u for u in opened), opened
    assert any("immutable=1" in u for u in opened) is not shared_memory
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_readers_never_create_or_migrate_a_store(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / ".agentflow" / "traces.db"
    assert traces("list", "--db", str(missing)) == 2
    assert f"no traces at {str(missing)!r} yet" in capsys.readouterr().err
    assert not missing.parent.exists()

    unmade = tmp_path / "unmade.db"
    unmade.write_bytes(b"")  # a file with no schema: a reader must not create one
    with ServerThread(unmade) as server:
        body = httpx.get(f"{server.url}/api/runs", timeout=10).json()
        assert body["runs"] == []
        gone = httpx.get(f"{server.url}/api/runs/abc", timeout=10)
        assert gone.status_code == 404 and "no traces at" in gone.json()["detail"]
    assert unmade.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unmade.db"]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    from agentflow.tracing import SQLiteTraceStore
    from tracing.demo import synthetic_events

    store = SQLiteTraceStore(sys.argv[1], flush_interval=0.01, batch_size=40)
    print("ready", flush=True)
    for r in range(int(sys.argv[2])):
        for e in synthetic_events(5, run_id=f"w{sys.argv[4]}-{r}"):
            store.on_event(event=e)
    store.close()
""")


def test_processes_writing_one_store_wait_for_its_lock_and_lose_no_run(tmp_path: Path) -> None:
    """Four processes write one ``traces.db`` while another holds its write lock for a while:
    'database is locked' is waited out (the busy timeout), and every run is stored whole."""
    db = tmp_path / "traces.db"
    SQLiteTraceStore(db).close()  # the schema exists; the writers now only contend for the lock
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    procs = [subprocess.Popen([sys.executable, str(script), str(db), "10", str(TESTS), str(i)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(4)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # their first batches wait on the lock meanwhile
    finally:
        holder.execute("COMMIT")
        holder.close()
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 and err == "" for code, err in outcomes), outcomes
    conn = _intact(db)
    runs = dict(conn.execute("SELECT run_id, spans FROM runs WHERE status = 'ok'").fetchall())
    assert runs == {f"w{i}-{r}": 1 + 5 * 5 for i in range(4) for r in range(10)}
    per_run = dict(conn.execute("SELECT run_id, count(*) FROM spans GROUP BY run_id").fetchall())
    assert per_run == runs


def test_the_store_logs_each_kind_of_failure_not_only_the_first(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two different failures of one store, on two runs, are both in the log, and repeats are
    counted when the store closes (the old store logged its first failure only)."""
    db = tmp_path / "traces.db"
    store = SQLiteTraceStore(db, flush_interval=60)
    failing = _FailingWrites(store._conn, sqlite3.OperationalError("disk I/O error"))
    store._conn = failing  # type: ignore[assignment]
    with caplog.at_level("WARNING", logger="agentflow.tracing"):
        for r in range(3):
            for e in synthetic_events(1, run_id=f"io{r}"):
                store.on_event(event=e)
            assert store.flush(timeout=30)
        failing.broken = False
        store.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk I/O error" in m and "run io0" in m for m in messages), messages
    assert any("happened" in m and "more time(s)" in m and "io1" in m for m in messages), messages
    with TraceReader(db) as reader:
        assert sorted(r.run_id for r in reader.runs()) == ["io0", "io1", "io2"]


def test_an_unreadable_store_is_a_message_in_the_viewer_not_a_500(tmp_path: Path) -> None:
    junk = tmp_path / "traces.db"
    junk.write_bytes(os.urandom(4096))
    with ServerThread(junk) as server:
        response = httpx.get(f"{server.url}/api/runs", timeout=10)
    assert response.status_code == 503
    assert "cannot read the trace store" in response.json()["detail"]


AS_NOBODY = textwrap.dedent("""
    import contextlib, io, os, pwd, sys
    from agentflow.cli import main

    # Import everything `traces list` needs while still root (the interpreter may live under
    # /root, which 'nobody' may not read), on a copy of the store, then drop to 'nobody' for the
    # run that counts.
    with contextlib.redirect_stdout(io.StringIO()):
        main(["traces", "list", "--json", "--db", sys.argv[1]])
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    assert os.geteuid() == nobody.pw_uid
    sys.exit(main(["traces", "list", "--json"]))
""")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                    reason="needs root to drop to the user 'nobody' (POSIX only)")
def test_a_user_who_may_not_write_the_store_reads_it(tmp_path: Path) -> None:
    """The real thing where root's chmod proves nothing: ``agentflow traces list`` as ``nobody``
    on a store in a folder that user may not write."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="agentflow-ro-", dir="/tmp"))
    try:
        db = folder / ".agentflow" / "traces.db"
        store = SQLiteTraceStore(db)
        ids = asyncio.run(record_demo_runs(store))
        store.close()
        shutil.copy(db, tmp_path / "copy.db")
        for p in (folder, db.parent):
            p.chmod(0o555)
        db.chmod(0o444)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_TRACES")}
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, str(tmp_path / "copy.db")], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line)["run_id"] for line in proc.stdout.splitlines()] == [
            ids["failed"], ids["chat"], ids["ok"]]
        assert sorted(p.name for p in db.parent.iterdir()) == ["traces.db"]
    finally:
        for p in (folder, *folder.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(folder)
