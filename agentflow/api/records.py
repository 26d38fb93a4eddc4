"""Run and feedback records in PostgreSQL, for deployments whose machines cannot share one trace store.

Each machine keeps its full traces in its own SQLite store (and exports them over OTLP). What an A/B
test needs of every run, whichever machine ran it, goes to PostgreSQL as well: one row per served run
(workflow, experiment, variant, thread, user, status, latency, tokens, cost) and one per rating. Any
machine then takes feedback on any run, and ``agentflow ab report --db postgresql://...`` reads the
whole experiment from one place. On by default with ``--checkpoint postgresql://...`` (the same
database), or with ``--records URL``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agentflow.errors import AgentflowError, InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS agentflow_runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    experiment  TEXT,
    variant     TEXT,
    thread_id   TEXT,
    user_id     TEXT,
    status      TEXT NOT NULL,
    error       TEXT,
    started     DOUBLE PRECISION NOT NULL,
    duration_s  DOUBLE PRECISION,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost        DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS agentflow_runs_by_experiment ON agentflow_runs (experiment, started);
CREATE TABLE IF NOT EXISTS agentflow_feedback (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES agentflow_runs (run_id),
    score       INTEGER NOT NULL CHECK (score IN (-1, 1)),
    comment     TEXT,
    user_id     TEXT,
    source      TEXT NOT NULL,
    created     DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS agentflow_feedback_by_run ON agentflow_feedback (run_id);
"""


class UnknownRun(InputError):
    """No served run of that id in the records."""


class RecordsError(AgentflowError):
    """The records' database could not be read or written (psycopg's error, translated)."""


@dataclass
class RunRecord:
    """A run as the A/B report reads it (the fields of a trace store's ``RunSummary`` it uses)."""

    run_id: str
    workflow: str
    status: str
    duration_s: float | None
    tokens: int
    cost: float | None
    tags: dict[str, str] = field(default_factory=dict)
    feedback_up: int = 0
    feedback_down: int = 0


class Records:
    """The records of one worker, on the connection pool the checkpointer uses."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def setup(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended('agentflow-records', 0))")
            try:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    await conn.execute(statement)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended('agentflow-records', 0))")

    async def add_run(self, outcome: Any, *, experiment: str | None, user_id: str | None) -> None:
        """Record a served run's :class:`agentflow.api.runs.Outcome` (once it has a run id)."""
        if outcome.run_id is None:
            return
        import psycopg

        try:
            await self._add_run(outcome, experiment, user_id)
        except psycopg.Error as exc:
            raise RecordsError(f"cannot record run {outcome.run_id} in PostgreSQL: {exc}") from exc

    async def _add_run(self, outcome: Any, experiment: str | None, user_id: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO agentflow_runs (run_id, workflow, experiment, variant, thread_id, user_id, status, "
                "error, started, duration_s, tokens, cost) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, error = excluded.error, "
                "duration_s = excluded.duration_s, tokens = excluded.tokens, cost = excluded.cost",
                (outcome.run_id, outcome.workflow, experiment, outcome.variant, outcome.thread_id, user_id,
                 outcome.status, outcome.error, time.time() - outcome.duration_s, outcome.duration_s,
                 int(outcome.usage.get("total_tokens", 0)), float(outcome.usage.get("cost", 0.0))))

    async def add_feedback(self, run_id: str, *, score: int, comment: str | None, user_id: str | None,
                           source: str) -> dict[str, Any]:
        """Record a rating of a served run; :class:`UnknownRun` when no worker recorded that run."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "INSERT INTO agentflow_feedback (run_id, score, comment, user_id, source, created) "
                "SELECT run_id, %s, %s, %s, %s, %s FROM agentflow_runs WHERE run_id = %s RETURNING id, created",
                (score, comment, user_id, source, time.time(), run_id))).fetchone()
        if row is None:
            raise UnknownRun(f"no served run {run_id!r} in the shared records")
        return {"id": row["id"], "run_id": run_id, "score": score, "comment": comment, "user_id": user_id,
                "source": source, "created": row["created"]}


def read_experiment(url: str, experiment: str | None) -> tuple[str | None, list[RunRecord]]:
    """``(experiment, runs)`` from the records at ``url``: the named experiment, else the latest one."""
    import psycopg

    try:
        return _read_experiment(url, experiment)
    except psycopg.Error as exc:
        from agentflow.api.settings import redacted_url

        raise RecordsError(f"cannot read the records at {redacted_url(url)}: {exc}") from exc


def _read_experiment(url: str, experiment: str | None) -> tuple[str | None, list[RunRecord]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        exists = conn.execute("SELECT to_regclass('agentflow_runs') AS t").fetchone()
        if not exists or exists["t"] is None:
            return experiment, []
        if experiment is None:
            latest = conn.execute("SELECT experiment FROM agentflow_runs WHERE experiment IS NOT NULL "
                                  "ORDER BY started DESC LIMIT 1").fetchone()
            if latest is None:
                return None, []
            experiment = latest["experiment"]
        rows = conn.execute(
            "SELECT r.*, coalesce(f.up, 0) AS up, coalesce(f.down, 0) AS down FROM agentflow_runs r LEFT JOIN "
            "(SELECT run_id, sum((score > 0)::int) AS up, sum((score < 0)::int) AS down FROM agentflow_feedback "
            "GROUP BY run_id) f USING (run_id) WHERE r.experiment = %s ORDER BY r.started", (experiment,)).fetchall()
    runs = [RunRecord(run_id=r["run_id"], workflow=r["workflow"], status=r["status"], duration_s=r["duration_s"],
                      tokens=r["tokens"], cost=r["cost"],
                      tags={k: v for k, v in (("experiment", r["experiment"]), ("variant", r["variant"]),
                                              ("thread", r["thread_id"]), ("user", r["user_id"])) if v},
                      feedback_up=int(r["up"]), feedback_down=int(r["down"])) for r in rows]
    return experiment, runs
