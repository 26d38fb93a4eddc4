"""One served run: its plan (inputs, thread turn, variant, tags), its execution, and its outcome.

The HTTP routes and the chat endpoint share this: a run is ``Flow.arun`` on the worker's services with the
trace hooks, a hook that counts tokens and cost, and, when streaming, a hook that hands every event to the
response as it happens (the events of ``Flow.astream``). A streamed run whose client goes away is cancelled
(``task.cancel``): the trace records it as failed with ``CancelledError: client disconnected``, never left
``running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentflow.api.threads import ThreadError, Threads, check_thread_id, turn_key
from agentflow.api.workflows import ServedWorkflow
from agentflow.errors import AgentflowError, InputError, ModelError
from agentflow.tracing.events import Event

log = logging.getLogger("agentflow.api")

ORIGIN = "serve"
DISCONNECTED = "client disconnected"


@dataclass
class Usage:
    """A hook that keeps a run's id and adds up its model calls' tokens and cost."""

    run_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    model_calls: int = 0

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        if event.kind == "run_started" and self.run_id is None:
            self.run_id = event.run_id
        elif event.kind == "model_call":
            tokens = event.data.get("tokens") or {}
            self.prompt_tokens += int(tokens.get("prompt") or 0)
            self.completion_tokens += int(tokens.get("completion") or 0)
            self.cost += float(event.data.get("cost") or 0.0)
            self.model_calls += 1

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "cost": round(self.cost, 8), "model_calls": self.model_calls}


class _Forward:
    """A hook that puts every event on a queue (what a stream sends)."""

    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self.queue = queue

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        self.queue.put_nowait(event)


@dataclass
class RunPlan:
    """What a run gets: inputs (None when resuming), the flow's run options, and where it stands."""

    served: ServedWorkflow
    inputs: dict[str, Any] | None
    options: dict[str, Any]
    thread_id: str | None
    turn: int | None
    variant: str | None
    usage: Usage = field(default_factory=Usage)
    user_id: str | None = None


@dataclass
class Outcome:
    """How a run ended, as the API reports it."""

    run_id: str | None
    workflow: str
    thread_id: str | None
    turn: int | None
    variant: str | None
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    http_status: int = 200
    duration_s: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"run_id": self.run_id, "workflow": self.workflow, "thread_id": self.thread_id,
               "turn": self.turn, "variant": self.variant, "status": self.status,
               "outputs": self.outputs, "duration_s": round(self.duration_s, 4), "usage": self.usage}
        if self.error is not None:
            out.update(error=self.error, error_type=self.error_type,
                       resumable=self.thread_id is not None and self.error_type != "input_error")
        return out


