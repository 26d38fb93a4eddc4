"""The embedded store on a full disk and under a second process: clear errors, waiting locks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agentflow.errors import RetrievalError
from agentflow.retrieval import disk
from agentflow.retrieval.catalog import open_store
from agentflow.retrieval.edge import EdgeStore
from agentflow.retrieval.holders import LOCK_TIMEOUT_ENV, lock_timeout
from agentflow.retrieval.store import Record, SparseVector

HOLDER = """
import asyncio, sys, time
from agentflow.retrieval.edge import EdgeStore

async def main():
    store = EdgeStore("kb", sys.argv[1])
    await store.count()
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
    await store.close()

asyncio.run(main())
"""


def _records(n: int, dim: int = 8) -> list[Record]:
    return [
        Record(f"00000000-0000-0000-0000-{i:012d}", [1.0] + [0.0] * (dim - 1),
               SparseVector([i], [1.0]), {"text": f"chunk {i}", "source": f"s{i}"})
        for i in range(n)
    ]


async def _make(root: Path, n: int = 3) -> None:
    store = EdgeStore("kb", root)
    await store.create(8)
    await store.upsert(_records(n))
    await store.close()


def _hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that opens the collection and keeps it open for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=root.parent)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


async def test_a_shard_held_by_another_process_is_waited_for(tmp_path: Path) -> None:
    root = tmp_path / "qdrant"
    await _make(root)
    holder = _hold(root, 1.0)
    try:
        store = EdgeStore("kb", root, lock_timeout=60)
        assert await store.count() == 3  # waited for the holder instead of WouldBlock
        await store.close()
    finally:
        holder.wait(timeout=60)


async def test_a_shard_held_past_the_timeout_names_the_holder_and_its_pid(tmp_path: Path) -> None:
    root = tmp_path / "qdrant"
    await _make(root)
    holder = _hold(root, 30.0)
    try:
        started = time.monotonic()
        with pytest.raises(RetrievalError, match=(
                rf"collection 'kb' at .*qdrant/kb is locked by process {holder.pid} \(.*python"
                rf".*\); waited 0s.*{LOCK_TIMEOUT_ENV}")):
            await EdgeStore("kb", root, lock_timeout=0.3).count()
        assert time.monotonic() - started < 20
    finally:
        holder.kill()
        holder.wait(timeout=60)


def test_the_lock_timeout_comes_from_the_environment_and_is_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    assert lock_timeout() == 30.0
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, bad)
        with pytest.raises(RetrievalError, match=rf"{LOCK_TIMEOUT_ENV}='{bad}' is not a number"):
            lock_timeout()


async def test_too_little_space_is_an_error_before_the_engine_touches_the_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "qdrant"
    monkeypatch.setattr(disk, "free_bytes", lambda path: 3 * disk.MB)
    with pytest.raises(RetrievalError, match=(
            r"not enough free disk space at .*qdrant/kb: 3\.0 MB free, the embedded store needs "
            r"about 12 MB to create collection 'kb'.*store: embedded:PATH")):
        await EdgeStore("kb", root).create(8)
    assert not (root / "kb").exists()

    monkeypatch.undo()
    await _make(root)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 5 * disk.MB)
    store = EdgeStore("kb", root)
    with pytest.raises(RetrievalError, match=r"needs about \d+ MB to write 2000 chunk\(s\)"):
        await store.upsert(_records(2000, dim=384))
    assert await store.count() == 3  # nothing of the refused write
    await store.close()


async def test_a_full_disk_error_from_the_engine_says_the_disk_is_full(tmp_path: Path) -> None:
    store = EdgeStore("kb", tmp_path)
    error = store._error("write to", Exception("No space left on device (os error 28)"))
    assert "the disk is full" in str(error) and "collection 'kb'" in str(error)


async def test_on_tmpfs_opening_needs_the_space_of_the_files_it_reads_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs allocates a sparse file's holes when they are read: the dense vectors and the
    payload indexes, read whole at open, count; the WAL and the payload pages do not."""
    root = tmp_path / "qdrant"
    await _make(root)
    assert disk.open_need(root / "kb") == disk.MARGIN or disk.filesystem_type(root) == "tmpfs"
    monkeypatch.setattr(disk, "filesystem_type", lambda path: "tmpfs")
    need = disk.open_need(root / "kb")
    assert 32 * disk.MB < need < 96 * disk.MB  # one 32 MB vector chunk, a few MB of indexes
    monkeypatch.setattr(disk, "free_bytes", lambda path: need - 1)
    with pytest.raises(RetrievalError, match="to open collection 'kb'"):
        await EdgeStore("kb", root).count()


async def test_a_new_collection_that_could_not_be_opened_again_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk, "filesystem_type", lambda path: "tmpfs")
    monkeypatch.setattr(disk, "free_bytes", lambda path: 20 * disk.MB)
    store = EdgeStore("kb", tmp_path / "qdrant")
    await store.create(8)
    with pytest.raises(RetrievalError, match="which every later run does"):
        await store.upsert(_records(3))
    assert not (tmp_path / "qdrant" / "kb").exists()
    assert not await store.exists()


def test_filesystem_type_reads_the_mount_table(tmp_path: Path) -> None:
    if not Path("/proc/self/mounts").exists():
        assert disk.filesystem_type(tmp_path) is None
        return
    kind = disk.filesystem_type(tmp_path)
    assert kind and kind == disk.filesystem_type(tmp_path / "not" / "there")
    assert disk.free_bytes(tmp_path / "not" / "there") == disk.free_bytes(tmp_path)


async def test_embedded_path_puts_a_collection_in_another_folder(tmp_path: Path) -> None:
    store = open_store("kb", "embedded:elsewhere", base_dir=tmp_path)
    assert isinstance(store, EdgeStore) and store.path == tmp_path / "elsewhere" / "kb"
    absolute = open_store("kb", f"embedded:{tmp_path / 'abs'}", base_dir="/nowhere")
    assert isinstance(absolute, EdgeStore) and absolute.path == tmp_path / "abs" / "kb"
    with pytest.raises(RetrievalError, match="unknown store 'embedded:'"):
        open_store("kb", "embedded:", base_dir=tmp_path)


async def test_the_holder_pid_file_is_removed_on_close(tmp_path: Path) -> None:
    root = tmp_path / "qdrant"
    await _make(root)
    store = EdgeStore("kb", root)
    await store.count()
    assert (root / ".kb.lock").read_text().strip() == str(os.getpid())
    await store.close()
    assert not (root / ".kb.lock").exists()


def test_the_embedding_cache_goes_on_without_a_database_it_cannot_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from agentflow.models.embeddings import EmbeddingCache

    path = tmp_path / "embeddings.db"
    cache = EmbeddingCache(path)
    cache.put_many([("a", np.ones(4, dtype=np.float32))])
    cache._db.close()  # as if the file had gone bad under it
    with caplog.at_level(logging.WARNING, logger="agentflow.models.embeddings.cache"):
        assert cache.get_many(["a", "b"]) == {}
        cache.put_many([("b", np.ones(4, dtype=np.float32))])
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [f"embedding cache {path}"]
    assert cache.disabled is not None and cache.disabled.startswith("read")
