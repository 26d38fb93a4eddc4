"""The trace viewer: a FastAPI app over the trace store, and the static page that draws it.

Reads only, but for feedback: the store is opened read-only, and a thumbs up or down goes through
:func:`agentflow.tracing.feedback.record_feedback`. Pages (``/``, ``/runs/{id}``, ``/compare``,
``/evals``, ``/evals/{id}``, ``/evals/compare``) are one static shell whose script fetches the JSON
API below; everything it loads ships in the package (``agentflow/ui/static``), so it works offline
and behind no CDN.

- ``GET /api/info``: the trace database shown, and the others the viewer knows (the picker)
- ``GET /api/runs?workflow=&status=&tag=&q=&sort=time|latency|cost&order=desc|asc&limit=&offset=``:
  ``status`` is the outcome (``ok``, ``caveat``, ``abstained``, ``error``, ``incomplete``,
  ``running``), ``tag`` is ``key=value``, ``q`` text in the inputs, the answer or the error
- ``GET /api/runs/{run_id}``: the run, its tags, feedback, declared graph and spans (no payloads),
  columnar
- ``GET /api/runs/{run_id}/spans/{seq}``: one span with its payload, and its child spans'
- ``GET /api/runs/{run_id}/citations``: the answer's citations next to their passages
- ``GET|POST /api/runs/{run_id}/feedback``: ``{"score": "up"|"down", "comment": "..."}``
- ``GET /api/evals``, ``/api/evals/{id}``, ``/api/evals/compare?a=&b=``: evaluations

The database shown is the first given, or the one the page picked (cookie ``af_db``, one of the
ids ``/api/info`` lists); a run not in it is looked up in the others.

Requests whose Host header does not name this server are refused (403), so a web page cannot read the
traces by re-pointing its own DNS name at 127.0.0.1 (DNS rebinding); see :func:`create_app`.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from agentflow.errors import ConfigError
from agentflow.eval.formats import DatasetError
from agentflow.model_server.guards import HostGuard, allowed_hosts
from agentflow.errors import InputError
from agentflow.tracing.feedback import record_feedback
from agentflow.tracing.query import SORT_COLUMNS, SPAN_FIELDS, TraceNotFoundError, TraceReader
from agentflow.ui.citations import resolve
from agentflow.ui.listing import OUTCOMES, RunFilter, feedback_counts, list_runs, tag_values
from agentflow.ui.stores import Database, Stores, path_id

STATIC = Path(__file__).parent / "static"
SQLITE_INT_MAX = 2**63 - 1
"""Largest integer SQLite stores: a bigger number cannot name a row (and would overflow the query)."""


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


COOKIE = "af_db"
MAX_BODY = 20_000


def create_app(
    db_path: str | Path | Sequence[str | Path] = ".agentflow/traces.db", *, host: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (), discover: str | Path | None = None,
    evals: Sequence[str | Path] = (),
) -> FastAPI:
    """The trace viewer app over the trace database(s) at ``db_path``, served on ``host``.

    ``discover``: a folder under which ``.agentflow/traces.db`` files are offered in the picker
    too; ``evals``: evaluation folders (or folders of them) beside those found next to each
    database (``.agentflow/eval/runs/``). It answers only requests whose Host header is a loopback
    name, ``host`` itself or one of ``allow_hosts`` (``--allow-host``; see
    :func:`agentflow.model_server.guards.allowed_hosts`).
    """
    paths = [db_path] if isinstance(db_path, (str, Path)) else list(db_path)
    stores = Stores(paths, discover=discover, evals=evals)
    app = FastAPI(title="agentflow traces", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(HostGuard, allowed=allowed_hosts(host, allow_hosts), error=lambda m: {"detail": m},
                       option="--allow-host")
    app.state.db_path = Path(paths[0])
    app.state.stores = stores
    # static files live under a path that changes with their content, so browsers may keep them
    # for good: a page load asks the server for the page and the data only. They are small and
    # read once, at start-up, and served from memory.
    files = static_files()
    prefix = f"/static/{static_version(files)}"
    index = files.pop("index.html")[0].decode("utf-8").replace("/static/", prefix + "/")
    forever = {"Cache-Control": "public, max-age=31536000, immutable"}

    def current(request: Request) -> Database:
        return stores.pick(request.cookies.get(COOKIE))

    def open_db(db: Database) -> tuple[TraceReader, Any] | None:
        try:
            return stores.reader(db)
        except ConfigError as exc:  # not a trace database, or not readable
            raise HTTPException(503, str(exc)) from None

    def find_run(request: Request, run_id: str) -> tuple[Database, TraceReader, str]:
        """The run's database (the one shown first, then the others), reader and full id."""
        shown = current(request)
        error: TraceNotFoundError | None = None
        for db in [shown, *(d for d in stores.databases() if d.id != shown.id)]:
            opened = open_db(db)
            if opened is None:
                continue
            try:
                return db, opened[0], opened[0].resolve(run_id)
            except TraceNotFoundError as exc:
                error = error or exc
        if error is None:
            raise HTTPException(404, f"no traces at {shown.path} yet; run a workflow first")
        raise HTTPException(404, str(error))

    @app.get(prefix + "/{path:path}", include_in_schema=False)
    async def static(path: str) -> Response:
        found = files.get(path)
        if found is None:
            raise HTTPException(404, f"no static file {path!r}")
        return Response(found[0], media_type=found[1], headers=forever)

    @app.get("/", include_in_schema=False)
    @app.get("/runs/{run_id}", include_in_schema=False)
    @app.get("/compare", include_in_schema=False)
    @app.get("/evals", include_in_schema=False)
    @app.get("/evals/{eval_id}", include_in_schema=False)
    async def page(run_id: str | None = None, eval_id: str | None = None) -> HTMLResponse:
        return HTMLResponse(index, headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    def info(request: Request) -> dict[str, Any]:
        shown = current(request)
        return {"db": {"id": shown.id, "path": str(shown.path.resolve())},
                "databases": [{"id": d.id, "path": str(d.path.resolve()), "exists": d.path.is_file()}
                              for d in stores.databases()],
                "cookie": COOKIE}

    @app.get("/api/runs")
    def runs(
        request: Request,
        workflow: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        q: str | None = Query(None, max_length=500),
        sort: str = "time",
        order: str = "desc",
        limit: int = Query(200, ge=1, le=5_000),
        offset: int = Query(0, ge=0, le=SQLITE_INT_MAX),
    ) -> dict[str, Any]:
        if sort not in SORT_COLUMNS:
            raise HTTPException(400, f"unknown sort {sort!r}; valid: {', '.join(SORT_COLUMNS)}")
        if status and status not in OUTCOMES:
            raise HTTPException(400, f"unknown status {status!r}; valid: {', '.join(OUTCOMES)}")
        shown = current(request)
        opened = open_db(shown)
        if opened is None:
            return {"runs": [], "workflows": [], "tags": {}, "db": str(shown.path)}
        reader, conn = opened
        found = list_runs(reader, conn, RunFilter(
            workflow=workflow or None, outcome=status or None, tag=tag or None, text=q or None,
            sort=sort, descending=order != "asc", limit=limit, offset=offset))
        return {"runs": found, "workflows": reader.workflows(), "tags": tag_values(conn),
                "db": str(shown.path)}

    @app.get("/api/runs/{run_id}")
    def get_run(request: Request, run_id: str) -> Response:
        db, reader, run_id = find_run(request, run_id)
        detail = reader.run(run_id, with_spans=False)
        meta = {**detail.summary.to_dict(), "inputs": detail.inputs, "output": detail.output,
                "graph": detail.graph, "span_fields": list(SPAN_FIELDS),
                "feedback": [f.to_dict() for f in reader.feedback(run_id)],
                "db": {"id": db.id, "path": str(db.path.resolve()), "shown": db.id == current(request).id}}
        spans = reader.spans_json(detail.summary.run_id, run_status=detail.summary.status)
        body = json.dumps(meta, ensure_ascii=False)[:-1] + ', "spans": ' + spans + "}"
        return Response(body, media_type="application/json")

    @app.get("/api/runs/{run_id}/spans/{seq}")
    def get_span(request: Request, run_id: str, seq: int) -> dict[str, Any]:
        _, reader, run_id = find_run(request, run_id)
        try:
            if not 0 <= seq <= SQLITE_INT_MAX:
                raise TraceNotFoundError(f"run {run_id!r} has no span #{seq}")
            span = reader.span(run_id, seq)
        except TraceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return {"span": span, "children": reader.children(run_id, span["span_id"])}

    @app.get("/api/runs/{run_id}/citations")
    def get_citations(request: Request, run_id: str) -> dict[str, Any]:
        _, reader, run_id = find_run(request, run_id)
        detail = reader.run(run_id, with_spans=False)
        output = detail.output if isinstance(detail.output, dict) else {}
        view = resolve(output, reader.retrieval_hits(detail.summary.run_id))
        return view.add_attribution(reader.last_check(detail.summary.run_id, "attribution")).to_dict()

    @app.get("/api/runs/{run_id}/feedback")
    def get_feedback(request: Request, run_id: str) -> dict[str, Any]:
        _, reader, run_id = find_run(request, run_id)
        return {"feedback": [f.to_dict() for f in reader.feedback(run_id)]}

    @app.post("/api/runs/{run_id}/feedback")
    async def post_feedback(request: Request, run_id: str) -> dict[str, Any]:
        # a cross-site form can post to 127.0.0.1 too: only JSON (which a page on another site can
        # send only after a CORS preflight this server never grants) from this origin is taken
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send the feedback as JSON (Content-Type: application/json)")
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1].lower() != request.headers.get("host", "").lower():
            raise HTTPException(403, f"feedback from another origin ({origin}) is refused")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise HTTPException(413, f"feedback body over {MAX_BODY:,} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            raise HTTPException(400, "the feedback body is not JSON") from None
        if not isinstance(body, dict) or "score" not in body:
            raise HTTPException(400, 'give {"score": "up" or "down", "comment": "..."}')
        db, _, run_id = find_run(request, run_id)
        comment = body.get("comment")
        comment = comment.strip() or None if isinstance(comment, str) else comment
        try:
            fb = record_feedback(db.path, run_id, score=body["score"], comment=comment, source="ui")
        except TraceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        except ConfigError as exc:
            raise HTTPException(503, str(exc)) from None
        stores.written(db)
        return {"feedback": fb.to_dict()}

    @app.get("/api/evals")
    def list_evals() -> dict[str, Any]:
        from agentflow.ui import evals as ev

        return {"evals": [ev.card(f, path_id(f)) for f in stores.eval_folders()]}

    @app.get("/api/evals/compare")
    def compare_evals(a: str, b: str) -> dict[str, Any]:
        from agentflow.ui import evals as ev

        out = ev.comparison(_eval(a), _eval(b))
        for side in ("a", "b"):
            counts = feedback_of(out["run_ids"][side])
            out[side]["feedback"] = {"up": sum(u for u, _ in counts.values()),
                                     "down": sum(d for _, d in counts.values()),
                                     "runs_rated": len(counts)}
        return out

    @app.get("/api/evals/{eval_id}")
    def get_eval(eval_id: str) -> dict[str, Any]:
        from agentflow.ui import evals as ev

        out = ev.detail(_eval(eval_id), eval_id)
        counts = feedback_of([i["run_id"] for i in out["items"]])
        for item in out["items"]:
            item["feedback_up"], item["feedback_down"] = counts.get(item["run_id"], (0, 0))
        return out

    def feedback_of(run_ids: list[str]) -> dict[str, tuple[int, int]]:
        """The thumbs on these runs, from every database the viewer knows (an evaluation's
        runs are traced where it ran)."""
        found: dict[str, tuple[int, int]] = {}
        for db in stores.databases():
            opened = open_db(db)
            if opened is not None:
                for run_id, counts in feedback_counts(opened[1], run_ids).items():
                    found.setdefault(run_id, counts)
        return found

    def _eval(eval_id: str) -> Path:
        folder = stores.eval_folder(eval_id)
        if folder is None:
            raise HTTPException(404, f"no evaluation {eval_id!r}; see /api/evals")
        return folder

    @app.exception_handler(DatasetError)
    async def unreadable_eval(request: Request, exc: DatasetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
