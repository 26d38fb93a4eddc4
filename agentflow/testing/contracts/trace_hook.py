"""The trace hook contract: what every :class:`~agentflow.tracing.events.TraceHook` keeps of a run.

The suite runs small flows of its own through the real engine with the hook attached, then reads
back what the hook kept: every span of the run, in the order the engine started them, finished
with the status the engine gave them; a failing node recorded as failed, with its error, and the
run with it; nothing lost when branches, map items and whole runs happen at once; and a hook that
keeps working after a failed run. The engine swallows a hook's exceptions (a broken tracer must
not break a user's run), so the suite watches for them and fails the test that raised one.

Subclass :class:`TraceHookContract`, override the ``hook`` fixture, and, unless the hook keeps
events in an ``events`` list as :class:`~agentflow.tracing.events.EventCollector` does, override
:meth:`TraceHookContract.recorded` to read a run back from where the hook wrote it:

.. code-block:: python

    class TestMyExporter(TraceHookContract):
        @pytest.fixture
        def hook(self):
            exporter = MyExporter(InMemorySpanExporter())
            yield exporter
            exporter.shutdown()

        def recorded(self, hook, run_id):
            hook.flush()
            return [SpanRecord(...) for span in hook.spans_of(run_id)]
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from agentflow.errors import NodeError
from agentflow.graph.context import RunContext
from agentflow.graph.flow import Flow
from agentflow.graph.registry import NodeConfig, NodeRegistry, node
from agentflow.graph.steps import map as map_
from agentflow.graph.steps import parallel
from agentflow.testing.contracts._run import run_async
from agentflow.testing.tracing import spans_of
from agentflow.tracing.events import Event, TraceHook
from agentflow.tracing.spans import SpanRecord

_NODES = NodeRegistry()
ITEMS = 40
"""Map items of the busy flow: enough for many events in flight at once."""


class TraceState(BaseModel):
    """The state of the suite's flows."""

    question: str = ""
    items: list[str] = []
    item: str = ""
    log: Annotated[list[str], operator.add] = []


class Tag(NodeConfig):
    tag: str = ""


@node("contract_step", reads=("question",), writes=("log",), registry=_NODES)
async def step(state: TraceState, cfg: Tag, ctx: RunContext) -> dict[str, Any]:
    """A node that records a model call and a custom event, as real nodes do."""
    ctx.tracer.record("model_call", "small", data={
        "alias": "small", "model": "contract/fake", "response": cfg.tag,
        "tokens": {"prompt": 3, "completion": 1, "total": 4}})
    ctx.emit("noted", {"tag": cfg.tag})
    await asyncio.sleep(0)  # let other branches, items and runs interleave
    return {"log": [cfg.tag]}


@node("contract_explode", reads=(), writes=("log",), registry=_NODES)
async def explode(state: TraceState, cfg: Tag, ctx: RunContext) -> dict[str, Any]:
    raise RuntimeError(f"exploding on purpose ({cfg.tag})")


def ordered_flow() -> Flow:
    return Flow("contract_ordered", state=TraceState, inputs=("question",),
                steps=[step("first", tag="1"), step("second", tag="2"), step("third", tag="3")])


def failing_flow() -> Flow:
    return Flow("contract_failing", state=TraceState, inputs=("question",),
                steps=[step("first", tag="1"), explode("boom", tag="boom"),
                       step("never", tag="never")])


def busy_flow() -> Flow:
    return Flow("contract_busy", state=TraceState, inputs=("question", "items"), steps=[
        parallel(step("left", tag="l"), step("right", tag="r"), name="both"),
        map_(over="items", item="item", node=step("per_item"), max_concurrency=8, name="fan"),
    ])


