"""Off the hot path: hooks that append events to a buffer and handle them on a worker thread.

``on_event`` runs on the event loop of every run, between two steps, so it only appends to a
``deque`` (thread-safe, no lock). A daemon thread wakes every ``flush_interval`` seconds, or as soon
as ``batch_size`` events are waiting, and hands what it drained to :meth:`BackgroundSink.process`.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from typing import Any

from agentflow.tracing.events import Event

log = logging.getLogger("agentflow.tracing")


class FailureLog:
    """Logs every failure of a sink, once per kind in full and the repeats in one line each.

    A sink that fails on every batch (a full disk) would otherwise flood the log, and one that
    logs only its first failure hides the rest. The first failure of each kind (what failed and
    how) is logged at its level with the details; repeats go to the debug log, and :meth:`summary`
    says how many there were and for which runs.
    """

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self._counts: dict[str, int] = {}
        self._runs: dict[str, list[str]] = {}

    def report(self, kind: str, message: str, *, run_id: str | None = None,
               level: int = logging.WARNING, exc_info: BaseException | None = None) -> None:
        """Log a failure of ``kind`` (a short, stable label: ``"UnicodeEncodeError in span"``)."""
        n = self._counts.get(kind, 0)
        self._counts[kind] = n + 1
        if run_id is not None:
            runs = self._runs.setdefault(kind, [])
            if len(runs) < 10 and run_id not in runs:
                runs.append(run_id)
        where = f" (run {run_id})" if run_id else ""
        if n == 0:
            log.log(level, "%s: %s%s; repeats of this are counted and reported when it closes",
                    self.sink, message, where, exc_info=exc_info)
        else:
            log.debug("%s: %s%s (%s #%d)", self.sink, message, where, kind, n + 1)

    def summary(self) -> None:
        """Log how often each kind of failure repeated after its first report, and where."""
        for kind, n in self._counts.items():
            if n > 1:
                runs = self._runs.get(kind)
                log.warning("%s: %s happened %d more time(s)%s", self.sink, kind, n - 1,
                            f" (runs {', '.join(runs)})" if runs else "")
        self._counts.clear()
        self._runs.clear()


class _Barrier:
    """Put in the buffer by :meth:`BackgroundSink.flush`; set once everything before it is handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BackgroundSink:
    """Base of trace sinks that write in batches on a thread of their own.

    Subclasses implement :meth:`process` (a batch of events, in emission order) and may implement
    :meth:`finalize` (called once, on the worker thread, when the sink closes). The sink closes
    itself at interpreter exit, so buffered events are written even when nobody calls :meth:`close`.
    """

    def __init__(self, *, flush_interval: float = 0.1, batch_size: int = 2_000,
                 name: str = "agentflow-trace") -> None:
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._buffer: deque[Event | _Barrier] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self.failures = FailureLog(f"trace sink {self!r}")
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # the hot path ---------------------------------------------------------------------------
    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        """Buffer one event (cheap: one append); the worker thread writes it soon after."""
        buffer = self._buffer
        buffer.append(event)
        if len(buffer) >= self.batch_size:
            self._wake.set()

    # control --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event buffered before this call is handled; False on timeout."""
        if self._closed or not self._thread.is_alive():
            return not self._buffer
        barrier = _Barrier()
        self._buffer.append(barrier)
        self._wake.set()
        return barrier.done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Handle what is buffered, finalize and stop the worker. Safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closing = True
            self._wake.set()
            self._thread.join(timeout)
            self._closed = True
        atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> BackgroundSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # for subclasses -------------------------------------------------------------------------
    def process(self, events: list[Event]) -> None:
        """Handle a batch of events on the worker thread."""
        raise NotImplementedError

    def finalize(self) -> None:
        """Called once on the worker thread after the last batch (close open spans, commit)."""

    def tick(self) -> None:
        """Called on the worker thread each time it wakes, after the batches (heartbeats)."""

    # the worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._closing
            self._drain()
            if stopping:
                break
        self._safely(self.finalize)
        self.failures.summary()
        while self._buffer:  # events that raced with close are dropped; waiters are released
            item = self._buffer.popleft()
            if isinstance(item, _Barrier):
                item.done.set()

    def _drain(self) -> None:
        buffer = self._buffer
        while buffer:
            batch: list[Event] = []
            barriers: list[_Barrier] = []
            while buffer and len(batch) < self.batch_size:
                item = buffer.popleft()
                if isinstance(item, _Barrier):
                    barriers.append(item)
                    break  # everything before the barrier is in this batch
                batch.append(item)
            if batch:
                self._safely(self.process, batch)
            for barrier in barriers:
                barrier.done.set()
        self._safely(self.tick)

    def _safely(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a failing sink must never take the run (or the worker) down
            name = getattr(fn, "__name__", "handling events")
            self.failures.report(f"{type(exc).__name__} in {name}",
                                 f"{name} failed: {type(exc).__name__}: {exc}",
                                 level=logging.ERROR, exc_info=exc)
