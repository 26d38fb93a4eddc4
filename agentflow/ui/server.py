"""Serving the trace viewer: in the foreground (``agentflow ui``) or on a thread (tests, notebooks).

The viewer listens on 127.0.0.1 unless told otherwise: traces hold prompts and answers, and the
API has no authentication, so exposing it on a network is an explicit choice (``--host 0.0.0.0``).
Requests must name the server in their Host header: a loopback name, the bound address, or a name
given with ``allow_hosts`` (``--allow-host``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import uvicorn

from agentflow import web
from agentflow.ui.app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8737


def serve(db_path: str | Path | Sequence[str | Path], *, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, allow_hosts: Sequence[str] = (),
          discover: str | Path | None = None, evals: Sequence[str | Path] = ()) -> None:
    """Serve the viewer until interrupted (arguments as :func:`agentflow.ui.app.create_app`)."""
    app = create_app(db_path, host=host, allow_hosts=allow_hosts, discover=discover, evals=evals)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class ServerThread(web.ServerThread):
    """The viewer on a background thread; ``port=0`` picks a free port.

    >>> with ServerThread(".agentflow/traces.db") as server:
    ...     print(server.url)
    """

    def __init__(self, db_path: str | Path | Sequence[str | Path], *, host: str = DEFAULT_HOST,
                 port: int = 0, allow_hosts: Sequence[str] = (), discover: str | Path | None = None,
                 evals: Sequence[str | Path] = ()) -> None:
        app = create_app(db_path, host=host, allow_hosts=allow_hosts, discover=discover,
                         evals=evals)
        super().__init__(app, host=host, port=port, what="the trace viewer", lifespan="off")
