"""Serving the trace viewer: in the foreground (``agentflow ui``) or on a thread (tests, notebooks).

The viewer listens on 127.0.0.1 unless told otherwise: traces hold prompts and answers, and the
API has no authentication, so exposing it on a network is an explicit choice (``--host 0.0.0.0``).
Requests must name the server in their Host header: a loopback name, the bound address, or a name
given with ``allow_hosts`` (``--allow-host``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from agentflow.ui.app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8737


def serve(db_path: str | Path | Sequence[str | Path], *, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, allow_hosts: Sequence[str] = (),
          discover: str | Path | None = None, evals: Sequence[str | Path] = ()) -> None:
    """Serve the viewer until interrupted (arguments as :func:`agentflow.ui.app.create_app`)."""
    app = create_app(db_path, host=host, allow_hosts=allow_hosts, discover=discover, evals=evals)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class ServerThread:
    """The viewer on a background thread; ``port=0`` picks a free port.

    >>> with ServerThread(".agentflow/traces.db") as server:
    ...     print(server.url)
    """

    def __init__(self, db_path: str | Path | Sequence[str | Path], *, host: str = DEFAULT_HOST,
                 port: int = 0, allow_hosts: Sequence[str] = (), discover: str | Path | None = None,
                 evals: Sequence[str | Path] = ()) -> None:
        app = create_app(db_path, host=host, allow_hosts=allow_hosts, discover=discover,
                         evals=evals)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="agentflow-ui", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the trace viewer did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = self._server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
