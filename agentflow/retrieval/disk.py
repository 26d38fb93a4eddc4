"""Free-space checks for the embedded store, so that a full disk is an error and not a SIGBUS.

qdrant-edge maps its files into memory and creates them as sparse files of fixed size: 32 MB
write-ahead-log segments, 32 MB chunks of dense vectors, 32 MB payload and sparse-vector pages,
1-4 MB payload-index files. A page of such a file gets its disk block only when it is first
written, or, on tmpfs, when it is first read (the engine reads its dense vectors and payload
indexes in whole when it opens a shard: about 47 MB for a 12-chunk collection). If the block
cannot be allocated, the kernel sends SIGBUS, which kills the process with no message (Python
cannot catch it). So the store asks for the space before each step that touches new pages.

The estimates are measured on qdrant-edge-py 0.9. The engine offers no setting for the sizes of
these files (``EdgeConfig`` and ``EdgeOptimizersConfig`` have none); ``Memory.Cold`` for the dense
vectors and the payload indexes would cut what tmpfs fills at open to about 15 MB, at the price of
cold first searches, so it is not used.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from agentflow.errors import RetrievalError
from agentflow.retrieval.store import SPARSE

MB = 1 << 20
MARGIN = 4 * MB
"""Head room for every step: the WAL entry, the config file the engine rewrites on open."""
NEW_SHARD = 8 * MB
"""An empty shard with its three keyword payload indexes: 7.3 MB on tmpfs, 0.1 MB on ext4."""
WRITE_FACTOR = 3
"""Bytes a write allocates per byte of its records: the WAL entry, the segment's vectors and
payload, the payload indexes (1.8 measured)."""
RECORD_OVERHEAD = 512
"""Bytes per record besides its vectors and text: ids, payload keys, index entries."""
OPTIMIZED_POINT = 4096
"""Bytes per point besides its dense vector in a segment an optimizer writes: payload, sparse
vector, payload-index entries, HNSW links."""

_FILLS_ON_READ = frozenset({"tmpfs", "ramfs", "hugetlbfs"})
"""File systems where reading a hole of a shared mapping allocates it (shared memory)."""
_LAZY_PARTS = frozenset({"wal", "payload_storage", f"vector_storage-{SPARSE}"})
"""Parts of a shard that the engine fills page by page as data is written, never in whole at
open (measured on tmpfs): the WAL, the payload pages, the sparse-vector pages."""


def free_bytes(path: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system of ``path`` (or of its nearest
    existing parent); None when that cannot be known."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def filesystem_type(path: Path) -> str | None:
    """The type of the file system ``path`` is on (``ext4``, ``tmpfs``...), from
    ``/proc/self/mounts``; None where there is no such file (not Linux)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


def open_need(shard: Path) -> int:
    """Bytes that opening ``shard`` may allocate: on a file system that fills holes on reads,
    the unallocated part of every file the engine reads in whole; elsewhere just the margin."""
    if filesystem_type(shard) not in _FILLS_ON_READ:
        return MARGIN
    holes = 0
    for folder, subfolders, names in os.walk(shard):
        subfolders[:] = [d for d in subfolders if d not in _LAZY_PARTS]
        for name in names:
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            holes += max(0, st.st_size - st.st_blocks * 512)
    return MARGIN + holes


def optimize_need(points: int, dim: int) -> int:
    """Bytes an optimizer pass may allocate: it may write every point into a new segment (its
    vectors, payload, indexes and HNSW links) before it deletes the old one."""
    return MARGIN + points * (4 * dim + OPTIMIZED_POINT)


def write_need(dims: int, texts: int, count: int) -> int:
    """Bytes that writing ``count`` records may allocate, given their summed vector dimensions
    (dense + sparse entries) and their summed text length."""
    return MARGIN + WRITE_FACTOR * (4 * dims + texts + RECORD_OVERHEAD * count)


def require_space(path: Path, need: int, what: str) -> None:
    """Raise a RetrievalError unless ``need`` bytes are free where ``path`` lives."""
    free = free_bytes(path)
    if free is None or free >= need:
        return
    raise RetrievalError(
        f"not enough free disk space at {path}: {free / MB:.1f} MB free, the embedded store "
        f"needs about {max(1, round(need / MB))} MB to {what}. Free some space there, or put the "
        "collection on another disk (the collection's `store: embedded:PATH`, or "
        "`agentflow ingest --store embedded:PATH`)"
    )
