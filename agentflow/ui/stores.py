"""Which trace databases and evaluation folders the viewer shows.

``agentflow ui`` shows one trace database at a time (``--db PATH``, repeatable; the first is shown
first) and offers the others it knows in a picker: those given, and the ``.agentflow/traces.db``
files under the folder it was started in (runs made from a sub-folder are traced into that
folder's ``.agentflow/``). The page picks one by its id (a cookie); nothing outside this list can
be opened from the browser.

Evaluations are the folders ``agentflow eval`` writes (``metrics.json`` and ``results.jsonl``):
those under ``.agentflow/eval/runs/`` beside each known database, and any given with ``--evals``
(an evaluation folder, or a folder of them).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentflow.tracing.query import TraceNotFoundError, TraceReader, open_readonly

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
             ".ruff_cache", ".tox", "site-packages"}
MAX_DEPTH = 4
"""How deep under the start folder the viewer looks for ``.agentflow/traces.db`` files."""
MAX_FOUND = 50
RESCAN_S = 10.0
METRICS, RESULTS = "metrics.json", "results.jsonl"
"""The files that make a folder an evaluation (see :mod:`agentflow.eval.results`)."""


def path_id(path: Path) -> str:
    """A short stable id of a file or folder (its resolved path's hash)."""
    return hashlib.blake2b(str(path.resolve()).encode(), digest_size=5).hexdigest()


def find_databases(root: Path, *, depth: int = MAX_DEPTH) -> list[Path]:
    """``.agentflow/traces.db`` files under ``root`` (not in virtual environments, caches, VCS)."""
    found: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        if len(found) >= MAX_FOUND:
            return
        candidate = folder / ".agentflow" / "traces.db"
        if candidate.is_file():
            found.append(candidate)
        if level >= depth:
            return
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in children:
            if entry.is_dir(follow_symlinks=False) and entry.name not in SKIP_DIRS and \
                    not entry.name.startswith("."):
                walk(Path(entry.path), level + 1)

    walk(root, 0)
    return found


@dataclass(frozen=True, slots=True)
class Database:
    id: str
    path: Path


class Stores:
    """The trace databases the viewer may show, and one reader (and read-only connection) per
    database per server thread (SQLite connections are not shared across threads)."""

    def __init__(self, paths: Sequence[str | Path], *, discover: str | Path | None = None,
                 evals: Sequence[str | Path] = ()) -> None:
        if not paths:
            raise ValueError("the viewer needs at least one trace database path")
        self.given = [Path(p) for p in paths]
        self.discover = Path(discover) if discover is not None else None
        self.eval_roots = [Path(p) for p in evals]
        self._local = threading.local()
        self._generation: dict[str, int] = {}
        self._found: tuple[float, list[Path]] | None = None

    def databases(self) -> list[Database]:
        """The given databases, then those found under the start folder (each once; the folder is
        looked through again at most every :data:`RESCAN_S` seconds)."""
        now = time.monotonic()
        if self._found is None or now - self._found[0] > RESCAN_S:
            self._found = (now, find_databases(self.discover) if self.discover else [])
        out: dict[str, Database] = {}
        for path in [*self.given, *self._found[1]]:
            out.setdefault(path_id(path), Database(path_id(path), path))
        return list(out.values())

    def pick(self, db_id: str | None) -> Database:
        """The database with id ``db_id``; the first given one when there is none such."""
        first = Database(path_id(self.given[0]), self.given[0])
        if not db_id or db_id == first.id:
            return first
        for db in self.databases():
            if db.id == db_id:
                return db
        return first

    def reader(self, db: Database) -> tuple[TraceReader, sqlite3.Connection] | None:
        """This thread's reader and connection for ``db``; None while it holds no traces yet."""
        cache: dict[str, tuple[int, TraceReader, sqlite3.Connection]] = \
            self._local.__dict__.setdefault("open", {})
        generation = self._generation.get(db.id, 0)
        found = cache.get(db.id)
        if found is not None and found[0] != generation:
            found[1].close()
            found[2].close()
            found = None
        if found is None:
            try:
                reader = TraceReader(db.path)
            except TraceNotFoundError:
                return None
            found = cache[db.id] = (generation, reader, open_readonly(db.path))
        return found[1], found[2]

    def written(self, db: Database) -> None:
        """Say that ``db`` was written (feedback): readers open it again, so a store that just
        gained its feedback table is read with it."""
        self._generation[db.id] = self._generation.get(db.id, 0) + 1

    def eval_folders(self) -> list[Path]:
        """Every evaluation folder the viewer knows, newest first."""
        roots = [*self.eval_roots, *(db.path.parent / "eval" / "runs" for db in self.databases())]
        seen: dict[str, Path] = {}
        for folder in _eval_candidates(roots):
            seen.setdefault(path_id(folder), folder)
        return sorted(seen.values(), key=_mtime, reverse=True)

    def eval_folder(self, eval_id: str) -> Path | None:
        return next((f for f in self.eval_folders() if path_id(f) == eval_id), None)


def _eval_candidates(roots: Sequence[Path]) -> Iterator[Path]:
    for root in roots:
        if (root / METRICS).is_file():
            yield root
            continue
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and (child / METRICS).is_file() and (child / RESULTS).is_file():
                yield child
            elif child.is_dir() and child.name == "eval" and (child / "runs").is_dir():
                yield from _eval_candidates([child / "runs"])


def _mtime(folder: Path) -> float:
    try:
        return (folder / METRICS).stat().st_mtime
    except OSError:
        return 0.0
