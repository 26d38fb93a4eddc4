"""Test-wide guards: no network beyond this machine, no provider keys, offline models."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

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
