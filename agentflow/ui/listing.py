"""The runs list of the trace viewer: the question asked, the outcome, route, cost, feedback and
origin of each run, with search and filters.

:meth:`agentflow.tracing.query.TraceReader.runs` lists runs by their own status; the viewer also
needs what the run's final state says (``answer_status``: ``caveat`` or ``abstained`` are not a
plain ``ok``), the question from its inputs and text search, so it reads the same tables with one
query of its own, on the reader's read-only connection. Where a store predates run tags and
feedback (no ``run_tags``/``feedback`` tables), those columns are empty and a tag filter matches
nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentflow.tracing.query import SORT_COLUMNS, RunSummary, TraceReader

OUTCOMES = ("ok", "caveat", "abstained", "error", "incomplete", "running")
"""What the list shows per run: the run's own status, refined by its final state's
``answer_status`` (a run that finished ``ok`` with ``answer_status: caveat`` is a ``caveat``)."""
ANSWER_FIELDS = ("answer", "reply", "response", "final_answer")
QUESTION_FIELDS = ("question", "query", "message", "input", "text", "prompt")
MAX_TEXT = 300
"""Characters of a question or answer sent per row (the run page has the whole text)."""

Order = Literal["desc", "asc"]


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the runs list shows: every field optional."""

    workflow: str | None = None
    outcome: str | None = None
    tag: str | None = None
    """``key=value``, or ``key`` for runs that have the tag at all."""
    text: str | None = None
    """Case-insensitive text in the inputs, the answer, the error or the run id."""
    sort: str = "time"
    descending: bool = True
    limit: int = 200
    offset: int = 0


def _has_tables(conn: sqlite3.Connection, *names: str) -> bool:
    marks = ", ".join("?" * len(names))
    found = conn.execute(f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
                         names).fetchone()[0]
    return int(found) == len(names)


def _json_text(column: str, fields: Sequence[str]) -> str:
    """SQL for the first string among ``fields`` of a JSON object column (NULL when none)."""
    parts = ", ".join(f"CASE WHEN json_type({column}, '$.{f}') = 'text' THEN json_extract({column}, '$.{f}') END"
                      for f in fields)
    return f"CASE WHEN json_valid({column}) THEN coalesce({parts}) END"


_OUTCOME = ("CASE WHEN status = 'ok' AND json_valid(output) AND json_extract(output, '$.answer_status') "
            "IN ('caveat', 'abstained') THEN json_extract(output, '$.answer_status') ELSE status END")


def list_runs(reader: TraceReader, conn: sqlite3.Connection, f: RunFilter) -> list[dict[str, Any]]:
    """The rows of the runs list for filter ``f``: each run's summary (as the reader makes it, so
    a run whose process died reads ``incomplete``) with ``question``, ``answer``, ``route``,
    ``answer_status``, ``outcome``, ``tags`` and feedback counts."""
    if f.sort not in SORT_COLUMNS:
        raise ValueError(f"unknown sort {f.sort!r}; valid: {', '.join(SORT_COLUMNS)}")
    if f.outcome and f.outcome not in OUTCOMES:
        raise ValueError(f"unknown status {f.outcome!r}; valid: {', '.join(OUTCOMES)}")
    extras = _has_tables(conn, "run_tags", "feedback")
    where: list[str] = []
    params: list[Any] = []
    if f.workflow:
        where.append("workflow = ?")
        params.append(f.workflow)
    if f.outcome in ("running", "incomplete"):
        where.append("status IN ('running', 'incomplete')")  # refined per row below
    elif f.outcome:
        where.append(f"({_OUTCOME}) = ?")
        params.append(f.outcome)
    if f.tag:
        if not extras:
            return []
        key, eq, value = f.tag.partition("=")
        if eq:
            where.append("run_id IN (SELECT run_id FROM run_tags WHERE key = ? AND value = ?)")
            params += [key.strip(), value.strip()]
        else:
            where.append("run_id IN (SELECT run_id FROM run_tags WHERE key = ?)")
            params.append(key.strip())
    if f.text and f.text.strip():
        needle = f"%{_like(f.text.strip())}%"
        where.append("(inputs LIKE ? ESCAPE '\\' OR coalesce(error, '') LIKE ? ESCAPE '\\' "
                     f"OR coalesce({_json_text('output', ANSWER_FIELDS)}, '') LIKE ? ESCAPE '\\' "
                     "OR run_id LIKE ? ESCAPE '\\')")
        params += [needle, needle, needle, f"{_like(f.text.strip())}%"]
    column = SORT_COLUMNS[f.sort]
    order = "DESC" if f.descending else "ASC"
    sql = (f"SELECT run_id, {_json_text('inputs', QUESTION_FIELDS)}, "
           f"{_json_text('output', ANSWER_FIELDS)}, "
           "CASE WHEN json_valid(output) AND json_type(output, '$.route') = 'text' "
           "THEN json_extract(output, '$.route') END, "
           "CASE WHEN json_valid(output) AND json_type(output, '$.answer_status') = 'text' "
           "THEN json_extract(output, '$.answer_status') END, inputs "
           f"FROM runs {'WHERE ' + ' AND '.join(where) if where else ''} "
           f"ORDER BY {column} IS NULL, {column} {order}, started DESC LIMIT ? OFFSET ?")
    rows = conn.execute(sql, (*params, f.limit, f.offset)).fetchall()
    out = []
    summaries = reader.summaries([row[0] for row in rows])
    for run_id, question, answer, route, answer_status, inputs in rows:
        summary = summaries.get(run_id)
        if summary is None:  # deleted between the two queries
            continue
        outcome = _outcome(summary, answer_status)
        if f.outcome and outcome != f.outcome:
            continue
        out.append({**summary.to_dict(), "question": _cut(question if question is not None
                                                           else _first_input(inputs)),
                    "answer": _cut(answer), "route": route, "answer_status": answer_status,
                    "outcome": outcome})
    return out


def _outcome(summary: RunSummary, answer_status: str | None) -> str:
    if summary.status == "ok" and answer_status in ("caveat", "abstained"):
        return answer_status
    return summary.status


def _first_input(inputs: str | None) -> str | None:
    """The first string value of a run's inputs (JSON text), for a workflow without a question."""
    import json

    try:
        value = json.loads(inputs) if inputs else None
    except ValueError:
        return None
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, str) and v.strip():
                return v
    return None


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def tag_values(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every tag key with its values (at most 50 each), for the filter menus."""
    if not _has_tables(conn, "run_tags"):
        return {}
    out: dict[str, list[str]] = {}
    for key, value in conn.execute(
            "SELECT key, value FROM (SELECT key, value, row_number() OVER (PARTITION BY key "
            "ORDER BY count(*) DESC, value) AS n FROM run_tags GROUP BY key, value) "
            "WHERE n <= 50 ORDER BY key, value"):
        out.setdefault(key, []).append(value)
    return out


def feedback_counts(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Thumbs up and down per run, for the runs among ``run_ids`` that have any."""
    ids = [r for r in dict.fromkeys(run_ids) if r]
    if not ids or not _has_tables(conn, "feedback"):
        return {}
    out: dict[str, tuple[int, int]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ", ".join("?" * len(chunk))
        for run_id, up, down in conn.execute(
                f"SELECT run_id, SUM(score > 0), SUM(score < 0) FROM feedback "
                f"WHERE run_id IN ({marks}) GROUP BY run_id", chunk):
            out[run_id] = (int(up), int(down))
    return out
