"""Faults around the embedded store: kill -9 of an ingestion, a full disk, two processes at once.

Every test drives the real ``agentflow`` command in a subprocess, in a project under
``tmp_path``, with the hash embedder (no model to load), and checks the collection afterwards in
this process through :class:`~agentflow.retrieval.edge.EdgeStore` (closed again before the next
subprocess, since an embedded shard is open in one process at a time).

- kill -9 at several points of an ingestion: a ``sitecustomize`` on the subprocess's path slows
  the embedder down (``EMBED_DELAY_S`` per batch), so the test can read the progress bar and kill
  the process at a known point. Afterwards every document in the collection is whole, and a
  re-ingest completes it with no duplicate chunk.
- full disk: a small tmpfs mounted for the test (as root); where mounting is not permitted, the
  free space the store sees is injected instead (see the test's docstring).
- two runs at once on one ``.agentflow``: the second waits for the first to let go of the shard.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow.errors import RetrievalError
from agentflow.retrieval.edge import EdgeStore

WAIT_S = 60.0
"""The bound on every wait: a broken build fails the test instead of hanging it."""
DOCS = 240
CHUNKS_PER_DOC = 5
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega").split()

SLOW_EMBEDDER = '''
import asyncio, os

_delay = float(os.environ.get("EMBED_DELAY_S", "0"))
if _delay:
    from agentflow.models.embeddings import hashing as embedders

    _embed = embedders.HashEmbedder.embed

    async def _slow(self, texts):
        await asyncio.sleep(_delay)
        return await _embed(self, texts)

    embedders.HashEmbedder.embed = _slow
'''


def _write_docs(folder: Path, count: int = DOCS, *, tag: str = "") -> None:
    """``count`` markdown-free text files of 100 words: 5 chunks each at --chunk-size 20."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        words = [f"{WORDS[(i * 7 + j) % len(WORDS)]}{(i + j) % 13}" for j in range(100)]
        (folder / f"doc{i:04d}.txt").write_text(f"{tag}document {i} " + " ".join(words[2:]))


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    env["AGENTFLOW_EMBEDDING_CACHE"] = "off"
    env.update(extra)
    return env


def _ingest_command(collection: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentflow.cli", "ingest", "docs", "--collection", collection,
            "--embedder", "hash", "--chunker", "tokens", "--chunk-size", "20",
            "--chunk-overlap", "0", *extra]


def _ingest(project: Path, collection: str = "kb") -> subprocess.CompletedProcess[str]:
    return subprocess.run(_ingest_command(collection, "--no-progress"), cwd=project,
                          env=_env(project), capture_output=True, text=True, timeout=WAIT_S,
                          stdin=subprocess.DEVNULL)


def _chunks(project: Path, collection: str = "kb") -> Counter[str] | None:
    """``{source: chunk count}`` of a collection (None when it does not exist), checking that no
    chunk id appears twice; opened and closed again in this process."""

    async def read() -> Counter[str] | None:
        store = EdgeStore(collection, project / ".agentflow" / "qdrant")
        try:
            if not await store.exists():
                return None
            rows = await store.scan(["chunk_id", "source"])
            ids = Counter(row["chunk_id"] for row in rows)
            assert not [i for i, n in ids.items() if n > 1], "duplicate chunks"
            assert len(rows) == await store.count()
            return Counter(row["source"] for row in rows)
        finally:
            await store.close()

    return asyncio.run(read())


# -- kill -9 -----------------------------------------------------------------------------


