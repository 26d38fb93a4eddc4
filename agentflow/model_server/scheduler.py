"""The engine thread and its bridge to asyncio: submit, stream outputs, abort, backpressure.

One thread owns the :class:`~agentflow.model_server.engine.Engine` and steps it while there is work; requests and
aborts reach it through a thread-safe inbox, and each step's outputs go back to the event loop in one
callback. The server holds ``max_batch`` slots of running requests plus ``queue_limit`` waiting requests: a
request counts as waiting only if the slots left by earlier requests (running, or accepted and about to
run) cannot take it, so a burst of simultaneous arrivals gets exactly the room staggered ones get. Past
that, :meth:`submit` raises :class:`QueueFullError`, which the server answers with 503.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from agentflow.model_server.engine import Engine, EngineRequest, StepOutput
from agentflow.model_server.metrics import ServerMetrics

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The server's waiting queue is at its limit."""


class EngineFailedError(RuntimeError):
    """The engine raised while running this request."""


class RequestHandle:
    """The asyncio side of one engine request: iterate its outputs; abort it."""

    def __init__(self, scheduler: Scheduler, request: EngineRequest) -> None:
        self.scheduler, self.request = scheduler, request
        self.queue: asyncio.Queue[StepOutput | BaseException] = asyncio.Queue()
        self.remaining = request.n
        self.engine_remaining = request.n
        self.started = False
        self.done = False
        self.first_token_s: float | None = None
        """Seconds from the request's arrival to its first token, once there is one."""

    async def outputs(self) -> AsyncIterator[StepOutput]:
        """Outputs until every sample has finished; raises :class:`EngineFailedError` if the engine failed."""
        while self.remaining > 0:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise EngineFailedError(str(item)) from item
            if item.finish_reason is not None:
                self.remaining -= 1
            yield item
        self.done = True

    def abort(self) -> None:
        """Stop generating (the client went away); frees the request's slots."""
        if not self.done:
            self.done = True
            self.scheduler.abort(self.request.request_id)


class Scheduler:
    """Runs an engine on a background thread and routes its outputs to request handles."""

    def __init__(self, engine: Engine, *, queue_limit: int, metrics: ServerMetrics | None = None) -> None:
        self.engine, self.queue_limit = engine, queue_limit
        self.metrics = metrics or ServerMetrics()
        self._inbox: queue.Queue[tuple[str, object]] = queue.Queue()
        self._handles: dict[str, RequestHandle] = {}
        self._unstarted: dict[str, int] = {}  # accepted, no output yet, in arrival (= engine) order: slots wanted
        self._held = 0  # slots of requests that have started and not finished every sample
        self._waiting = 0  # accepted requests that will wait for slots (see _recount)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the engine thread; outputs are delivered on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="agentflow-model-server-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine thread (pending requests are dropped)."""
        self._stop.set()
        self._inbox.put(("wake", None))
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def waiting(self) -> int:
        """Requests accepted that wait for slots (those that already have slots to go to are not counted)."""
        return self._waiting

    def _recount(self) -> int:
        """Waiting requests, and the slots still free after those ahead of the queue (under ``_lock``).

        The engine admits in arrival order and a request waits while the one ahead of it does not fit."""
        free = self.engine.config.max_batch - self._held
        waiting = 0
        for wanted in self._unstarted.values():
            if waiting == 0 and wanted <= free:
                free -= wanted
            else:
                waiting += 1
        self._waiting = waiting
        return free if waiting == 0 else 0

    def submit(self, request: EngineRequest) -> RequestHandle:
        """Queue a request; raises :class:`QueueFullError` when it would wait and ``queue_limit`` already do."""
        with self._lock:
            free = self._recount()
            if request.n > free and self._waiting >= self.queue_limit:
                self.metrics.record_rejected()
                raise QueueFullError(
                    f"the server's queue is full ({self._waiting} requests waiting, limit {self.queue_limit}, and "
                    f"all {self.engine.config.max_batch} slots taken); retry later"
                )
            self._unstarted[request.request_id] = request.n
            self._recount()
        handle = RequestHandle(self, request)
        self._handles[request.request_id] = handle
        self._inbox.put(("add", request))
        return handle

    def abort(self, request_id: str) -> None:
        """Ask the engine to drop a request."""
        self._inbox.put(("abort", request_id))

    def run_on_engine(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``job`` on the engine thread between two decode steps (prompt scoring uses the model's threads and
        weights, so it takes turns with the decode loop rather than competing with it); a future of its result."""
        assert self._loop is not None, "the scheduler is not started"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._inbox.put(("job", (job, future)))
        return future

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while not self._stop.is_set():
                self._drain(block=not (self.engine.has_work() or self._jobs))
                if self._stop.is_set():
                    break
                if self._jobs:
                    self._run_job(*self._jobs.pop(0))
                try:
                    outputs = self.engine.step()
                except Exception as exc:  # noqa: BLE001 - reported to every waiting client, then the loop goes on
                    log.exception("engine step failed")
                    self._fail_all(exc)
                    continue
                self.metrics.set_load(queue_depth=self._waiting, running=self.engine.num_running)
                if outputs:
                    self.metrics.record_tokens(sum(len(o.token_ids) for o in outputs))
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._deliver, outputs)

    def _drain(self, *, block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, payload = item
            if kind == "add":
                assert isinstance(payload, EngineRequest)
                self.engine.add_request(payload)
            elif kind == "abort":
                assert isinstance(payload, str)
                self.engine.abort(payload)
            elif kind == "job":
                self._jobs.append(payload)  # type: ignore[arg-type]
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _run_job(self, job: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        assert self._loop is not None
        try:
            result = job()
        except Exception as exc:  # noqa: BLE001 - handed to the request that asked
            log.exception("engine job failed")
            self._loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        self._loop.call_soon_threadsafe(_settle, future, result, None)

    def _fail_all(self, exc: Exception) -> None:
        self.engine.reset("error")
        ids = list(self._handles)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fail_handles, ids, exc)

    # ------------------------------------------------------------------ event loop side
    def _deliver(self, outputs: list[StepOutput]) -> None:
        now = time.monotonic()
        for out in outputs:
            handle = self._handles.get(out.request_id)
            if handle is None:
                continue
            if not handle.started:
                handle.started = True
                handle.first_token_s = now - handle.request.arrival
                with self._lock:
                    self._unstarted.pop(out.request_id, None)
                    self._held += handle.request.n
                    self._recount()
                if out.finish_reason != "abort":
                    self.metrics.record_first_token(now - handle.request.arrival, out.prompt_tokens)
            if out.finish_reason is not None:
                with self._lock:
                    self._held -= 1
                    self._recount()
                handle.engine_remaining -= 1
                if handle.engine_remaining == 0:
                    self._handles.pop(out.request_id, None)
                    self.metrics.record_finish(out.finish_reason, now - handle.request.arrival)
            handle.queue.put_nowait(out)

    def _fail_handles(self, ids: list[str], exc: Exception) -> None:
        for request_id in ids:
            handle = self._handles.pop(request_id, None)
            if handle is None:
                continue
            with self._lock:
                self._unstarted.pop(request_id, None)
                if handle.started:
                    self._held -= handle.engine_remaining
                self._recount()
            self.metrics.record_finish("error", time.monotonic() - handle.request.arrival)
            handle.queue.put_nowait(exc)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the request was cancelled (its client went away)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
