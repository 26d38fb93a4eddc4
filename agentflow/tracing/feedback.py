"""Thumbs up or down on a recorded run: stored beside the run in the trace store.

Feedback comes from the people who read answers: the trace viewer's buttons, a served workflow's
``POST /runs/{id}/feedback``, or Python::

    record_feedback(".agentflow/traces.db", run_id, score="up", comment="cites the right page")

A run may get any number of ratings (several users, a change of mind); readers see them all, in
the order given (:meth:`agentflow.tracing.query.TraceReader.feedback`), and the runs list counts
them. Evaluations, A/B reports and fine-tuning read the same records.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentflow.errors import ConfigError, InputError

SCORES: dict[Any, int] = {"up": 1, "down": -1, "+1": 1, "-1": -1, "1": 1, 1: 1, -1: -1}
"""What ``score`` may be: ``"up"``/``"down"`` or ``1``/``-1``."""
MAX_COMMENT = 10_000
"""Characters of a comment kept; a longer one is refused rather than cut silently."""
MAX_FIELD = 200
"""Characters of a user id or a source name."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """One rating of one run."""

    id: int
    run_id: str
    score: int
    """+1 thumbs up, -1 thumbs down."""
    comment: str | None
    user_id: str | None
    source: str
    """Where it came from: ``ui``, ``api``, ``serve``, ``python``."""
    created: float
    """Unix time."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def thumbs(self) -> str:
        return "up" if self.score > 0 else "down"


FEEDBACK_FIELDS = "id, run_id, score, comment, user_id, source, created"


def parse_score(score: Any) -> int:
    """+1 or -1 from ``"up"``, ``"down"``, ``1`` or ``-1``; an :class:`InputError` otherwise."""
    value = None
    if isinstance(score, str):
        value = SCORES.get(score.strip().lower())
    elif isinstance(score, (int, float)) and not isinstance(score, bool) and score in (1, -1):
        value = int(score)  # True and False are refused: a thumbs down is said, not implied
    if value is None:
        raise InputError(f"feedback score {score!r} is not valid; give 'up' or 'down' (or 1 / -1)")
    return value


def _text(name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"feedback {name} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InputError(f"feedback {name} has {len(value):,} characters; at most {limit:,} are "
                         "kept")
    return value


def record_feedback(
    path: str | Path,
    run_id: str,
    *,
    score: Any,
    comment: str | None = None,
    user_id: str | None = None,
    source: str = "api",
) -> Feedback:
    """Store a thumbs up (``score="up"`` or ``1``) or down for a recorded run; returns it.

    ``run_id`` may be a full id, a unique prefix or ``last``. Raises
    :class:`~agentflow.tracing.query.TraceNotFoundError` when the store has no such run and
    :class:`~agentflow.errors.InputError` for a bad score or an over-long comment. Secrets in the
    comment are redacted as in every other stored text.
    """
    from agentflow.redaction import redact_text, secret_env_values
    from agentflow.tracing.query import TraceReader
    from agentflow.tracing.store import connect

    value = parse_score(score)
    comment = _text("comment", comment, MAX_COMMENT)
    user_id = _text("user_id", user_id, MAX_FIELD)
    source = _text("source", source, MAX_FIELD) or "api"
    with TraceReader(path) as reader:  # a clear error for a missing store or run
        run_id = reader.resolve(run_id)
    if comment:
        comment = redact_text(comment, secret_env_values())
    created = time.time()
    conn = connect(path)  # adds the feedback table to a store written by an older version
    try:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT INTO feedback (run_id, score, comment, user_id, source, created) "
            "VALUES (?, ?, ?, ?, ?, ?)", (run_id, value, comment, user_id, source, created))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise ConfigError(f"cannot store feedback in {str(path)!r}: {exc}") from exc
    finally:
        conn.close()
    return Feedback(int(cur.lastrowid or 0), run_id, value, comment, user_id, source, created)


def feedback_row(row: tuple[Any, ...]) -> Feedback:
    """A :class:`Feedback` from a row of ``SELECT {FEEDBACK_FIELDS}``."""
    return Feedback(int(row[0]), row[1], int(row[2]), row[3], row[4], row[5], float(row[6]))