def _kill_after(project: Path, chunks: int) -> str:
    """Start an ingestion, SIGKILL it once its progress bar has passed ``chunks``; return what it
    printed."""
    env = _env(project, EMBED_DELAY_S="0.15")
    proc = subprocess.Popen(_ingest_command("kb"), cwd=project, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen, deadline = b"", time.monotonic() + WAIT_S
    try:
        while True:
            seen += proc.stderr.read() or b""
            done = [int(n) for n in re.findall(rb"(\d+)/\d+ \[", seen)]
            if done and max(done) >= chunks:
                break
            if proc.poll() is not None:
                raise AssertionError(f"the ingestion ended (code {proc.returncode}) before "
                                     f"{chunks} chunks: {seen.decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no progress past {chunks} chunks in {WAIT_S} s")
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    return seen.decode(errors="replace")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sitecustomize.py").write_text(SLOW_EMBEDDER)
    _write_docs(tmp_path / "docs")
    return tmp_path


@pytest.mark.parametrize("at", [64, 700, 1100])
def test_an_ingestion_killed_at_any_point_leaves_whole_documents_and_finishes_on_rerun(
        project: Path, at: int) -> None:
    """Killed after the first batch and in the middle of the first window of about 1,024 chunks
    (nothing written yet), and during the second window (the first one written, or being
    written)."""
    _kill_after(project, at)

    after_kill = _chunks(project)
    if after_kill is not None:  # whatever was written is whole documents
        assert set(after_kill.values()) == {CHUNKS_PER_DOC}, after_kill

    rerun = _ingest(project)
    assert rerun.returncode == 0, rerun.stderr
    complete = _chunks(project)
    assert complete is not None and len(complete) == DOCS
    assert set(complete.values()) == {CHUNKS_PER_DOC}
    assert "0 removed" in rerun.stdout

    again = _ingest(project)  # nothing left to do: a third pass writes nothing
    assert again.returncode == 0 and "0 chunk(s) written" in again.stdout, again.stdout


# -- full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 96 MB tmpfs at ``tmp_path/disk``, or None where this process may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)],
        capture_output=True, timeout=30).returncode == 0
    try:
        yield mount if made else None
    finally:
        if made:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _fill(disk: Path, leave_mb: float) -> Path:
    """Fill ``disk`` until only ``leave_mb`` MB stay free; returns the filler file."""
    filler = disk / f"filler-{time.monotonic_ns()}"
    free = shutil.disk_usage(disk).free - int(leave_mb * 2**20)
    with filler.open("wb") as handle:
        block = b"\0" * 2**20
        while free > 0:
            try:
                handle.write(block[: min(free, len(block))])
                handle.flush()
            except OSError:  # ENOSPC: as full as it gets
                break
            free -= len(block)
    return filler