class Runner:
    """Plans and runs the requests of one worker."""

    def __init__(self, threads: Threads | None, hooks: list[Any], records: Any = None) -> None:
        self.threads = threads
        self.hooks = list(hooks)
        self.records = records
        """:class:`agentflow.api.records.Records`, or None."""

    async def _record(self, plan: RunPlan, outcome: Outcome) -> Outcome:
        if self.records is not None:
            experiment = plan.served.experiment.name if plan.variant and plan.served.experiment else None
            from agentflow.api.records import RecordsError

            try:
                await self.records.add_run(outcome, experiment=experiment, user_id=plan.user_id)
            except RecordsError as exc:  # the answer still goes out; the gap is logged
                log.warning("%s", exc)
        return outcome

    async def check(self, served: ServedWorkflow, inputs: Mapping[str, Any] | None, *,
                    thread_id: str | None = None, resume: bool = False) -> dict[str, Any] | None:
        """What makes a request bad before it runs (inputs, thread id, nothing to resume), raised as
        :class:`InputsInvalid` or :class:`ThreadError`; returns the checked inputs (None to resume).

        A stream checks first, so that a bad request is an HTTP error rather than an event, and plans
        inside the response, so that a client gone before the first byte holds no thread."""
        values = served.validate_inputs(inputs or {}) if not resume else None
        if thread_id is None:
            if resume:
                raise ThreadError("resume needs the thread_id of the failed run", 422)
            return values
        check_thread_id(thread_id)
        if self.threads is None:
            raise ThreadError("this server keeps no threads (no checkpointer)", 409)
        if resume:
            _resumable(thread_id, await self.threads.latest(served.flow, thread_id))
        return values

    @contextlib.asynccontextmanager
    async def plan(self, served: ServedWorkflow, inputs: Mapping[str, Any] | None, *,
                   thread_id: str | None = None, user_id: str | None = None,
                   resume: bool = False) -> AsyncIterator[RunPlan]:
        """The plan of a run, with its thread held for the run's length (one run per thread at a time)."""
        values = await self.check(served, inputs, thread_id=thread_id, resume=resume)
        if thread_id is None or self.threads is None:
            yield self._plan(served, values, None, None, user_id, resume=False)
            return
        async with self.threads.hold(f"{served.name}/{thread_id}"):
            latest = await self.threads.latest(served.flow, thread_id)
            if resume:
                turn = _resumable(thread_id, latest)
                yield self._plan(served, None, thread_id, turn, user_id, resume=True)
                return
            assert values is not None
            if latest is not None and served.history and served.history not in values:
                values[served.history] = conversation(served, latest.values)
            yield self._plan(served, values, thread_id, (latest.number if latest else 0) + 1, user_id,
                             resume=False)

    def _plan(self, served: ServedWorkflow, values: dict[str, Any] | None, thread_id: str | None,
              turn: int | None, user_id: str | None, *, resume: bool) -> RunPlan:
        services, variant = served.services, None
        tags = {"origin": ORIGIN}
        if served.experiment is not None:
            chosen = served.experiment.assign(thread_id=thread_id, user_id=user_id)
            services, variant = chosen.services, chosen.name
            tags.update(experiment=served.experiment.name, variant=chosen.name)
        if thread_id is not None:
            tags["thread"] = thread_id
        if user_id:
            tags["user"] = user_id
        usage = Usage()
        options: dict[str, Any] = {"services": services, "hooks": [*self.hooks, usage], "tags": tags}
        if thread_id is not None and self.threads is not None:
            options.update(thread_id=turn_key(served.name, thread_id, turn or 1), checkpointer=self.threads.saver,
                           resume=resume)
        return RunPlan(served, values, options, thread_id, turn, variant, usage, user_id)

    async def run(self, plan: RunPlan) -> Outcome:
        """Run to the end; failures become an :class:`Outcome` with an error."""
        started = time.perf_counter()
        try:
            result = await plan.served.flow.arun(plan.inputs, **plan.options)
        except AgentflowError as exc:
            return await self._record(plan, failure(plan, exc, started))
        return await self._record(plan, success(plan, result.state, started))

    async def stream(self, plan: RunPlan) -> AsyncIterator[Event | Outcome]:
        """The run's events as they happen, then its :class:`Outcome`. Closing the iterator early (the
        client went away) cancels the run."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        options = {**plan.options, "hooks": [*plan.options["hooks"], _Forward(queue)]}
        started = time.perf_counter()
        task = asyncio.create_task(plan.served.flow.arun(plan.inputs, **options))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            try:
                result = task.result()
            except AgentflowError as exc:
                yield await self._record(plan, failure(plan, exc, started))
                return
            yield await self._record(plan, success(plan, result.state, started))
        finally:
            if not task.done():
                task.cancel(DISCONNECTED)
                # wait() rather than await: a second cancellation of this generator (the server cancels
                # a disconnected response's tasks until they end) must not reach the run with its own
                # message; the run records why it stopped
                with contextlib.suppress(BaseException):
                    await asyncio.wait({task})


def _resumable(thread_id: str, latest: Any) -> int:
    """The turn to resume; a :class:`ThreadError` when the thread has none that failed."""
    if latest is None:
        raise ThreadError(f"nothing to resume: thread {thread_id!r} has no run", 404)
    if latest.finished:
        raise ThreadError(f"nothing to resume: the last run of thread {thread_id!r} (turn {latest.number}) "
                          "finished; post new inputs to continue it", 409)
    return int(latest.number)


def success(plan: RunPlan, state: dict[str, Any], started: float) -> Outcome:
    from agentflow.graph.result import to_jsonable

    return Outcome(plan.usage.run_id, plan.served.name, plan.thread_id, plan.turn, plan.variant, "ok",
                   outputs=to_jsonable(plan.served.workflow.outputs_of(state)),
                   duration_s=time.perf_counter() - started, usage=plan.usage.to_dict())


def failure(plan: RunPlan, exc: AgentflowError, started: float) -> Outcome:
    """A failed run's outcome: the error, its kind and the HTTP status that says it."""
    model_error = _cause(exc, ModelError)
    if isinstance(exc, InputError):
        kind, status = "input_error", 422
    elif model_error is not None:
        timed_out = "timeout" in str(model_error).lower() or "timed out" in str(model_error).lower()
        kind, status = ("model_timeout", 504) if timed_out else ("model_error", 502)
    else:
        kind, status = "run_error", 500
    partial = getattr(exc, "result", None)
    run_id = getattr(partial, "run_id", None) or plan.usage.run_id
    return Outcome(run_id, plan.served.name, plan.thread_id, plan.turn, plan.variant, "error",
                   error=str(exc), error_type=kind, http_status=status,
                   duration_s=time.perf_counter() - started, usage=plan.usage.to_dict())


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def conversation(served: ServedWorkflow, values: Mapping[str, Any]) -> list[dict[str, str]]:
    """The history a new turn gets: the last turn's history, its question and its answer."""
    history = [message_dict(m) for m in (values.get(served.history or "") or [])]
    question = values.get(served.question or "")
    answer = values.get(served.answer or "")
    if isinstance(question, str) and question:
        history.append({"role": "user", "content": question})
        if isinstance(answer, str) and answer:
            history.append({"role": "assistant", "content": answer})
    return history


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def message_dict(message: Any) -> dict[str, str]:
    """A LangChain message (or a role/content mapping) as ``{"role", "content"}``."""
    if isinstance(message, Mapping):
        return {"role": str(message.get("role", "user")), "content": str(message.get("content", ""))}
    role = _ROLES.get(getattr(message, "type", ""), "user")
    content = getattr(message, "content", "")
    return {"role": role, "content": content if isinstance(content, str) else str(content)}
