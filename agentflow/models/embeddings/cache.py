"""The on-disk embedding cache: vectors kept in SQLite, keyed by the text's hash.

A corpus is embedded once: later runs (and other processes) find its sentences' vectors here and
load the model only for texts they have not seen. Where it lives is a setting of the models
config (``models.embedding_cache.path`` in ``agentflow.yaml``, default
``.agentflow/embeddings.db``); the environment variable :data:`EMBEDDING_CACHE_ENV` overrides it
where the router is built (:func:`cache_path`), and ``off`` switches it off.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EMBEDDING_CACHE_ENV = "AGENTFLOW_EMBEDDING_CACHE"
"""Overrides ``models.embedding_cache.path``: another file, or ``off``."""

DEFAULT_PATH = os.path.join(".agentflow", "embeddings.db")
"""Where the cache lives by default, relative to the project directory."""


class EmbeddingCache:
    """Embedding vectors on disk (SQLite), keyed by the text's hash, shared by every process.

    A corpus is embedded once: later runs find its sentences' vectors here and load the model
    only for texts they have not seen. Vectors are float32, unit length.

    The cache is an optimisation, never a reason for a run to fail: when it cannot be read or
    written (a full disk, a read-only folder, a database locked for more than 30 s) it
    logs one warning and the process goes on without it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import sqlite3

        self.path = str(path)
        self.disabled: str | None = None
        """Why the cache was switched off in this process, if it was."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB)")
        self._lock = threading.Lock()

    def _disable(self, doing: str, exc: Exception) -> None:
        if self.disabled is None:
            self.disabled = f"{doing}: {exc}"
            log.warning(
                "embedding cache %s: cannot %s (%s); going on without it (vectors are computed "
                "again). Set models.embedding_cache.path (or AGENTFLOW_EMBEDDING_CACHE) to another "
                "file, or to 'off'",
                self.path, doing, exc,
            )

    @staticmethod
    def key(text: str, model: str | None = None) -> bytes:
        """The row key of ``text``'s vector: the text's hash for MiniLM (``model`` None, the
        keys every earlier cache has), the model's name and the text's for any other model."""
        import hashlib

        keyed = text if model is None else f"{model}\x00{text}"
        return hashlib.blake2b(keyed.encode("utf-8"), digest_size=16).digest()

    def get_many(self, texts: list[str], model: str | None = None) -> dict[str, Any]:
        """The vectors found of ``texts`` (``model`` as in :meth:`key`), by text."""
        import sqlite3

        import numpy as np

        keys = {self.key(t, model): t for t in texts}
        found: dict[str, Any] = {}
        items = list(keys)
        if self.disabled is not None:
            return found
        try:
            with self._lock:
                for i in range(0, len(items), 500):
                    batch = items[i : i + 500]
                    marks = ",".join("?" * len(batch))
                    for key, blob in self._db.execute(
                            f"SELECT key, vec FROM vectors WHERE key IN ({marks})", batch):
                        found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        except (sqlite3.Error, OSError) as exc:
            self._disable("read", exc)
            return {}
        return found

    def put_many(self, pairs: list[tuple[str, Any]], model: str | None = None) -> None:
        """Keep ``(text, vector)`` pairs (``model`` as in :meth:`key`)."""
        import sqlite3

        import numpy as np

        if self.disabled is not None:
            return
        rows = [(self.key(t, model), np.asarray(v, dtype=np.float32).tobytes()) for t, v in pairs]
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
        except (sqlite3.Error, OSError) as exc:
            self._disable("write", exc)


_lock = threading.Lock()
_caches: dict[str, EmbeddingCache] = {}
_unusable: set[str] = set()


def cache_path(
    configured: str = DEFAULT_PATH,
    *,
    root: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path | None:
    """The cache file in force: ``$AGENTFLOW_EMBEDDING_CACHE`` when set, else ``configured``
    (``models.embedding_cache.path``); a relative path is taken from ``root`` (default the
    working directory). None when either says ``off``."""
    env = os.environ if env is None else env
    path = env.get(EMBEDDING_CACHE_ENV) or configured
    if path.strip().lower() == "off":
        return None
    resolved = Path(path)
    if not resolved.is_absolute():
        resolved = Path(root) / resolved if root is not None else resolved
    return resolved.absolute()


def shared_cache(path: str | os.PathLike[str] | None) -> EmbeddingCache | None:
    """The one :class:`EmbeddingCache` of this process at ``path`` (opened on first use, so every
    embedder writing there shares a connection); None for no path, or when the file cannot be
    opened (logged once: the cache is never a reason for a run to fail)."""
    import sqlite3

    if path is None:
        return None
    key = os.path.abspath(path)
    with _lock:
        if key not in _caches:
            try:
                _caches[key] = EmbeddingCache(key)
            except (OSError, sqlite3.Error) as exc:
                if key not in _unusable:
                    _unusable.add(key)
                    log.warning("embedding cache %s: cannot open it (%s); going on without it",
                                key, exc)
                return None
        return _caches[key]
