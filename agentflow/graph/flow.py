"""``Flow``: a workflow over a typed state, built from the four shapes, run on LangGraph."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentflow.errors import AgentflowError, GraphBuildError, InputError, NodeError
from agentflow.graph.compile import Analysis, Builder, UnitInfo, check_flow
from agentflow.graph.context import Services
from agentflow.graph.result import RunResult
from agentflow.graph.runtime import Position, Runtime, current
from agentflow.graph.state import StateSchema
from agentflow.graph.steps import NodeStep, Sequence, Step, StepLike, as_step, describe, sequence
from agentflow.tracing.events import Event, TraceHook

RECURSION_LIMIT = 100_000
Checkpointer = Any  # a LangGraph checkpoint saver, or a path to a SQLite file


@dataclass(frozen=True)
class CompiledFlow:
    """A checked flow and its LangGraph graph (the builder, to recompile with a checkpointer)."""

    name: str
    schema: StateSchema
    inputs: tuple[str, ...]
    builder: Any
    graph: Any
    units: dict[str, UnitInfo]
    edges: dict[str, set[str]]
    structure: dict[str, Any]
    """The declared graph as plain data (see :func:`agentflow.graph.steps.describe`)."""


class Flow:
    """A workflow: steps over a typed state, compiled to a LangGraph ``StateGraph``.

    ``steps`` is a step or a list of steps (run in sequence). ``nodes`` declares named nodes that
    steps refer to by name (as YAML workflows do); nodes can also be written inline. ``inputs`` are
    the fields a caller provides; by default the schema's required fields.

    >>> flow = Flow("rag", state=RagState, steps=[classify_q, route(on="route", cases={...})])
    >>> flow.run({"question": "What is agentflow?"})["answer"]
    """

    def __init__(
        self,
        name: str,
        *,
        state: type,
        steps: StepLike | Seq[StepLike],
        nodes: Iterable[NodeStep] = (),
        inputs: Iterable[str] | None = None,
        description: str = "",
        services: Services | None = None,
    ) -> None:
        self.name = name
        self.state = state
        self.steps: Step = (
            sequence(*steps) if isinstance(steps, (list, tuple)) else as_step(steps)  # type: ignore[arg-type]
        )
        self.nodes = list(nodes)
        self.description = description
        self.services = services
        self._inputs = tuple(inputs) if inputs is not None else None
        self._compiled: CompiledFlow | None = None

    # build ----------------------------------------------------------------------------------
    def compile(self) -> CompiledFlow:
        """Check the flow and compile it (cached). Raises :class:`GraphBuildError`."""
        if self._compiled is None:
            self._compiled = self._compile()
        return self._compiled

    def _compile(self) -> CompiledFlow:
        schema = StateSchema(self.state)
        declared: dict[str, NodeStep] = {}
        for n in self.nodes:
            if n.name in declared:
                raise GraphBuildError(
                    f"duplicate step name {n.name!r}: two declared nodes use it; names must be "
                    "unique within a flow",
                    step=n.name,
                )
            declared[n.name] = n
        analysis = Analysis(schema, declared)
        builder = Builder(analysis)
        if isinstance(self.steps, Sequence) and not self.steps.steps:
            raise GraphBuildError(f"flow {self.name!r} has no steps")
        graph_builder = builder.build(self.steps)
        inputs = self._inputs
        if inputs is None:
            inputs = tuple(f.name for f in schema.fields.values() if f.required)
        bad = [i for i in inputs if i not in schema.fields]
        if bad:
            raise GraphBuildError(
                f"flow {self.name!r}: input {bad[0]!r} is not a field of state {schema.name}; "
                f"fields: {', '.join(schema.fields)}"
            )
        check_flow(analysis, inputs, builder.entry)
        return CompiledFlow(
            name=self.name,
            schema=schema,
            inputs=inputs,
            builder=graph_builder,
            graph=graph_builder.compile(),
            units=analysis.units,
            edges=dict(analysis.edges),
            structure={"flow": self.name, "description": self.description,
                       "inputs": list(inputs), "steps": describe(self.steps, declared)},
        )

    # run ------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any] | None = None, /, **options: Any) -> RunResult:
        """Run to the end and return the result (see :meth:`arun` for the options)."""
        if _loop_running():
            raise AgentflowError(
                "Flow.run() cannot be called from a running event loop; use `await flow.arun(...)`"
            )
        return asyncio.run(self.arun(inputs, **options))

    async def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        services: Services | None = None,
        hooks: Iterable[TraceHook] = (),
        thread_id: str | None = None,
        checkpointer: Checkpointer | None = None,
        resume: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run the flow and return its :class:`RunResult`.

        ``tags`` are recorded with the run's trace (string keys and values), e.g.
        ``{"variant": "b"}``; ``origin`` says where the run came from and defaults to ``test``
        under pytest and ``python`` otherwise (``agentflow run`` records ``run``, ``agentflow
        eval`` ``eval``).

        With a ``checkpointer`` (a LangGraph saver, or the path of a SQLite file) every step is
        saved under ``thread_id``; after a failure, ``resume=True`` with the same thread id goes on
        from the failed step without re-running the steps that finished. A failed node raises
        :class:`NodeError`, whose ``result`` holds the partial result.
        """
        return await self._execute(inputs, services=services, hooks=hooks, thread_id=thread_id,
                                   checkpointer=checkpointer, resume=resume, tags=tags, queue=None)

    async def astream(
        self, inputs: Mapping[str, Any] | None = None, /, **options: Any
    ) -> AsyncIterator[Event]:
        """Run the flow, yielding its events as they happen (the options of :meth:`arun`).

        The last event is ``run_finished``; its ``data["state"]`` is the final state. Errors are
        raised after their events have been yielded.
        """
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(self._execute(inputs, queue=queue, **options))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _execute(
        self,
        inputs: Mapping[str, Any] | None,
        *,
        services: Services | None = None,
        hooks: Iterable[TraceHook] = (),
        thread_id: str | None = None,
        checkpointer: Checkpointer | None = None,
        resume: bool = False,
        tags: Mapping[str, str] | None = None,
        queue: asyncio.Queue[Event | None] | None,
    ) -> RunResult:
        compiled = self.compile()
        run_tags = _run_tags(tags)
        if resume and (thread_id is None or checkpointer is None):
            raise InputError("resume=True needs the thread_id and checkpointer of the failed run")
        values = None if resume else compiled.schema.validate_input(inputs or {}, compiled.inputs)
        svc = services or self.services or Services()
        extra = tuple(hooks)
        if extra:
            svc = replace(svc, hooks=(*svc.hooks, *extra))
        run_id = uuid.uuid4().hex
        rt = Runtime(run_id=run_id, thread_id=thread_id or run_id, services=svc, queue=queue)
        token = current.set(rt)
        started = time.perf_counter()
        top = Position(run_id, None, None, None)
        rt.emit(Event(kind="run_started", run_id=run_id, span_id=run_id, parent_id=None,
                      name=self.name, step_type="flow",
                      data={"inputs": dict(values or {}), "thread_id": rt.thread_id,
                            "resume": resume, "graph": compiled.structure, "tags": run_tags}))
        config: dict[str, Any] = {"recursion_limit": RECURSION_LIMIT}
        try:
            async with _graph(compiled, checkpointer) as graph:
                if checkpointer is not None:
                    config["configurable"] = {"thread_id": rt.thread_id}
                    if resume and not (await graph.aget_state(config)).values:
                        missing = InputError(f"nothing to resume: no checkpoint for thread "
                                             f"{rt.thread_id!r}")
                        raise _Failed({}) from missing  # the trace records the run as failed
                try:
                    final = await graph.ainvoke(values, config, **_durability(checkpointer))
                except BaseException as exc:
                    state = dict(values or {})
                    if checkpointer is not None:
                        with contextlib.suppress(Exception):
                            state = (await graph.aget_state(config)).values
                    raise _Failed(compiled.schema.public(state)) from exc
        except _Failed as failed:
            exc = failed.__cause__
            message = f"{type(exc).__name__}: {exc}"
            rt.close_open(f"{run_id}/", message)
            rt.event("run_finished", run_id, self.name, top, step_type="flow",
                     status="error", error=message)
            result = rt.result(failed.state, started=started, error=message)
            if isinstance(exc, NodeError):
                exc.result = result
                raise exc from exc.__cause__
            if isinstance(exc, Exception) and not isinstance(exc, AgentflowError):
                wrapped = NodeError(f"flow {self.name!r} failed: {message}", node=self.name,
                                    run_id=run_id)
                wrapped.result = result
                raise wrapped from exc
            raise exc  # type: ignore[misc]
        finally:
            current.reset(token)
        state = compiled.schema.public(final)
        rt.event("run_finished", run_id, self.name, top, step_type="flow", status="ok",
                 data={"state": state, "duration_s": time.perf_counter() - started})
        return rt.result(state, started=started, error=None)


