"""The recording hook: spans by kind and name, their order and children, from a real run."""

from __future__ import annotations

import pytest

from agentflow.errors import NodeError
from agentflow.testing import RecordingHook
from agentflow.testing.contracts.trace_hook import busy_flow, failing_flow, ordered_flow


async def test_spans_by_kind_and_name_with_their_children_and_order() -> None:
    hook = RecordingHook()
    result = await ordered_flow().arun({"question": "q"}, hooks=[hook])
    assert hook.run_ids == [result.run_id]
    assert hook.names("node") == ["first", "second", "third"]
    assert hook.names("node_started") == ["first", "second", "third"]  # event kinds work too
    hook.assert_order("first", "third")
    second = hook.span("node", "second")
    assert second.status == "ok" and second.end is not None
    assert [(s.kind, s.name) for s in hook.children(second)] == [("model_call", "small"),
                                                                 ("custom", "noted")]
    calls = hook.model_calls("small")
    assert len(calls) == 3 and calls[0].data["tokens"]["total"] == 4
    assert [e.kind for e in hook.events_of(name="first")] == ["node_started", "node_finished"]
    assert hook.spans("run", run_id=result.run_id)[0].status == "ok"


async def test_failed_lookups_say_what_the_trace_holds() -> None:
    hook = RecordingHook()
    await ordered_flow().arun({"question": "q"}, hooks=[hook])
    recorded = r"node spans recorded: \['first', 'second', 'third'\]"
    with pytest.raises(AssertionError, match=recorded):
        hook.span("node", "fourth")
    with pytest.raises(AssertionError, match="did not start in the order"):
        hook.assert_order("third", "first")
    with pytest.raises(AssertionError, match=r"no node span named \['fourth'\]"):
        hook.assert_order("first", "fourth")
    with pytest.raises(AssertionError, match="found 3"):
        hook.span("model_call", "small")


async def test_failed_spans_and_many_runs() -> None:
    hook = RecordingHook()
    with pytest.raises(NodeError):
        await failing_flow().arun({"question": "q"}, hooks=[hook])
    (boom,) = hook.spans("node", status="error")
    assert boom.name == "boom" and "exploding on purpose" in (boom.error or "")
    result = await busy_flow().arun({"question": "q", "items": ["a", "b", "c"]}, hooks=[hook])
    assert len(hook.run_ids) == 2
    assert len(hook.spans("map_item", run_id=result.run_id)) == 3
    assert len(hook.spans("node", "per_item")) == 3
    hook.clear()
    assert hook.events == [] and hook.spans() == []
