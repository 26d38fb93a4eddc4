"""The SQLite trace store: what a run leaves behind, failures and crashes, concurrent writers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.events import Event
from agentflow.tracing.sanitize import Sanitizer

from .demo import API_KEY, make_flow, record_demo_runs, synthetic_events

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("traces") / "traces.db"
    store = SQLiteTraceStore(path)
    ids = asyncio.run(record_demo_runs(store))
    store.close()
    return path, ids


def test_a_run_is_stored_with_every_span_kind_linked_to_its_parent(demo_db) -> None:
    path, ids = demo_db
    with TraceReader(path) as reader:
        run = reader.run(ids["ok"], with_data=True)
    s = run.summary
    assert (s.workflow, s.status, s.error) == ("demo_rag", "ok", None)
    assert (s.nodes, s.model_calls, s.tokens) == (12, 4, 573)
    assert s.cost == pytest.approx(0.00001 + 0.00002 + 2 * 0.0021)
    assert s.duration_s is not None and s.duration_s > 0
    assert run.graph["flow"] == "demo_rag" and run.graph["steps"]["kind"] == "sequence"
    assert run.inputs == {"question": "What is a loop?"} and "A loop repeats" in run.output["answer"]

    kinds = {sp["kind"] for sp in run.spans}
    assert kinds == {"node", "route", "map", "map_item", "loop", "loop_pass", "branch",
                     "model_call", "retrieval", "check"}
    ids_ = {sp["span_id"] for sp in run.spans} | {s.run_id}
    assert all(sp["parent_id"] in ids_ for sp in run.spans)
    assert all(sp["end"] is not None and sp["status"] == "ok" for sp in run.spans)

    passes = [sp for sp in run.spans if sp["kind"] == "loop_pass"]
    assert [(p["pass_index"], p["data"]["passed"], p["data"]["reason"]) for p in passes] == [
        (1, False, "failing: citations, faithfulness"), (2, True, "all checks pass")]
    (loop,) = [sp for sp in run.spans if sp["kind"] == "loop"]
    assert loop["summary"] == {"max_iterations": 3, "stop_reason": "passed", "passes": 2}
    faith = [sp for sp in run.spans if sp["kind"] == "node" and sp["name"] == "check_faithfulness"]
    assert [(n["pass_index"], n["branch"]) for n in faith] == [(1, 1), (2, 1)]
    (fan,) = [sp for sp in run.spans if sp["kind"] == "map"]
    assert fan["summary"]["count"] == 3 and fan["summary"]["max_concurrency"] == 2
    assert 1 <= fan["summary"]["max_in_flight"] <= 2
    items = sorted(sp["item_index"] for sp in run.spans if sp["kind"] == "map_item")
    assert items == [0, 1, 2]

    calls = [sp for sp in run.spans if sp["kind"] == "model_call"]
    answer_call = calls[-1]["data"]
    for key in ("alias", "model", "messages", "sampling", "response", "tokens", "cost", "latency",
                "retries", "cache_hit", "duration_s"):
        assert key in answer_call, key
    assert answer_call["messages"][0]["role"] == "system" and answer_call["retries"] == 1
    assert calls[1]["summary"]["cache_hit"] is True and calls[1]["summary"]["tokens"] == 48
    (check,) = [sp for sp in run.spans if sp["kind"] == "check" and sp["pass_index"] == 2
                and sp["branch"] == 1]
    assert check["parent_id"].endswith("pass:2/par:checks/branch:1/node:check_faithfulness")
    assert check["data"]["verdict"] == "pass" and check["data"]["score"] == 0.93
    retrievals = [sp for sp in run.spans if sp["kind"] == "retrieval"]
    assert sorted(r["item_index"] for r in retrievals) == [0, 1, 2]
    assert all(r["data"]["queries"] and len(r["data"]["hits"]) == 2 for r in retrievals)


def test_secrets_never_reach_the_database_file(demo_db) -> None:
    path, ids = demo_db
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert API_KEY.encode() not in raw
    assert b"Bearer sk-" not in raw
    with TraceReader(path) as reader:
        failed = reader.run(ids["failed"])
        call = next(sp for sp in reader.run(ids["ok"], with_data=True).spans
                    if sp["kind"] == "model_call")
    assert call["data"]["api_key"] == "[REDACTED]"
    assert call["data"]["headers"] == {"Authorization": "[REDACTED]"}
    assert "[REDACTED]" in (failed.summary.error or "")


def test_a_failed_run_is_stored_as_failed_with_its_failing_node(demo_db) -> None:
    path, ids = demo_db
    with TraceReader(path) as reader:
        run = reader.run(ids["failed"])
        assert [r.run_id for r in reader.runs(status="error")] == [ids["failed"]]
    assert run.summary.status == "error" and "model unavailable" in run.summary.error
    answer = [sp for sp in run.spans if sp["name"] == "answer" and sp["kind"] == "node"]
    assert [a["status"] for a in answer] == ["error"]
    (loop,) = [sp for sp in run.spans if sp["kind"] == "loop"]
    assert loop["status"] == "error" and loop["summary"]["stop_reason"] == "error"
    assert run.output is None and run.summary.errors == 1


def test_runs_are_filtered_by_workflow_and_status_and_sorted_by_time_latency_and_cost(demo_db) -> None:
    path, ids = demo_db
    with TraceReader(path) as reader:
        assert [r.run_id for r in reader.runs()] == [ids["failed"], ids["chat"], ids["ok"]]
        assert [r.run_id for r in reader.runs(sort="time", descending=False)][0] == ids["ok"]
        assert reader.runs(sort="cost")[0].run_id == ids["ok"]
        by_latency = reader.runs(sort="latency")
        assert [r.duration_s for r in by_latency] == sorted(r.duration_s for r in by_latency)[::-1]
        assert reader.runs(workflow="nope") == [] and reader.workflows() == ["demo_rag"]
        assert reader.resolve(ids["ok"][:10]) == ids["ok"]
        with pytest.raises(ValueError, match="unknown sort 'size'"):
            reader.runs(sort="size")  # type: ignore[arg-type]


def test_large_payloads_are_capped_with_a_visible_marker(tmp_path: Path) -> None:
    from agentflow.tracing.sanitize import Sanitizer

    store = SQLiteTraceStore(tmp_path / "t.db", sanitizer=Sanitizer(max_chars=1_000, max_items=50,
                                                                    max_bytes=20_000))
    events = synthetic_events(1, run_id="a" * 32)
    node_done = next(e for e in events if e.kind == "node_finished")
    node_done.data = {"update": {"text": "x" * 100_000, "rows": list(range(500))}}
    model = next(e for e in events if e.kind == "model_call")
    model.data = {"response": ["y" * 900] * 40}  # 36 kB of JSON: over the payload cap
    for e in events:
        store.on_event(event=e)
    store.close()
    with TraceReader(tmp_path / "t.db") as reader:
        spans = {sp["kind"]: sp for sp in reader.run("a" * 32, with_data=True).spans}
    update = spans["node"]["data"]["update"]
    assert update["text"].startswith("x" * 1_000) and update["text"].endswith("…[truncated 99,000 chars]")
    assert update["rows"][:50] == list(range(50)) and update["rows"][50] == "…[truncated 450 more items]"
    capped = spans["model_call"]["data"]
    assert capped["__truncated__"].startswith("payload of") and "capped at 20,000" in capped["__truncated__"]
    assert capped["preview"].startswith('{"response":["yyy')


def test_closing_the_store_marks_unfinished_runs_and_spans_incomplete(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db")
    run_id = "b" * 32
    for e in synthetic_events(2, run_id=run_id)[:5]:  # run, map and item 0 started; no finish
        store.on_event(event=e)
    store.flush()
    with TraceReader(tmp_path / "t.db") as reader:
        assert reader.summary(run_id).status == "running"  # this process is alive: still running
    store.close()
    with TraceReader(tmp_path / "t.db") as reader:
        run = reader.run(run_id)
    assert run.summary.status == "incomplete" and "before the run finished" in run.summary.error
    statuses = {sp["kind"]: sp["status"] for sp in run.spans}
    assert statuses["map"] == statuses["node"] == "incomplete" and statuses["model_call"] == "ok"


CRASHING = textwrap.dedent("""
    import asyncio, os, sys
    from typing import Any
    from pydantic import BaseModel
    import agentflow as af
    from agentflow.graph.registry import NodeRegistry
    from agentflow.tracing import SQLiteTraceStore

    REG = NodeRegistry()

    class S(BaseModel):
        x: int = 0

    @af.node("step", reads=("x",), writes=("x",), registry=REG)
    async def step(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        if state.x == 2:
            await asyncio.sleep(0.5)  # the store writes what it buffered meanwhile
            os._exit(9)  # a hard crash: no exception, no atexit, no finally
        return {"x": state.x + 1}

    store = SQLiteTraceStore(sys.argv[1], flush_interval=0.05)
    flow = af.Flow("crashy", state=S, inputs=("x",), steps=[step("a"), step("b"), step("c")])
    asyncio.run(flow.arun({"x": 0}, hooks=[store]))
""")


def test_a_run_whose_process_crashed_stays_readable_as_incomplete(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "t.db")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    with TraceReader(tmp_path / "t.db") as reader:
        (summary,) = reader.runs()
        run = reader.run(summary.run_id)
        assert [r.run_id for r in reader.runs(status="incomplete")] == [summary.run_id]
    assert summary.status == "incomplete" and "stopped before it finished" in summary.error
    assert [(sp["name"], sp["status"]) for sp in run.spans] == [
        ("a", "ok"), ("b", "ok"), ("c", "incomplete")]


WRITER = textwrap.dedent("""
    import sys
    from agentflow.tracing import SQLiteTraceStore
    sys.path.insert(0, sys.argv[3])
    from tracing.demo import synthetic_events

    store = SQLiteTraceStore(sys.argv[1], flush_interval=0.01, batch_size=50)
    for r in range(int(sys.argv[2])):
        for e in synthetic_events(5, run_id=f"p{sys.argv[4]}-{r}"):
            store.on_event(event=e)
    store.close()
""")


def test_concurrent_writers_in_threads_and_processes_never_corrupt_the_store(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(db), "20", str(ROOT / "tests"), str(i)],
                              cwd=ROOT) for i in range(3)]
    shared = SQLiteTraceStore(db, flush_interval=0.01, batch_size=30)
    flow = make_flow()
    results: list[str] = []

    def worker(own_store: bool) -> None:
        store = SQLiteTraceStore(db, flush_interval=0.01) if own_store else shared

        async def many() -> None:
            done = await asyncio.gather(*(flow.arun({"question": f"What is {i}?"}, hooks=[store])
                                          for i in range(4)))
            results.extend(r.run_id for r in done)

        asyncio.run(many())
        if own_store:
            store.close()

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.close()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    counts = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    assert counts == {"ok": 60 + 16}
    per_run = dict(conn.execute("SELECT run_id, count(*) FROM spans GROUP BY run_id").fetchall())
    assert all(per_run[f"p{i}-{r}"] == 1 + 5 * 5 for i in range(3) for r in range(20))
    assert {per_run[r] for r in results} == {35}
    spans_col = dict(conn.execute("SELECT run_id, spans FROM runs").fetchall())
    assert all(spans_col[r] == per_run[r] for r in per_run)


def test_a_hook_call_only_buffers_the_event(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval=60)
    events = synthetic_events(3, run_id="c" * 32)
    for e in events:
        store.on_event(event=e)
    rows = sqlite3.connect(tmp_path / "t.db").execute("SELECT count(*) FROM spans").fetchone()
    assert rows == (0,)  # nothing written on the caller's thread
    assert store.flush(timeout=10)
    rows = sqlite3.connect(tmp_path / "t.db").execute("SELECT count(*) FROM spans").fetchone()
    assert rows == (1 + 3 * 5,)
    store.close()
    store.close()  # idempotent


def test_an_unwritable_path_fails_when_the_store_is_made(tmp_path: Path) -> None:
    from agentflow.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot open the trace store .*AGENTFLOW_TRACES=off"):
        SQLiteTraceStore(blocker / "traces.db")


def test_events_json_round_trips_through_the_summary_column(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db")
    run_id = "d" * 32
    store.on_event(event=Event("run_started", run_id, run_id, None, "w", "flow", 1.0,
                               data={"inputs": {}, "graph": None}))
    store.on_event(event=Event("route", run_id, f"{run_id}/route:r", run_id, "r", "route", 1.1,
                               status="ok", data={"label": "x", "case": "__default__"}))
    store.on_event(event=Event("run_finished", run_id, run_id, None, "w", "flow", 2.0, status="ok",
                               data={"state": {"a": 1}}))
    store.close()
    conn = sqlite3.connect(tmp_path / "t.db")
    (summary,) = conn.execute("SELECT summary FROM spans").fetchone()
    assert json.loads(summary) == {"label": "x", "case": "__default__"}
    assert conn.execute("SELECT status, duration_s FROM runs").fetchone() == ("ok", 1.0)


def test_missing_values_are_stored_as_null_in_batches_of_any_size(tmp_path: Path) -> None:
    """Spans are inserted many per statement with placeholder values for missing ones (cheaper to
    bind than None): what lands in the file is NULL, whatever the batch size."""
    db = tmp_path / "t.db"
    store = SQLiteTraceStore(db, flush_interval=60)
    run_id = "e" * 32
    events = synthetic_events(37, run_id=run_id)  # 1 + 5 * 37 = 186 spans: 3 full statements + 6
    events[-3].error = ""  # an empty error is no error
    for e in events[:-2]:  # the map and the run are still open at the first write
        store.on_event(event=e)
    store.flush()
    conn = sqlite3.connect(db)
    (open_map,) = conn.execute("SELECT end, status FROM spans WHERE kind = 'map'").fetchall()
    assert open_map == (None, "running")
    for e in events[-2:]:
        store.on_event(event=e)
    store.close()
    rows = conn.execute("SELECT seq, kind, parent_id, end, error, branch, pass_index, item_index "
                        "FROM spans WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    assert [r[0] for r in rows] == list(range(1 + 5 * 37))
    assert all(r[3] is not None and r[4] is None and r[5] is None and r[6] is None for r in rows)
    assert all(r[2] is not None for r in rows)
    items = [r[7] for r in rows if r[1] == "model_call"]
    assert items == list(range(37))  # child spans take their node's item index, 0 included
    assert conn.execute("SELECT count(*) FROM spans WHERE item_index IS NULL").fetchone() == (1,)
    assert conn.execute("SELECT typeof(end), typeof(item_index) FROM spans WHERE kind = 'node'"
                        " LIMIT 1").fetchone() == ("real", "integer")


def test_two_stores_given_the_same_run_keep_one_copy_of_each_span(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    first, second = SQLiteTraceStore(db), SQLiteTraceStore(db)
    result = asyncio.run(make_flow().arun({"question": "What is a loop?"}, hooks=[first, second]))
    first.close()
    second.close()
    with TraceReader(db) as reader:
        run = reader.run(result.run_id)
    assert run.summary.status == "ok" and len(run.spans) == run.summary.spans == 35
    assert run.summary.tokens == 573


def _edge_events(run_id: str) -> list[Event]:
    """A small run with what the batch boundaries must not change: a finish whose start was
    never seen, a model call recorded after its node finished (it takes no indices from a closed
    node), errors, and a span left open."""
    t, node = 1_700_000_000.0, f"{run_id}/node:n"
    return [
        Event("run_started", run_id, run_id, None, "edge", "flow", t, data={"inputs": {}}),
        Event("node_finished", run_id, f"{run_id}/node:orphan", run_id, "orphan", "t", t + 1,
              status="error", error="boom", data={"update": {"x": 1}}),
        Event("node_started", run_id, node, run_id, "n", "t", t + 2, item_index=3, branch=1),
        Event("model_call", run_id, f"{node}/model_call:1", node, "m", "", t + 2.1, status="ok",
              data={"tokens": {"prompt": 2, "completion": 1, "total": 3}, "cost": 0.5}),
        Event("node_finished", run_id, node, run_id, "n", "t", t + 3, item_index=3, branch=1,
              status="error", error="failed", data={"update": {"y": 2}}),
        Event("model_call", run_id, f"{node}/model_call:2", node, "m", "", t + 3.1,
              status="error", error="late", data={"tokens": 4}),
        Event("loop_started", run_id, f"{run_id}/loop:l", run_id, "l", "loop", t + 4,
              data={"max_iterations": 3}),
        Event("check", run_id, f"{run_id}/loop:l/check:1", f"{run_id}/loop:l", "c", "", t + 5,
              pass_index=1, status="ok", data={"score": 1.0, "verdict": "pass"}),
        Event("loop_finished", run_id, f"{run_id}/loop:l", run_id, "l", "loop", t + 6,
              status="ok", data={"stop_reason": "passed", "passes": 1}),
        Event("map_started", run_id, f"{run_id}/map:m", run_id, "m", "map", t + 7,
              data={"over": "xs", "count": 1}),
    ]


@pytest.mark.parametrize("every", [1, 2, 3, 5, 1_000])
def test_batch_boundaries_do_not_change_what_is_stored(tmp_path: Path, every: int) -> None:
    """A span opened and finished within one batch is paired straight from its two events;
    one split across batches is written open, then updated: both must store the same rows."""
    def stored(db: Path, every: int) -> tuple[list[tuple], list[tuple]]:
        store = SQLiteTraceStore(db, flush_interval=60)
        events = _edge_events("e" * 32) + synthetic_events(3, run_id="f" * 32)
        for i, e in enumerate(events, 1):
            store.on_event(event=e)
            if i % every == 0:
                store.flush()
        store.flush()
        conn = sqlite3.connect(db)
        spans = conn.execute("SELECT * FROM spans ORDER BY run_id, seq").fetchall()
        runs = conn.execute("SELECT run_id, status, spans, nodes, errors, model_calls, tokens, "
                            "cost FROM runs ORDER BY run_id").fetchall()
        conn.close()
        store.close()
        return spans, runs

    one_batch = stored(tmp_path / "one.db", 1_000)
    assert stored(tmp_path / "split.db", every) == one_batch
    spans, runs = one_batch
    indices = {row[2].split("/", 1)[-1]: row[11:14] for row in spans if row[0] == "e" * 32}
    assert indices["node:n/model_call:1"] == (1, None, 3)  # taken from its open node
    assert indices["node:n/model_call:2"] == (None, None, None)  # recorded after it closed
    assert indices["loop:l/check:1"] == (None, 1, None)
    assert runs[0][2:7] == (6, 2, 3, 2, 7)  # spans, nodes, errors, model calls, tokens


class _Poisoned:
    """A connection that refuses rows holding one of ``poison`` (word -> the exception it
    raises), as SQLite refuses a value it cannot bind: the rest of the connection is real."""

    def __init__(self, conn: sqlite3.Connection, poison: dict[str, Exception]) -> None:
        self._conn, self._poison = conn, poison

    def _check(self, params: object) -> None:
        for value in params if isinstance(params, (list, tuple)) else ():
            for word, exc in self._poison.items():
                if isinstance(value, str) and word in value:
                    raise exc

    def execute(self, sql: str, params: object = ()) -> object:
        self._check(params)
        return self._conn.execute(sql, params)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: object) -> object:
        rows = list(rows)  # type: ignore[call-overload]
        for params in rows:
            self._check(params)
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_one_run_whose_rows_cannot_be_stored_keeps_the_other_runs_of_its_batch(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Six runs in one batch, two of them with a value the database refuses: the batch is written
    again run by run, the bad rows are stored with a marker, and both failures are logged."""
    db = tmp_path / "t.db"
    store = SQLiteTraceStore(db, flush_interval=60)
    store._conn = _Poisoned(store._conn, {  # type: ignore[assignment]
        "POISON-A": UnicodeEncodeError("utf-8", "POISON-A", 0, 1, "surrogates not allowed"),
        "POISON-B": sqlite3.InterfaceError("Error binding parameter 13: type 'x' is not supported"),
    })
    for r in range(6):
        events = synthetic_events(2, run_id=f"run{r}")
        if r in (2, 4):
            node_done = next(e for e in events if e.kind == "node_finished")
            node_done.data = {"update": {"out": "POISON-A" if r == 2 else "POISON-B"}}
        for e in events:
            store.on_event(event=e)
    with caplog.at_level("WARNING", logger="agentflow.tracing"):
        store.close()
    with TraceReader(db) as reader:
        runs = {r.run_id: r for r in reader.runs()}
        assert sorted(runs) == [f"run{r}" for r in range(6)]
        assert all(r.status == "ok" and r.spans == 11 for r in runs.values())
        spans = [sp for sp in reader.run("run2", with_data=True).spans
                 if sp["kind"] == "node" and sp["item_index"] == 0]
    (node,) = spans
    assert node["data"]["__truncated__"].startswith("[unstorable payload: UnicodeEncodeError")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("UnicodeEncodeError" in w and "run run2" in w and "marker" in w for w in warnings)
    assert any("InterfaceError" in w and "run run4" in w for w in warnings), warnings


class _Verbatim(Sanitizer):
    """A sanitizer that lets text through as it is, lone surrogates included: what the store does
    when a payload still cannot be encoded must not depend on the sanitizer catching it."""

    def text(self, value: str) -> str:
        return value

    def dumps_if_clean(self, value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    def dumps(self, value: object, *, cleaned: bool = False) -> str:
        return json.dumps(value, ensure_ascii=False)


def test_a_lone_surrogate_in_one_of_six_concurrent_runs_loses_no_run(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "t.db"
    store = SQLiteTraceStore(db, sanitizer=_Verbatim(secrets=()))
    flow = make_flow()
    questions = ["What is a loop?"] * 5 + ["hello \udcff, what is a loop?"]

    async def six() -> list[str]:
        done = await asyncio.gather(*(flow.arun({"question": q}, hooks=[store]) for q in questions))
        return [r.run_id for r in done]

    ids = asyncio.run(six())
    with caplog.at_level("WARNING", logger="agentflow.tracing"):
        store.close()
    with TraceReader(db) as reader:
        runs = {r.run_id: r for r in reader.runs()}
        assert set(runs) == set(ids)
        assert {(r.status, r.spans) for r in runs.values()} == {("ok", 35)}
        poisoned = reader.run(ids[-1])
    assert poisoned.inputs == {"question": "hello \ufffd, what is a loop?"}
    assert len(poisoned.spans) == 35
    assert any(ids[-1] in r.getMessage() and "repaired" in r.getMessage() for r in caplog.records)


class _Choking(Sanitizer):
    """A sanitizer that fails on one run's payloads, as a bug or an odd object would make it."""

    def dumps_if_clean(self, value: object) -> str | None:
        if "BOOM" in repr(value):
            raise RuntimeError("cannot turn this payload into JSON")
        return super().dumps_if_clean(value)

    def dumps(self, value: object, *, cleaned: bool = False) -> str:
        if "BOOM" in repr(value):
            raise RuntimeError("cannot turn this payload into JSON")
        return super().dumps(value, cleaned=cleaned)


def test_a_payload_the_sanitizer_cannot_prepare_is_stored_as_a_marker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "t.db"
    store = SQLiteTraceStore(db, sanitizer=_Choking(secrets=()), flush_interval=60)
    for r in range(3):
        events = synthetic_events(1, run_id=f"run{r}")
        if r == 1:
            events[0].data["inputs"] = {"queries": "BOOM"}
            next(e for e in events if e.kind == "model_call").data["response"] = "BOOM"
        for e in events:
            store.on_event(event=e)
    with caplog.at_level("WARNING", logger="agentflow.tracing"):
        store.close()
    with TraceReader(db) as reader:
        assert sorted(r.run_id for r in reader.runs()) == ["run0", "run1", "run2"]
        run = reader.run("run1", with_data=True)
    assert "cannot turn this payload into JSON" in run.inputs["__truncated__"]
    (call,) = [sp for sp in run.spans if sp["kind"] == "model_call"]
    assert call["data"]["__truncated__"].startswith("[unstorable payload: RuntimeError")
    assert any("run run1" in r.getMessage() for r in caplog.records)
