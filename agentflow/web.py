"""An ASGI app served by uvicorn on a background thread of this process: what the trace viewer's and
the workflow server's ``ServerThread`` share (tests, notebooks, benchmarks). ``port=0`` picks a free
port, which :meth:`ServerThread.start` reads back once the server listens.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import uvicorn


class ServerThread:
    """``app`` served on a daemon thread; a context manager that starts and stops it.

    ``what`` names the server in the error raised when it does not start in time.
    """

    def __init__(self, app: Any, *, host: str, port: int = 0, what: str = "the server",
                 lifespan: Literal["on", "off"] = "on", stop_timeout: float = 10.0) -> None:
        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan=lifespan)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"agentflow {what}", daemon=True)
        self._what = what
        self._stop_timeout = stop_timeout
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        """Start serving and wait until the server listens (RuntimeError after ``timeout`` s)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._what} did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(self._stop_timeout)

    def __enter__(self) -> ServerThread:  # noqa: PYI034 (the started server, as start() returns it)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