class _Watched:
    """Passes events to the hook under test and keeps what it raised (the engine would only log
    it)."""

    def __init__(self, hook: TraceHook) -> None:
        self.hook = hook
        self.errors: list[BaseException] = []

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        try:
            self.hook.on_event(event=event, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not swallowed
            self.errors.append(exc)

    def check(self) -> None:
        if self.errors:
            raise AssertionError(
                f"the hook raised {len(self.errors)} time(s) in on_event; first: "
                f"{type(self.errors[0]).__name__}: {self.errors[0]}") from self.errors[0]


class TraceHookContract:
    """The tests every trace hook passes; see the module docstring."""

    @pytest.fixture
    def hook(self) -> TraceHook:
        raise NotImplementedError(
            f"{type(self).__name__}: override the hook fixture with one that returns your hook"
        )

    def recorded(self, hook: Any, run_id: str) -> Sequence[SpanRecord]:
        """The spans ``hook`` kept of run ``run_id``, the run's own span (kind ``run``) included.

        The default reads the ``events`` of an :class:`~agentflow.tracing.events.EventCollector`
        (or of any hook with such a list); override it for a hook that writes elsewhere.
        """
        events = getattr(hook, "events", None)
        if not isinstance(events, list):
            raise NotImplementedError(
                f"{type(self).__name__}: {hook!r} keeps no 'events' list; override recorded() to "
                "read a run's spans back from where the hook writes them")
        return spans_of(e for e in events if e.run_id == run_id)

    # -- helpers -----------------------------------------------------------------------------

    async def _run(self, hook: TraceHook, flow: Flow, **inputs: Any) -> str:
        """Run ``flow`` with the hook; the run id (of a failed run too)."""
        watched = _Watched(hook)
        try:
            result = await flow.arun({"question": "q", **inputs}, hooks=[watched])
        except NodeError as exc:
            watched.check()
            assert exc.run_id, "a failed run's NodeError names the run"
            return exc.run_id
        watched.check()
        return result.run_id

    def _spans(self, hook: TraceHook, run_id: str) -> list[SpanRecord]:
        spans = list(self.recorded(hook, run_id))
        strangers = [s for s in spans if s.run_id != run_id]
        assert not strangers, f"spans of other runs read back for run {run_id}: {strangers[:3]}"
        return spans

    def _whole(self, spans: list[SpanRecord], flow: str, nodes: list[str]) -> None:
        """The ordered flow's run: its span, its three nodes in order, each node's children."""
        runs = [s for s in spans if s.kind == "run"]
        assert [(s.name, s.status) for s in runs] == [(flow, "ok")], f"the run's span: {runs}"
        run = runs[0]
        assert run.end is not None and run.end >= run.start, "the run's span is finished"
        found = [s for s in spans if s.kind == "node"]
        assert [s.name for s in found] == nodes, "nodes recorded once each, in the order they ran"
        for span in found:
            assert (span.status, span.parent_id) == ("ok", run.span_id), span
            assert span.end is not None and run.start <= span.start <= span.end <= run.end, span
            inside = sorted(s.kind for s in spans if s.parent_id == span.span_id)
            assert inside == ["custom", "model_call"], f"{span.name} holds {inside}"
        starts = [s.start for s in found]
        assert starts == sorted(starts), "the nodes' spans start in the order the nodes ran"

    # -- the contract ------------------------------------------------------------------------

    @run_async
    async def test_a_run_arrives_whole_and_in_order(self, hook: TraceHook) -> None:
        run_id = await self._run(hook, ordered_flow())
        self._whole(self._spans(hook, run_id), "contract_ordered", ["first", "second", "third"])

    @run_async
    async def test_a_failing_node_is_recorded_with_its_error(self, hook: TraceHook) -> None:
        run_id = await self._run(hook, failing_flow())
        spans = self._spans(hook, run_id)
        (run,) = [s for s in spans if s.kind == "run"]
        assert run.status == "error" and "exploding on purpose" in (run.error or ""), run
        nodes = {s.name: s for s in spans if s.kind == "node"}
        assert set(nodes) == {"first", "boom"}, f"nodes recorded: {sorted(nodes)}"
        assert nodes["first"].status == "ok"
        assert nodes["boom"].status == "error", nodes["boom"]
        assert "exploding on purpose" in (nodes["boom"].error or ""), nodes["boom"]

    @run_async
    async def test_the_hook_keeps_recording_after_a_failed_run(self, hook: TraceHook) -> None:
        await self._run(hook, failing_flow())
        run_id = await self._run(hook, ordered_flow())
        self._whole(self._spans(hook, run_id), "contract_ordered", ["first", "second", "third"])

    @run_async
    async def test_nothing_is_lost_when_branches_and_items_run_at_once(
        self, hook: TraceHook
    ) -> None:
        run_id = await self._run(hook, busy_flow(), items=[f"item {i}" for i in range(ITEMS)])
        spans = self._spans(hook, run_id)
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.kind] = counts.get(span.kind, 0) + 1
        nodes = 2 + ITEMS
        assert counts == {"run": 1, "node": nodes, "branch": 2, "map": 1, "map_item": ITEMS,
                          "model_call": nodes, "custom": nodes}, f"spans by kind: {counts}"
        unfinished = [s for s in spans if s.end is None or s.status != "ok"]
        assert not unfinished, f"spans not finished ok: {unfinished[:3]}"
        items = sorted(s.item_index for s in spans if s.kind == "map_item")
        assert items == list(range(ITEMS)), "every map item once, with its index"

    @run_async
    async def test_concurrent_runs_are_kept_apart(self, hook: TraceHook) -> None:
        flow = ordered_flow()
        run_ids = await asyncio.gather(*(self._run(hook, flow) for _ in range(5)))
        assert len(set(run_ids)) == 5
        for run_id in run_ids:
            self._whole(self._spans(hook, run_id), "contract_ordered",
                        ["first", "second", "third"])

    @run_async  # on an event loop, where the engine calls hooks
    async def test_the_hook_accepts_keyword_arguments_it_does_not_know(
        self, hook: TraceHook
    ) -> None:
        started = Event(kind="run_started", run_id="contract-kwargs", span_id="contract-kwargs",
                        parent_id=None, name="contract_kwargs", step_type="flow",
                        data={"inputs": {}, "thread_id": "contract-kwargs"})
        finished = Event(kind="run_finished", run_id="contract-kwargs",
                         span_id="contract-kwargs", parent_id=None, name="contract_kwargs",
                         step_type="flow", status="ok", time=started.time + 0.001)
        try:
            for event in (started, finished):
                hook.on_event(event=event, added_in_a_later_version=True)
        except TypeError as exc:
            pytest.fail(f"on_event must accept keyword arguments it does not know (**kwargs), "
                        f"so new ones never break a hook: {exc}")
        runs = [s for s in self._spans(hook, "contract-kwargs") if s.kind == "run"]
        assert [(s.name, s.status) for s in runs] == [("contract_kwargs", "ok")]
