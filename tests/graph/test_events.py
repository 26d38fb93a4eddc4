"""Events: streamed with astream, and the same ones delivered to trace hooks."""

from __future__ import annotations

from typing import Any

import pytest

import agentflow as af
from agentflow.tracing.events import Event

from .nodes import S, answer, expand, fail, note, search


def _flow() -> af.Flow:
    return af.Flow("events", state=S, inputs=("question",), steps=[
        expand,
        af.map(over="queries", item="query", node=search, max_concurrency=2, name="fan"),
        af.loop(af.parallel(answer("draft"), note("aside", tag="aside"), name="both"),
                until=lambda s: s.n >= 2, max_iterations=3, name="refine"),
    ])


async def test_astream_yields_every_event_in_order_ending_with_the_final_state() -> None:
    events = [e async for e in _flow().astream({"question": "q"})]
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert events[-1].data["state"]["n"] == 2
    for started, finished in [("node_started", "node_finished"), ("loop_started", "loop_finished"),
                              ("loop_pass_started", "loop_pass_finished"),
                              ("map_item_started", "map_item_finished"),
                              ("branch_started", "branch_finished")]:
        opened = {e.span_id for e in events if e.kind == started}
        closed = {e.span_id for e in events if e.kind == finished}
        assert opened == closed and opened, started
    # a node's finish carries its state change
    (expand_done,) = [e for e in events if e.kind == "node_finished" and e.name == "expand"]
    assert expand_done.data["update"] == {"queries": [f"q #{i}" for i in range(4)]}


async def test_events_link_to_their_parents_with_pass_branch_and_item_indices() -> None:
    hook = af.EventCollector()
    result = await _flow().arun({"question": "q"}, hooks=[hook])
    spans = {e.span_id: e for e in hook.events if e.kind.endswith("_started")}
    run_id = result.run_id
    for e in hook.events:
        if e.kind != "run_started":
            assert e.parent_id is not None
            assert e.parent_id == run_id or e.parent_id.startswith(run_id + "/")

    items = [e for e in hook.of_kind("node_started") if e.name == "search"]
    assert sorted(e.item_index for e in items) == [0, 1, 2, 3]
    assert all(e.parent_id == f"{run_id}/map:fan/item:{e.item_index}" for e in items)
    assert all(e.parent_id in spans for e in items)  # the item span exists

    drafts = [e for e in hook.of_kind("node_started") if e.name == "draft"]
    assert [(e.pass_index, e.branch) for e in drafts] == [(1, 0), (2, 0)]
    asides = [e for e in hook.of_kind("node_started") if e.name == "aside"]
    assert [(e.pass_index, e.branch) for e in asides] == [(1, 1), (2, 1)]
    assert asides[1].parent_id == f"{run_id}/loop:refine/pass:2/par:both/branch:1"

    passes = hook.of_kind("loop_pass_finished")
    assert [(e.pass_index, e.data["passed"]) for e in passes] == [(1, False), (2, True)]
    (done,) = hook.of_kind("loop_finished")
    assert done.data == {"stop_reason": "passed", "passes": 2}


async def test_custom_events_from_nodes_are_streamed_under_the_node() -> None:
    flow = af.Flow("custom", state=S, inputs=(), steps=[note("n", tag="hello")])
    events = [e async for e in flow.astream({})]
    (custom,) = [e for e in events if e.kind == "custom"]
    (node,) = [e for e in events if e.kind == "node_started"]
    assert custom.name == "noted" and custom.data == {"tag": "hello"}
    assert custom.parent_id == node.span_id


async def test_a_failed_run_closes_its_spans_as_errors_and_still_raises() -> None:
    flow = af.Flow("failing", state=S, inputs=(), steps=[
        af.loop(note("ok"), fail("bad"), until=lambda s: False, max_iterations=3, name="l")])
    seen: list[Event] = []
    with pytest.raises(af.NodeError, match="failing on purpose"):
        async for event in flow.astream({}):
            seen.append(event)
    assert seen[-1].kind == "run_finished" and seen[-1].status == "error"
    (loop_done,) = [e for e in seen if e.kind == "loop_finished"]
    assert loop_done.status == "error" and loop_done.data["stop_reason"] == "error"
    opened = {e.span_id for e in seen if e.kind.endswith("_started")}
    closed = {e.span_id for e in seen if e.kind.endswith("_finished")}
    assert opened == closed


async def test_a_broken_hook_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def on_event(self, *, event: Event, **kwargs: Any) -> None:
            raise RuntimeError("tracer down")

    flow = af.Flow("f", state=S, inputs=(), steps=[note("a", tag="a"), note("b", tag="b")])
    result = await flow.arun({}, hooks=[Broken()])
    assert result["log"] == ["a", "b"]
    assert sum("trace hook" in r.message for r in caplog.records) == 1


async def test_concurrent_runs_keep_their_events_apart() -> None:
    import asyncio

    flow = af.Flow("f", state=S, inputs=("question",), steps=[note("a", tag="a", delay=0.01)])
    hooks = [af.EventCollector() for _ in range(20)]
    results = await asyncio.gather(*(flow.arun({"question": str(i)}, hooks=[h])
                                     for i, h in enumerate(hooks)))
    for result, hook in zip(results, hooks, strict=True):
        assert {e.run_id for e in hook.events} == {result.run_id}
        assert [e.kind for e in hook.events] == ["run_started", "node_started", "custom",
                                                 "node_finished", "run_finished"]
