"""Feedback (thumbs up/down) and tags of runs in the trace store: recorded, read, exported."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from agentflow.errors import InputError
from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.feedback import record_feedback
from agentflow.tracing.query import TraceNotFoundError

from .demo import make_flow, record_demo_runs, traces


@pytest.fixture()
def db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "traces.db"
    store = SQLiteTraceStore(path)
    ids = asyncio.run(record_demo_runs(store))
    store.close()
    return path, ids


def test_feedback_is_stored_with_the_run_and_counted_in_the_list(db) -> None:
    path, ids = db
    first = record_feedback(path, ids["ok"], score="up", comment="cites the right page",
                            user_id="ana", source="ui")
    record_feedback(path, ids["ok"][:8], score=-1, source="serve")  # a prefix finds the run
    record_feedback(path, "last", score="down")  # the newest run: the failed one

    assert (first.score, first.thumbs, first.run_id, first.source) == (1, "up", ids["ok"], "ui")
    with TraceReader(path) as reader:
        mine = reader.feedback(ids["ok"])
        assert [(f.score, f.comment, f.user_id, f.source) for f in mine] == [
            (1, "cites the right page", "ana", "ui"), (-1, None, None, "serve")]
        assert len(reader.feedback()) == 3
        counts = {r.run_id: (r.feedback_up, r.feedback_down) for r in reader.runs()}
        assert counts == {ids["ok"]: (1, 1), ids["chat"]: (0, 0), ids["failed"]: (0, 1)}
        assert reader.summary(ids["ok"]).to_dict()["feedback_up"] == 1


def test_a_bad_score_or_an_unknown_run_is_a_clear_error_and_stores_nothing(db) -> None:
    path, ids = db
    for bad in ("meh", 0, 2, True, None, [1]):
        with pytest.raises(InputError, match="'up' or 'down'"):
            record_feedback(path, ids["ok"], score=bad)
    with pytest.raises(TraceNotFoundError, match="no run 'nope'"):
        record_feedback(path, "nope", score="up")
    with pytest.raises(InputError, match="at most 10,000"):
        record_feedback(path, ids["ok"], score="up", comment="x" * 10_001)
    with TraceReader(path) as reader:
        assert reader.feedback() == []


def test_a_secret_in_a_comment_is_redacted(db, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = db
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-abcdefghijklmnopqrstuvwx")
    fb = record_feedback(path, ids["ok"], score="down",
                         comment="it printed sk-proj-abcdefghijklmnopqrstuvwx back")
    assert "sk-proj-abcdef" not in (fb.comment or "")
    assert "sk-proj-abcdef" not in path.read_bytes().decode("latin-1")


def test_runs_record_their_tags_and_can_be_filtered_by_them(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    store = SQLiteTraceStore(path)
    flow = make_flow()
    a = asyncio.run(flow.arun({"question": "hello"}, hooks=[store],
                              tags={"origin": "serve", "variant": "b"})).run_id
    b = asyncio.run(flow.arun({"question": "hello"}, hooks=[store])).run_id
    store.close()
    with TraceReader(path) as reader:
        assert reader.tags(a) == {"origin": "serve", "variant": "b"}
        assert reader.tags(b) == {"origin": "test"}  # the default under pytest
        assert [r.run_id for r in reader.runs(tag="variant=b")] == [a]
        assert [r.run_id for r in reader.runs(tag="variant")] == [a]
        assert [r.run_id for r in reader.runs(tag="origin=test")] == [b]
        assert reader.runs(tag="variant=a") == []
    with pytest.raises(InputError, match="tags are strings"):
        asyncio.run(flow.arun({"question": "hello"}, tags={"variant": 2}))  # type: ignore[dict-item]


def test_a_store_written_by_the_previous_version_is_read_and_then_takes_feedback(
        tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    store = SQLiteTraceStore(path)
    run_id = asyncio.run(make_flow().arun({"question": "hello"}, hooks=[store])).run_id
    store.close()
    conn = sqlite3.connect(path)  # as version 1 left it: no tags, no feedback
    conn.executescript("DROP TABLE run_tags; DROP TABLE feedback; PRAGMA user_version = 1;")
    conn.close()

    with TraceReader(path) as reader:  # readers never add the tables
        assert reader.feedback() == [] and reader.tags(run_id) == {}
        assert reader.runs()[0].tags == {} and reader.runs(tag="origin=test") == []
    record_feedback(path, run_id, score="up")
    with TraceReader(path) as reader:
        assert [f.score for f in reader.feedback(run_id)] == [1]
        assert reader.runs()[0].feedback_up == 1


def test_the_cli_rates_a_run_and_export_carries_tags_and_feedback(
        db, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path, ids = db
    assert traces("feedback", "--db", str(path), ids["chat"], "up", "-m", "friendly") == 0
    assert f"thumbs up recorded for run {ids['chat'][:8]}" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse names the valid choices
        traces("feedback", "--db", str(path), ids["chat"], "sideways")
    assert "invalid choice: 'sideways' (choose from 'up', 'down')" in capsys.readouterr().err
    assert traces("feedback", "--db", str(path), "nope", "up") == 2
    assert "no run 'nope'" in capsys.readouterr().err

    assert traces("list", "--db", str(path), "--tag", "origin=test") == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 3 and rows[1].split()[-2:] == ["test", "+1/-0"]

    out = tmp_path / "runs.jsonl"
    assert traces("export", "--db", str(path), ids["chat"], "-o", str(out)) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["tags"] == {"origin": "test"}
    assert [(f["score"], f["comment"], f["source"]) for f in record["feedback"]] == [
        (1, "friendly", "cli")]


def test_many_summaries_are_read_at_once_with_their_tags_and_feedback(db) -> None:
    path, ids = db
    record_feedback(path, ids["chat"], score="up")
    with TraceReader(path) as reader:
        got = reader.summaries([ids["ok"], ids["chat"], ids["chat"], "nope"])
        assert set(got) == {ids["ok"], ids["chat"]}
        assert got[ids["chat"]] == reader.summary(ids["chat"])
        assert (got[ids["chat"]].feedback_up, got[ids["ok"]].tags) == (1, {"origin": "test"})
