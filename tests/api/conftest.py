"""A workflow server on a free port of 127.0.0.1, over a throw-away project, for the API tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agentflow.api.server import ServerThread
from agentflow.api.settings import ServeSettings
from tests.api.support import HangingServer, project


@dataclass
class Served:
    url: str
    root: Path
    server: ServerThread
    hanging: HangingServer

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)  # type: ignore[arg-type]

    @property
    def traces(self) -> Path:
        return self.root / ".agentflow" / "traces.db"


def start(root: Path, hanging: HangingServer, **options: object) -> ServerThread:
    files = tuple(str(root / f"{n}.yaml") for n in ("echo", "slow", "flaky", "timeout"))
    settings = ServeSettings(files=files, root=str(root), port=0, **options)  # type: ignore[arg-type]
    return ServerThread(settings).start()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test project's workflows served in this process (the module runs in the project folder,
    where its python steps write)."""
    hanging = HangingServer()
    root = project(tmp_path_factory.mktemp("served"), hanging_port=hanging.port)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AGENTFLOW_TRACES_DB", raising=False)
        mp.setenv("AF_TEST_WAIT_S", "30")
        server = start(root, hanging, max_request_bytes=64 * 1024, stream_heartbeat_s=0.2)
        try:
            yield Served(server.url, root, server, hanging)
        finally:
            server.stop()
            hanging.close()
            os.environ.pop("AF_TEST_WAIT_S", None)
