"""The workflow server: a FastAPI app over the served workflows.

- ``GET /workflows``: each workflow's name, description, inputs, outputs and the JSON Schema of its inputs
- ``POST /workflows/{name}/runs``: run to the end; ``{"inputs": {...}, "thread_id", "user_id", "resume"}``
- ``POST /workflows/{name}/runs/stream``: the same, as Server-Sent Events: every event of the run
  (``run_started``, ``node_finished``, ``model_call``, ... as ``Flow.astream`` yields them), then ``end``
  with the outcome, or ``error``
- ``GET /workflows/{name}/threads/{thread_id}``: a thread's latest turn
- ``GET /runs/{run_id}``: the trace of a run (spans, tags, feedback)
- ``POST /runs/{run_id}/feedback``: thumbs up or down, with an optional comment and user id
- ``POST /v1/chat/completions``, ``GET /v1/models``: see :mod:`agentflow.api.chat`
- ``GET /health``

In front of every route (:mod:`agentflow.model_server.guards`, shared with the model server and the trace viewer):
the Host header must name this server (DNS rebinding), the API key when one is set (every route), and a
body size limit (413 before anything is parsed). Errors are ``{"error": {"type", "message", ...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agentflow.api.runs import Outcome, Runner
from agentflow.api.settings import ServeSettings
from agentflow.api.threads import ThreadError, check_thread_id, open_threads
from agentflow.api.workflows import (
    InputsInvalid,
    ServedWorkflow,
    check_single_process_stores,
    load_served,
)
from agentflow.errors import known

TRACE_WAIT_S = 3.0
"""How long ``GET /runs/{id}`` and feedback wait for a just-finished run to reach the trace store
(written in batches on the store's thread; another worker's store flushes on its own)."""


class RunRequest(BaseModel):
    """The body of ``POST /workflows/{name}/runs`` (and ``/runs/stream``)."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    """The workflow's inputs (see ``GET /workflows`` for their schema)."""
    thread_id: str | None = None
    """Continue this conversation (the workflow's ``history`` input is filled from it), or start it."""
    user_id: str | None = Field(None, max_length=200)
    """Who asks: recorded with the run, and what keeps a user on one A/B variant (``assign_by: user``)."""
    resume: bool = False
    """Resume the thread's failed run from the step that failed (no inputs)."""


class FeedbackRequest(BaseModel):
    """The body of ``POST /runs/{run_id}/feedback``."""

    model_config = ConfigDict(extra="forbid")

    score: str | int
    """``"up"`` or ``"down"`` (or 1 / -1)."""
    comment: str | None = None
    user_id: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **extra}}


def create_app(settings: ServeSettings) -> FastAPI:
    """The app of one worker: its lifespan loads the workflows, their services and the checkpointer."""
    from agentflow.api import chat

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from agentflow.tracing.defaults import (
            default_db_path,
            hooks_or_warn,
            tracing_enabled,
        )

        served = await load_served(settings)
        check_single_process_stores(served, settings.workers)
        setup = settings.extra.get("setup", True)
        async with open_threads(settings.checkpoint_url, setup=setup) as threads:
            records = None
            if threads.postgres and settings.records:
                from agentflow.api.records import Records

                records = Records(threads.pool)
                if setup:
                    await records.setup()
            app.state.served = served
            app.state.runner = Runner(threads, hooks_or_warn("served runs", settings.root), records)
            app.state.traces = default_db_path(settings.root) if tracing_enabled() else None
            try:
                yield
            finally:
                for workflow in served.values():
                    _close_models(workflow)

    app = FastAPI(title="agentflow workflows", lifespan=lifespan,
                  description="Workflows served by agentflow: runs, streams, threads, feedback and an "
                              "OpenAI-compatible chat endpoint.")
    _add_guards(app, settings)
    _add_error_handlers(app)
    _add_routes(app, settings)
    chat.add_routes(app, settings)
    return app