def _run_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """The tags a run records: the caller's, checked, with ``origin`` filled in."""
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError(f"run tag {key!r}: {value!r}: tags are strings, e.g. "
                             "tags={'variant': 'b'}")
        if not key or len(key) > 100 or len(value) > 1000:
            raise InputError(f"run tag {key[:100]!r}: a key of 1-100 and a value of at most "
                             "1,000 characters")
        out[key] = value
    out.setdefault("origin", "test" if "PYTEST_CURRENT_TEST" in os.environ else "python")
    return out


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _durability(checkpointer: Checkpointer | None) -> dict[str, Any]:
    """With a checkpointer, save each step's checkpoint before the next step starts.

    LangGraph's default ("async") saves it while the next step runs, so a process killed
    during that step can lose the checkpoint of the step that finished just before it.
    """
    return {"durability": "sync"} if checkpointer is not None else {}


class _Failed(Exception):
    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__("run failed")
        self.state = state


@contextlib.asynccontextmanager
async def _graph(compiled: CompiledFlow, checkpointer: Checkpointer | None) -> AsyncIterator[Any]:
    """The compiled graph, recompiled with the checkpointer when there is one."""
    if checkpointer is None:
        yield compiled.graph
    elif isinstance(checkpointer, (str, Path)):
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        Path(checkpointer).parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(checkpointer)) as saver:
            yield compiled.builder.compile(checkpointer=saver)
    else:
        yield compiled.builder.compile(checkpointer=checkpointer)
