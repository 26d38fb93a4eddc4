"""Who holds an embedded shard open, and how long another process waits for it.

qdrant-edge locks a shard's write-ahead log while a process has it open, and a second process
that opens it gets ``Can't init WAL: Kind(WouldBlock)``, which names nobody. So each holder writes
its pid to ``.<collection>.lock`` beside the shard; a process that gave up waiting reads it to say
which process (and command) holds the collection.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from agentflow.errors import RetrievalError

LOCK_TIMEOUT_ENV = "AGENTFLOW_STORE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds to wait for a shard that another process holds open."""


def lock_timeout() -> float:
    """Seconds to wait for a locked shard: ``$AGENTFLOW_STORE_LOCK_TIMEOUT``, else 30."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise RetrievalError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds (0 or more)")
    return value


def owner_file(shard: Path) -> Path:
    """The pid file of a shard: ``.<collection>.lock`` beside its folder."""
    return shard.parent / f".{shard.name}.lock"


def claim(shard: Path) -> Path | None:
    """Record this process as the holder of ``shard``; the file written, or None where it
    cannot be (a read-only or full disk: the lock still works, only the name is missing)."""
    owner = owner_file(shard)
    try:
        owner.write_text(f"{os.getpid()}\n")
    except OSError:
        return None
    return owner


def release(owner: Path | None) -> None:
    """Remove a pid file :func:`claim` wrote, unless another process has claimed it since."""
    if owner is None:
        return
    try:
        if owner.read_text().strip() == str(os.getpid()):
            owner.unlink()
    except OSError:
        pass


def holder(shard: Path) -> str:
    """Who holds ``shard``, from its pid file: ``process 123 (agentflow run x.yaml)``, or
    ``another process`` where no pid file names it."""
    try:
        pid = int(owner_file(shard).read_text().strip())
    except (OSError, ValueError):
        return "another process"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"another process (the last holder, pid {pid}, has exited)"
    except OSError:  # alive, owned by another user
        pass
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        command = ""
    if len(command) > 80:
        command = command[:77] + "..."
    return f"process {pid}" + (f" ({command})" if command else "")