def test_a_full_disk_is_a_clear_error_and_leaves_the_collection_intact(
        small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a real small file system (a tmpfs, which also fills the shard's sparse files when it
    is opened): re-ingesting, or creating a collection, with too little space left exits with a
    message naming the path and the space needed, never SIGBUS (exit 135 / -7), and the earlier
    collection is whole once space is freed.

    Where mount is not permitted (not root), the free space the store sees is injected by
    monkeypatching ``agentflow.retrieval.disk.free_bytes`` and the same steps run in process.
    """
    if small_disk is None:
        _full_disk_injected(tmp_path, monkeypatch)
        return
    project = small_disk / "project"
    _write_docs(project / "docs", 20)
    first = _ingest(project)  # the shard's files stay sparse: no process has opened it yet
    assert first.returncode == 0, first.stderr

    (project / "docs" / "doc0000.txt").write_text("changed text " * 50)
    for leave in (20.0, 0.0):  # too little for the store to open, then nothing at all
        filler = _fill(small_disk, leave)
        for collection in ("kb", "fresh"):
            result = _ingest(project, collection)
            assert result.returncode == 1, (result.returncode, result.stderr)
            assert "not enough free disk space at" in result.stderr, result.stderr
            assert f"qdrant/{collection}" in result.stderr and "MB free" in result.stderr
        assert not (project / ".agentflow" / "qdrant" / "fresh").exists()
        filler.unlink()

    whole = Counter({f"docs/doc{i:04d}.txt": CHUNKS_PER_DOC for i in range(20)})
    assert _chunks(project) == whole  # nothing lost, nothing half-written
    rerun = _ingest(project)
    assert rerun.returncode == 0 and "1 updated" in rerun.stdout, rerun.stderr
    assert _chunks(project) == whole


def _full_disk_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentflow.models.embeddings import HashEmbedder
    from agentflow.retrieval import disk
    from agentflow.retrieval.ingestion import ingest

    _write_docs(tmp_path / "docs", 20)

    async def run(collection: str) -> None:
        store = EdgeStore(collection, tmp_path / ".agentflow" / "qdrant")
        try:
            await ingest(["docs"], store, embedder=HashEmbedder(), root=tmp_path, progress=False)
        finally:
            await store.close()

    asyncio.run(run("kb"))
    before = _chunks(tmp_path)
    (tmp_path / "docs" / "doc0000.txt").write_text("changed text " * 50)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 2**20)
    for collection in ("kb", "fresh"):
        with pytest.raises(RetrievalError, match=r"not enough free disk space at .*MB free"):
            asyncio.run(run(collection))
    monkeypatch.undo()
    assert _chunks(tmp_path) == before
    assert not (tmp_path / ".agentflow" / "qdrant" / "fresh").exists()


def test_the_embedding_cache_on_a_full_disk_warns_once_and_goes_on(
        small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Writes to the on-disk embedding cache fail with SQLITE_FULL on the filled tmpfs (where
    mounting is not permitted: an injected ``sqlite3.OperationalError``); the cache switches
    itself off with one warning, and lookups go on, uncached."""
    import sqlite3

    import numpy as np

    from agentflow.models.embeddings import EmbeddingCache

    cache = EmbeddingCache((small_disk or tmp_path) / "embeddings.db")
    cache.put_many([("seed", np.ones(384, dtype=np.float32))])
    if small_disk is not None:
        _fill(small_disk, 0)
    else:
        class Full:
            """A connection whose every statement fails as SQLite does on a full disk."""

            def __enter__(self) -> Full:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def execute(self, *args: object) -> None:
                raise sqlite3.OperationalError("database or disk is full")

            executemany = execute

        monkeypatch.setattr(cache, "_db", Full())
    vectors = [(f"text {i} " * 40, np.ones(384, dtype=np.float32)) for i in range(2000)]
    with caplog.at_level(logging.WARNING, logger="agentflow.models.embeddings.cache"):
        cache.put_many(vectors)
        cache.put_many(vectors)
        assert cache.get_many(["seed"]) == {}  # switched off: computed again, not failed
    warnings = [r for r in caplog.records if "embedding cache" in r.getMessage()]
    assert len(warnings) == 1 and "going on without it" in warnings[0].getMessage()
    assert cache.disabled is not None and cache.disabled.startswith("write")


# -- two processes at once ---------------------------------------------------------------

RUN_STEPS = '''
import os, time


def hold(inputs):
    open(f"started-{os.getpid()}", "w").close()
    time.sleep(float(os.environ.get("HOLD_S", "0")))
    return {"answer": inputs["chunks"][0].text if inputs["chunks"] else ""}
'''

WORKFLOW = '''
version: 1
name: search_and_hold
inputs:
  question: {type: string}
outputs: [answer]
state:
  chunks: {type: list}
collections:
  kb: {source: docs, embedder: hash}
nodes:
  search: {type: retrieve, collection: kb, input: question, output: chunks, top_k: 2}
  hold: {type: python, function: "run_steps:hold", reads: [question, chunks], writes: [answer]}
flow: [search, hold]
'''


def _run_command(question: str) -> list[str]:
    return [sys.executable, "-m", "agentflow.cli", "run", "search.yaml", "--allow-module",
            "run_steps", "-q", "--output", "json", "-i", f"question={question}"]


def test_two_runs_on_one_store_both_finish_the_second_waiting(tmp_path: Path) -> None:
    """The first run holds the shard open while its last node sleeps; the second, started then,
    waits for the shard's lock instead of failing with "Can't init WAL: Kind(WouldBlock)"."""
    (tmp_path / "run_steps.py").write_text(RUN_STEPS)
    (tmp_path / "search.yaml").write_text(WORKFLOW)
    _write_docs(tmp_path / "docs", 10)
    env = _env(tmp_path, HOLD_S="2", AGENTFLOW_STORE_LOCK_TIMEOUT=str(WAIT_S))
    first = subprocess.Popen(_run_command("alpha"), cwd=tmp_path, env=env, text=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT_S
    while not list(tmp_path.glob("started-*")):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never reached its last node"
        time.sleep(0.02)
    second = subprocess.run(_run_command("beta"), cwd=tmp_path, env={**env, "HOLD_S": "0"},
                            text=True, capture_output=True, timeout=WAIT_S * 2,
                            stdin=subprocess.DEVNULL)
    out, err = first.communicate(timeout=WAIT_S)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert '"answer": "document' in out and '"answer": "document' in second.stdout
    assert len(list(tmp_path.glob("started-*"))) == 2
