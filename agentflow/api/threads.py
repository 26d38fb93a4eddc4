"""Threads: conversations and resumable runs, kept by LangGraph's checkpointers.

A thread is a conversation. Each run on it (a *turn*) is checkpointed under its own LangGraph thread,
``<workflow>/<thread>#<turn>``, so that a turn starts from the workflow's inputs alone, never from what the turn
before left in the state (a route, citations, loop counters), and so that a failed turn can be resumed
from the step that failed (``resume: true``) without re-running the steps that finished.

A new turn continues the conversation: the workflow's ``history`` input gets the previous turn's history
with its question and answer appended. The checkpointer is SQLite by default (``.agentflow/checkpoints.db``)
and PostgreSQL with a ``postgresql://`` URL (``langgraph-checkpoint-postgres``), which every worker and
machine of a deployment shares: any of them continues any thread. On PostgreSQL a turn holds an advisory
lock on its thread, so two workers never run the same thread at once; on SQLite the runs of one thread
wait for each other within a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow.errors import ConfigError
from agentflow.graph.checkpoints import postgres_saver, require_postgres, sqlite_saver

THREAD_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
"""What a thread id may hold (``#`` separates the thread from its turn in the checkpointer)."""
POOL_SIZE = 20


class ThreadError(Exception):
    """A thread request that cannot be served: an unknown thread, nothing to resume (a 404 or 409)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Turn:
    """The latest turn of a thread: its number, final or last checkpointed values, and whether it ended."""

    number: int
    values: dict[str, Any]
    finished: bool


def check_thread_id(thread_id: str) -> str:
    if not THREAD_ID.match(thread_id):
        raise ThreadError(f"thread_id {thread_id[:60]!r} is not valid: 1-200 letters, digits and . _ : @ -", 422)
    return thread_id


def turn_key(workflow: str, thread_id: str, turn: int) -> str:
    """The LangGraph thread of one turn: a thread id is a workflow's (two workflows may use one id)."""
    return f"{workflow}/{thread_id}#{turn}"


class Threads:
    """The checkpointer of one worker, and what the server asks of it about threads."""

    def __init__(self, saver: Any, location: str, pool: Any = None) -> None:
        self.saver = saver
        self.location = location
        self._pool = pool
        self._graphs: dict[int, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def postgres(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> Any:
        """PostgreSQL's connection pool (None on SQLite)."""
        return self._pool

    async def latest(self, flow: Any, thread_id: str) -> Turn | None:
        """The thread's latest turn, or None for a thread with no run yet."""
        name = flow.name
        if not await self._exists(name, thread_id, 1):
            return None
        low, high = 1, 2
        while await self._exists(name, thread_id, high):  # doubling, then bisection: O(log turns) look-ups
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if await self._exists(name, thread_id, middle):
                low = middle
            else:
                high = middle
        snapshot = await self._graph(flow).aget_state(_config(turn_key(name, thread_id, low)))
        return Turn(low, dict(snapshot.values or {}), finished=not snapshot.next)

    async def _exists(self, workflow: str, thread_id: str, turn: int) -> bool:
        return await self.saver.aget_tuple(_config(turn_key(workflow, thread_id, turn))) is not None

    def _graph(self, flow: Any) -> Any:
        graph = self._graphs.get(id(flow))
        if graph is None:
            graph = self._graphs[id(flow)] = flow.compile().builder.compile(checkpointer=self.saver)
        return graph

    @contextlib.asynccontextmanager
    async def hold(self, thread_id: str) -> AsyncIterator[None]:
        """One run at a time on a thread: within this worker, and on PostgreSQL across workers."""
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        try:
            async with lock:
                if self._pool is None:
                    yield
                    return
                async with self._pool.connection() as conn:
                    await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (thread_id,))
                    try:
                        yield
                    finally:
                        await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (thread_id,))
        finally:
            if not lock.locked() and self._locks.get(thread_id) is lock:
                del self._locks[thread_id]


def _config(key: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": key, "checkpoint_ns": ""}}


@contextlib.asynccontextmanager
async def open_threads(location: str, *, setup: bool = True) -> AsyncIterator[Threads]:
    """The checkpointer at ``location`` (a SQLite file, or a ``postgresql://`` URL), open while in use.

    ``setup`` creates or migrates PostgreSQL's checkpoint tables (under an advisory lock, so workers
    starting together do it once); SQLite's are created on first use.
    """
    if location.startswith(("postgresql://", "postgres://")):
        async with _postgres(location, setup=setup) as threads:
            yield threads
        return
    import aiosqlite

    path = Path(location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), timeout=30)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the checkpoint database {str(path)!r}: {exc}") from exc
    try:
        saver = sqlite_saver(conn)
        await saver.setup()
        yield Threads(saver, str(path))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _postgres(url: str, *, setup: bool) -> AsyncIterator[Threads]:
    try:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        require_postgres()
    except ImportError as exc:
        raise ConfigError(f"--checkpoint postgresql://... needs the serve extra ({exc.name} is missing): "
                          "pip install 'agentflow[serve]'") from None
    from agentflow.api.settings import redacted_url

    pool = AsyncConnectionPool(url, min_size=1, max_size=POOL_SIZE, open=False,
                               kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
    try:
        await pool.open(wait=True, timeout=15)
    except (PoolTimeout, psycopg.Error) as exc:
        await pool.close()
        raise ConfigError(f"cannot connect to the checkpoint database {redacted_url(url)}: {exc}") from None
    try:
        saver = postgres_saver(pool)
        if setup:
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_advisory_lock(hashtextextended('agentflow-checkpoints', 0))")
                try:
                    await postgres_saver(conn).setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended('agentflow-checkpoints', 0))")
        yield Threads(saver, redacted_url(url), pool=pool)
    finally:
        await pool.close()
