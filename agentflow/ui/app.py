"""The trace viewer: a FastAPI app over the trace store, and the static page that draws it.

Read-only: the app never writes the store. Pages (``/``, ``/runs/{id}``, ``/compare``) are one
static shell whose script fetches the JSON API below; everything it loads ships in the package
(``agentflow/ui/static``), so it works offline and behind no CDN.

- ``GET /api/runs?workflow=&status=&sort=time|latency|cost&order=desc|asc&limit=&offset=``
- ``GET /api/runs/{run_id}``: the run, its declared graph and its spans (no payloads), columnar
- ``GET /api/runs/{run_id}/spans/{seq}``: one span with its payload, and its child spans'
- ``GET /api/runs/{run_id}/citations``: the answer's citations next to their passages

Requests whose Host header does not name this server are refused (403), so a web page cannot read the
traces by re-pointing its own DNS name at 127.0.0.1 (DNS rebinding); see :func:`create_app`.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from agentflow.errors import ConfigError
from agentflow.serve.guards import HostGuard, allowed_hosts
from agentflow.tracing.query import (
    RUN_STATUSES,
    SORT_COLUMNS,
    SPAN_FIELDS,
    TraceNotFoundError,
    TraceReader,
)
from agentflow.ui.citations import resolve

STATIC = Path(__file__).parent / "static"
SQLITE_INT_MAX = 2**63 - 1
"""Largest integer SQLite stores: a bigger number cannot name a row (and would overflow the query)."""


class _Readers:
    """One reader per server thread (SQLite connections are not shared across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> TraceReader | None:
        """The thread's reader; None while there are no traces yet. Readers open the store
        read-only, so a viewer needs no write access to it."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            try:
                reader = self._local.reader = TraceReader(self.path)
            except TraceNotFoundError:
                return None
            except ConfigError as exc:  # not a trace database, or not readable
                raise HTTPException(503, str(exc)) from None
        return reader

    def require(self) -> TraceReader:
        reader = self.get()
        if reader is None:
            raise HTTPException(404, f"no traces at {self.path} yet; run a workflow first")
        return reader


def static_version(files: dict[str, tuple[bytes, str]]) -> str:
    """A short hash of the static files' names and contents."""
    digest = hashlib.blake2b(digest_size=5)
    for name, (body, _) in sorted(files.items()):
        digest.update(name.encode() + b"\0" + body)
    return digest.hexdigest()


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the viewer's page by its path under ``static/``, with its media type."""
    out = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix == ".js":
                media = "text/javascript"
            if media.startswith("text/"):
                media += "; charset=utf-8"
            out[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), media)
    return out


def create_app(
    db_path: str | Path = ".agentflow/traces.db", *, host: str = "127.0.0.1", allow_hosts: Sequence[str] = (),
) -> FastAPI:
    """The trace viewer app over the trace database at ``db_path``, served on ``host``.

    It answers only requests whose Host header is a loopback name, ``host`` itself or one of
    ``allow_hosts`` (``--allow-host``; see :func:`agentflow.serve.guards.allowed_hosts`).
    """
    readers = _Readers(Path(db_path))
    app = FastAPI(title="agentflow traces", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(HostGuard, allowed=allowed_hosts(host, allow_hosts), error=lambda m: {"detail": m},
                       option="--allow-host")
    app.state.db_path = Path(db_path)
    # static files live under a path that changes with their content, so browsers may keep them
    # for good: a page load asks the server for the page and the data only. They are small and
    # read once, at start-up, and served from memory.
    files = static_files()
    prefix = f"/static/{static_version(files)}"
    index = files.pop("index.html")[0].decode("utf-8").replace("/static/", prefix + "/")
    forever = {"Cache-Control": "public, max-age=31536000, immutable"}

    @app.get(prefix + "/{path:path}", include_in_schema=False)
    async def static(path: str) -> Response:
        found = files.get(path)
        if found is None:
            raise HTTPException(404, f"no static file {path!r}")
        return Response(found[0], media_type=found[1], headers=forever)

    @app.get("/", include_in_schema=False)
    @app.get("/runs/{run_id}", include_in_schema=False)
    @app.get("/compare", include_in_schema=False)
    async def page(run_id: str | None = None) -> HTMLResponse:
        return HTMLResponse(index, headers={"Cache-Control": "no-cache"})

    @app.get("/api/runs")
    def list_runs(
        workflow: str | None = None,
        status: str | None = None,
        sort: str = "time",
        order: str = "desc",
        limit: int = Query(200, ge=1, le=5_000),
        offset: int = Query(0, ge=0, le=SQLITE_INT_MAX),
    ) -> dict[str, Any]:
        if sort not in SORT_COLUMNS:
            raise HTTPException(400, f"unknown sort {sort!r}; valid: {', '.join(SORT_COLUMNS)}")
        if status and status not in RUN_STATUSES:
            raise HTTPException(400, f"unknown status {status!r}; valid: {', '.join(RUN_STATUSES)}")
        reader = readers.get()
        if reader is None:
            return {"runs": [], "workflows": [], "db": str(readers.path)}
        runs = reader.runs(workflow=workflow or None, status=status or None, sort=sort,  # type: ignore[arg-type]
                           descending=order != "asc", limit=limit, offset=offset)
        return {"runs": [r.to_dict() for r in runs], "workflows": reader.workflows(),
                "db": str(readers.path)}

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> Response:
        reader = readers.require()
        try:
            detail = reader.run(run_id, with_spans=False)
        except TraceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        meta = {**detail.summary.to_dict(), "inputs": detail.inputs, "output": detail.output,
                "graph": detail.graph, "span_fields": list(SPAN_FIELDS)}
        spans = reader.spans_json(detail.summary.run_id, run_status=detail.summary.status)
        body = json.dumps(meta, ensure_ascii=False)[:-1] + ', "spans": ' + spans + "}"
        return Response(body, media_type="application/json")

    @app.get("/api/runs/{run_id}/spans/{seq}")
    def get_span(run_id: str, seq: int) -> dict[str, Any]:
        reader = readers.require()
        try:
            run_id = reader.resolve(run_id)
            if not 0 <= seq <= SQLITE_INT_MAX:
                raise TraceNotFoundError(f"run {run_id!r} has no span #{seq}")
            span = reader.span(run_id, seq)
        except TraceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return {"span": span, "children": reader.children(run_id, span["span_id"])}

    @app.get("/api/runs/{run_id}/citations")
    def get_citations(run_id: str) -> dict[str, Any]:
        reader = readers.require()
        try:
            detail = reader.run(run_id, with_spans=False)
        except TraceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        output = detail.output if isinstance(detail.output, dict) else {}
        return resolve(output, reader.retrieval_hits(detail.summary.run_id)).to_dict()

    return app
