"""Running the workflow server: in the foreground with K workers (``agentflow serve``), or on a thread.

With ``--workers K`` uvicorn starts K processes that share the port; each builds its own app (its
workflows, services and checkpointer connection) from the settings in :data:`SETTINGS_ENV`, so nothing is
shared between them but the checkpointer's database and the trace store's file.
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI

from agentflow import web
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


class ServerThread(web.ServerThread):
    """The server on a background thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(ServeSettings(files=("graphs/agentic_rag.yaml",), port=0)) as server:
    ...     print(server.url)
    """

    def __init__(self, settings: ServeSettings) -> None:
        super().__init__(create_app(settings), host=settings.host, port=settings.port,
                         what="the workflow server", stop_timeout=30.0)

    def start(self, timeout: float = 300.0) -> ServerThread:
        """Start serving (building the workflows' services can take minutes: the default waits 300 s)."""
        super().start(timeout)
        return self
