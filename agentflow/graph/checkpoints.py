"""LangGraph's checkpoint savers, for the code above the engine that keeps threads (a served
workflow's SQLite file or PostgreSQL database): the engine is the one layer that imports LangGraph.
"""

from __future__ import annotations

from typing import Any


def sqlite_saver(conn: Any) -> Any:
    """LangGraph's ``AsyncSqliteSaver`` on an open ``aiosqlite`` connection."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    return AsyncSqliteSaver(conn)


def postgres_saver(conn: Any) -> Any:
    """LangGraph's ``AsyncPostgresSaver`` on a psycopg connection or pool (the ``serve`` extra's
    ``langgraph-checkpoint-postgres``); an ``ImportError`` names the missing package."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    return AsyncPostgresSaver(conn)


def require_postgres() -> None:
    """Raise an ``ImportError`` naming the missing package when the PostgreSQL saver is not
    installed (before any connection is made)."""
    import langgraph.checkpoint.postgres.aio  # noqa: F401
