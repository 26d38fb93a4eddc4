"""Test-wide guards: no network beyond this machine, no provider keys, offline models."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache"}
_BEFORE = pytest.StashKey[dict]()

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the on-disk embedding cache of this test session, not the developer's .agentflow/
os.environ.setdefault("AGENTFLOW_EMBEDDING_CACHE",
                      os.path.join(tempfile.mkdtemp(prefix="agentflow-tests-"), "embeddings.db"))

_real_connect = socket.socket.connect


def _local_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (
        host in ("localhost", "::1") or host.startswith("127.") or self.family == socket.AF_UNIX
    ):
        raise RuntimeError(f"tests are offline: connection to {address!r} refused")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _local_only)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def _project_data() -> dict[str, tuple[int, int]]:
    """Every file under a ``.agentflow/`` folder of the checkout, with its mtime and size: what a
    test would leave behind by running agentflow from the repository root."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        if ".agentflow" not in Path(dirpath).relative_to(ROOT).parts:
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, ROOT)] = (st.st_mtime_ns, st.st_size)
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _project_data()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests never write into the checkout: a run that left or changed files under a
    ``.agentflow/`` of the repository fails, naming them."""
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    after = _project_data()
    written = sorted(p for p, st in after.items() if before.get(p) != st)
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {p}" for p in written[:20])
        message = (f"tests wrote into the checkout ({len(written)} file(s) under .agentflow/); "
                   f"run agentflow from tmp_path in tests:\n{lines}")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line(message, red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