def _close_models(workflow: ServedWorkflow) -> None:
    routers = [workflow.services.models]
    if workflow.experiment is not None:
        routers += [v.services.models for v in workflow.experiment.variants]
    for router in routers:
        close = getattr(router, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def _add_guards(app: FastAPI, settings: ServeSettings) -> None:
    """Host check outermost, then the key, then the body size (middlewares added last run first)."""
    from agentflow.model_server.guards import BodyLimit, HostGuard, KeyGuard, allowed_hosts

    def error(message: str) -> dict[str, Any]:
        return error_body("invalid_request_error", message)

    def auth_error(message: str) -> dict[str, Any]:
        return error_body("authentication_error", message)

    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, error=error,
                       option="--max-request-bytes")
    app.add_middleware(KeyGuard, api_key=settings.api_key(), open_paths=(), error=auth_error)
    app.add_middleware(HostGuard, allowed=allowed_hosts(settings.host, settings.allow_hosts), error=error,
                       option="--allow-host")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.kind, str(exc), **exc.extra), exc.status)

    @app.exception_handler(InputsInvalid)
    async def inputs_invalid(request: Request, exc: InputsInvalid) -> JSONResponse:
        return JSONResponse(error_body("invalid_inputs", str(exc), workflow=exc.workflow,
                                       problems=[p.to_dict() for p in exc.problems]), 422)

    @app.exception_handler(ThreadError)
    async def thread_error(request: Request, exc: ThreadError) -> JSONResponse:
        return JSONResponse(error_body("thread_error", str(exc)), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, param = request_problem(exc.errors(), exc.body)
        return JSONResponse(error_body("invalid_request_error", message, param=param), status)


def request_problem(errors: Any, body: Any = None) -> tuple[int, str, str | None]:
    """``(status, message, field)`` of a body FastAPI could not read: 400 for JSON that does not parse
    (with where), 422 naming the field, what is wrong and what was sent."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        cause = (first.get("ctx") or {}).get("error") or first.get("msg")
        pos = first.get("loc", ("body", None))[-1]
        where = ""
        if isinstance(pos, int):
            where = f" at position {pos}"
            if isinstance(body, str):
                line, column = body.count("\n", 0, pos) + 1, pos - body.rfind("\n", 0, pos)
                where += f" (line {line}, column {column})"
        return 400, f"request body is not valid JSON: {cause}{where}", None
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    if first.get("type") == "missing" and not loc:
        return 400, "request body is missing: send a JSON object", None
    if first.get("type") == "extra_forbidden":
        return 422, f"unknown field {field!r} in the request body", field
    got = first.get("input")
    return 422, f"{field or 'body'}: {first.get('msg')} (got {json.dumps(got)[:80] if _plain(got) else type(got).__name__})", field


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict)) or value is None


def served_workflow(request: Request, name: str) -> ServedWorkflow:
    served: Mapping[str, ServedWorkflow] = request.app.state.served
    workflow = served.get(name)
    if workflow is None:
        raise ApiError(404, "unknown_workflow", f"no workflow {name!r} is served here; served: {known(served)}",
                       served=sorted(served))
    return workflow


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        return {"status": "ok", "workflows": sorted(request.app.state.served)}

    @app.get("/workflows")
    async def workflows(request: Request) -> dict[str, Any]:
        return {"workflows": [w.describe() for w in request.app.state.served.values()]}

    @app.get("/workflows/{name}")
    async def workflow(request: Request, name: str) -> dict[str, Any]:
        return served_workflow(request, name).describe()

    @app.post("/workflows/{name}/runs")
    async def run(request: Request, name: str, body: RunRequest) -> JSONResponse:
        served = served_workflow(request, name)
        runner: Runner = request.app.state.runner
        async with runner.plan(served, body.inputs, thread_id=body.thread_id, user_id=body.user_id,
                               resume=body.resume) as plan:
            outcome = await runner.run(plan)
        return JSONResponse(outcome.to_dict(), outcome.http_status)

    @app.post("/workflows/{name}/runs/stream")
    async def stream(request: Request, name: str, body: RunRequest) -> StreamingResponse:
        served = served_workflow(request, name)
        runner: Runner = request.app.state.runner
        # checked before the response starts, so that a bad request is an HTTP error, not an event
        await runner.check(served, body.inputs, thread_id=body.thread_id, resume=body.resume)

        async def events() -> AsyncIterator[str]:
            try:
                async with runner.plan(served, body.inputs, thread_id=body.thread_id, user_id=body.user_id,
                                       resume=body.resume) as plan:
                    async for item in with_heartbeat(runner.stream(plan), settings.stream_heartbeat_s):
                        if item is None:
                            yield ": keep-alive\n\n"
                        elif isinstance(item, Outcome):
                            yield sse("end" if item.status == "ok" else "error", item.to_dict())
                        else:
                            yield sse(item.kind, event_dict(item))
            except (ThreadError, InputsInvalid) as exc:  # the thread changed since the check
                yield sse("error", {"status": "error", "error": str(exc), "error_type": "thread_error"})

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    @app.get("/workflows/{name}/threads/{thread_id}")
    async def thread(request: Request, name: str, thread_id: str) -> dict[str, Any]:
        from agentflow.graph.result import to_jsonable

        served = served_workflow(request, name)
        check_thread_id(thread_id)
        latest = await request.app.state.runner.threads.latest(served.flow, thread_id)
        if latest is None:
            raise ThreadError(f"workflow {name!r} has no thread {thread_id!r}", 404)
        return {"workflow": name, "thread_id": thread_id, "turns": latest.number,
                "status": "finished" if latest.finished else "interrupted",
                "values": to_jsonable(served.workflow.outputs_of(latest.values) if latest.finished
                                      else {k: v for k, v in latest.values.items() if not k.startswith("_")})}

    @app.get("/runs/{run_id}")
    async def trace(request: Request, run_id: str) -> dict[str, Any]:
        # the trace store writes on its own thread: a run this worker just answered is read back
        # whole once what it buffered is written (read-your-writes for a client that asks at once)
        await asyncio.to_thread(_flush, request.app.state.runner.hooks)
        return await asyncio.to_thread(_read_run, request.app.state.traces, run_id)

    @app.post("/runs/{run_id}/feedback", status_code=201)
    async def feedback(request: Request, run_id: str, body: FeedbackRequest) -> dict[str, Any]:
        records = request.app.state.runner.records
        if records is None:
            return await asyncio.to_thread(_record_feedback, request.app.state.traces, run_id, body)
        return await _shared_feedback(request, records, run_id, body)


def _flush(hooks: list[Any], timeout: float = 5.0) -> None:
    """Wait for the trace hooks that write in the background to write what they hold."""
    for hook in hooks:
        flush = getattr(hook, "flush", None)
        if callable(flush):
            flush(timeout)


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(kind: str, data: Any) -> str:
    """One Server-Sent Event."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def event_dict(event: Any) -> dict[str, Any]:
    """A trace event as JSON (what the stream sends)."""
    from agentflow.graph.result import to_jsonable

    return {"kind": event.kind, "run_id": event.run_id, "span_id": event.span_id,
            "parent_id": event.parent_id, "name": event.name, "step_type": event.step_type,
            "time": event.time, "branch": event.branch, "pass_index": event.pass_index,
            "item_index": event.item_index, "status": event.status, "error": event.error,
            "data": to_jsonable(event.data)}


async def with_heartbeat(items: AsyncIterator[Any], every_s: float) -> AsyncIterator[Any]:
    """``items``, with a None each ``every_s`` seconds without one (proxies close idle streams)."""
    iterator = items.__aiter__()
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None if done else pending
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({pending})
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


# the trace store ------------------------------------------------------------------------------
def _flushed(db: Any, attempt: Any, wait_s: float = TRACE_WAIT_S) -> Any:
    """``attempt()``, retried while the run is not in the store yet (its batch is still being written)."""
    from agentflow.tracing.defaults import flush_default_hooks
    from agentflow.tracing.query import TraceNotFoundError

    if db is None:
        raise ApiError(404, "tracing_off", "tracing is off on this server (AGENTFLOW_TRACES=off): runs "
                                           "are not recorded")
    deadline = time.monotonic() + wait_s
    flushed = False
    while True:
        try:
            return attempt()
        except TraceNotFoundError as exc:
            if not flushed:
                flush_default_hooks(TRACE_WAIT_S)
                flushed = True
            elif time.monotonic() > deadline:
                raise ApiError(404, "unknown_run", str(exc)) from None
            time.sleep(0.05)


def _read_run(db: Any, run_id: str) -> dict[str, Any]:
    from agentflow.tracing.query import TraceReader

    def read() -> dict[str, Any]:
        with TraceReader(db) as reader:
            detail = reader.run(run_id).to_dict()
            detail["feedback"] = [f.to_dict() for f in reader.feedback(detail["run_id"])]
            return detail

    return _flushed(db, read)


async def _shared_feedback(request: Request, records: Any, run_id: str, body: FeedbackRequest) -> dict[str, Any]:
    """Feedback with PostgreSQL records: stored there (whichever machine ran the run), and in this machine's
    trace store too when the run is in it."""
    from agentflow.api.records import UnknownRun
    from agentflow.errors import InputError
    from agentflow.tracing.feedback import parse_score

    try:
        score = parse_score(body.score)
    except InputError as exc:
        raise ApiError(422, "invalid_feedback", str(exc), param="score") from None
    try:
        shared = await records.add_feedback(run_id, score=score, comment=body.comment, user_id=body.user_id,
                                            source="serve")
    except UnknownRun:
        shared = None
    try:  # another machine's run is not in this store: no waiting for it there
        local = await asyncio.to_thread(_record_feedback, request.app.state.traces, run_id, body,
                                        TRACE_WAIT_S if shared is None else 0.0)
    except ApiError:
        if shared is None:
            raise
        return shared
    return shared or local


def _record_feedback(db: Any, run_id: str, body: FeedbackRequest, wait_s: float = TRACE_WAIT_S) -> dict[str, Any]:
    from agentflow.errors import InputError
    from agentflow.tracing.feedback import record_feedback
    from agentflow.tracing.query import TraceNotFoundError

    def record() -> dict[str, Any]:
        return record_feedback(db, run_id, score=body.score, comment=body.comment, user_id=body.user_id,
                               source="serve").to_dict()

    try:
        return _flushed(db, record, wait_s)
    except TraceNotFoundError as exc:
        raise ApiError(404, "unknown_run", str(exc)) from None
    except InputError as exc:
        raise ApiError(422, "invalid_feedback", str(exc), param="score") from None
