"""Running the workflow server: in the foreground with K workers (``agentflow serve``), or on a thread.

With ``--workers K`` uvicorn starts K processes that share the port; each builds its own app (its
workflows, services and checkpointer connection) from the settings in :data:`SETTINGS_ENV`, so nothing is
shared between them but the checkpointer's database and the trace store's file.
"""

from __future__ import annotations

import os
import threading
import time

import uvicorn
from fastapi import FastAPI

from agentflow.api.app import create_app
from agentflow.api.settings import SETTINGS_ENV, ServeSettings


def worker_app() -> FastAPI:
    """The app of one uvicorn worker (a factory: ``uvicorn --factory agentflow.api.server:worker_app``)."""
    return create_app(ServeSettings.from_env())


def serve(settings: ServeSettings, *, log_level: str = "warning") -> None:
    """Serve until interrupted."""
    if settings.workers <= 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                    access_log=False, timeout_graceful_shutdown=30)
        return
    os.environ[SETTINGS_ENV] = settings.to_json()  # the workers are children: they inherit it
    uvicorn.run("agentflow.api.server:worker_app", factory=True, workers=settings.workers, host=settings.host,
                port=settings.port, log_level=log_level, access_log=False, timeout_graceful_shutdown=30)


class ServerThread:
    """The server on a background thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(ServeSettings(files=("graphs/agentic_rag.yaml",), port=0)) as server:
    ...     print(server.url)
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="agentflow-api", daemon=True)
        self.host, self.port = settings.host, settings.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 300.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the workflow server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> ServerThread:  # noqa: PYI034 (the started server, as start() returns it)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
