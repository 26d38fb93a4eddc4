"""The four shapes, alone and nested, on real LangGraph runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agentflow as af
from agentflow.errors import NodeError, RouteError

from .nodes import MEETING, REG, S, answer, classify_q, expand, fail, meet, note, search


def test_sequence_runs_in_order_and_returns_final_state() -> None:
    flow = af.Flow("seq", state=S, inputs=("question",),
                   steps=[note("a", tag="a"), note("b", tag="b"), note("c", tag="c")])
    result = flow.run({"question": "x"})
    assert result["log"] == ["a", "b", "c"]
    assert result.nodes_run == ["a", "b", "c"]
    assert result.status == "ok"


def _router() -> af.Flow:
    return af.Flow("router", state=S, inputs=("question",), steps=[
        classify_q,
        af.route(on="route", cases={"kb": answer("kb", tag="kb"), "chat": answer("chat", tag="chat")},
                 default=answer("other", tag="other")),
    ])


@pytest.mark.parametrize(("question", "taken"), [("why?", "kb"), ("hi there", "chat"), ("x", "other")])
def test_route_runs_only_the_chosen_case(question: str, taken: str) -> None:
    result = _router().run({"question": question})
    assert result["log"] == [taken]
    assert set(result.nodes_run) == {"classify_q", taken}


def test_route_without_a_matching_case_or_default_fails_clearly() -> None:
    flow = af.Flow("router", state=S, inputs=("question",), steps=[
        classify_q, af.route(on="route", cases={"kb": answer("kb")}, name="pick"),
    ])
    with pytest.raises(RouteError, match=r"route 'pick' got label 'other'.*cases: \['kb'\]"):
        flow.run({"question": "x"})


def test_route_on_a_function_of_the_state() -> None:
    flow = af.Flow("fn", state=S, inputs=("question",), steps=[
        af.route(on=lambda s: "long" if len(s.question) > 3 else "short",
                 cases={"long": note("l", tag="long"), "short": note("s", tag="short")}),
    ])
    assert flow.run({"question": "abcdef"})["log"] == ["long"]
    assert flow.run({"question": "ab"})["log"] == ["short"]


def test_loop_numbers_passes_and_stops_when_until_passes() -> None:
    flow = af.Flow("loop", state=S, inputs=("question",), steps=[
        af.loop(answer, until=lambda s: s.n >= 3, max_iterations=5, name="refine"),
    ])
    result = flow.run({"question": "q"})
    outcome = result.loops["refine"]
    assert (outcome.passes, outcome.stop_reason) == (3, "passed")
    assert [v.pass_index for v in outcome.verdicts] == [1, 2, 3]
    assert [v.passed for v in outcome.verdicts] == [False, False, True]
    assert result["n"] == 3


def test_loop_is_exhausted_at_max_iterations() -> None:
    flow = af.Flow("loop", state=S, inputs=("question",), steps=[
        af.loop(answer, until=lambda s: False, max_iterations=2, name="refine"),
    ])
    result = flow.run({"question": "q"})
    assert (result.loops["refine"].passes, result.loops["refine"].stop_reason) == (2, "exhausted")
    assert result["n"] == 2


class Check:
    def __init__(self, passed: bool, reason: str) -> None:
        self.passed, self.reason = passed, reason


def test_loop_until_may_return_a_verdict_with_a_reason_and_be_async() -> None:
    async def good_enough(state: S) -> Check:
        await asyncio.sleep(0)
        return Check(state.n >= 2, f"n is {state.n}")

    flow = af.Flow("loop", state=S, inputs=("question",), steps=[
        af.loop(answer, until=good_enough, max_iterations=4, name="refine")])
    outcome = flow.run({"question": "q"}).loops["refine"]
    assert [v.reason for v in outcome.verdicts] == ["n is 1", "n is 2"]
    assert outcome.stop_reason == "passed"


def test_a_failing_node_ends_its_loop_with_stop_reason_error() -> None:
    flow = af.Flow("loop", state=S, inputs=("question",), steps=[
        af.loop(answer, af.route(on=lambda s: "go" if s.n >= 2 else "wait",
                                 cases={"go": fail("bad"), "wait": note("ok", tag="ok")}),
                until=lambda s: False, max_iterations=5, name="refine"),
    ])
    with pytest.raises(NodeError) as info:
        flow.run({"question": "q"})
    assert info.value.node == "bad"
    outcome = info.value.result.loops["refine"]
    assert outcome.stop_reason == "error"
    assert outcome.passes == 2
    assert info.value.result.status == "error"


async def test_parallel_branches_really_run_concurrently() -> None:
    # Each branch waits at one barrier for the other two: run one after another, the first
    # would wait alone and time out; no wall-clock bound that a busy machine could break.
    MEETING["par"] = asyncio.Barrier(3)
    flow = af.Flow("par", state=S, inputs=("question",), steps=[
        af.parallel(meet("a", tag="a", at="par"), meet("b", tag="b", at="par"),
                    af.sequence(meet("c1", tag="c1", at="par"), note("c2", tag="c2"))),
        note("after", tag="after"),
    ])
    result = await flow.arun({"question": "q"})
    assert sorted(result["log"][:4]) == ["a", "b", "c1", "c2"]
    assert result["log"][-1] == "after"


async def test_map_enforces_its_concurrency_limit_and_shows_it() -> None:
    in_flight, peak = 0, 0

    @af.node("probe", reads=("query",), writes=("chunks",), registry=REG)
    async def probe(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return {"chunks": [state.query]}

    flow = af.Flow("map", state=S, inputs=("queries",), steps=[
        af.map(over="queries", item="query", node=probe, max_concurrency=3, name="fan")])
    events = af.EventCollector()
    queries = [f"q{i}" for i in range(12)]
    result = await flow.arun({"queries": queries}, hooks=[events])
    assert peak == 3
    assert result["chunks"] == queries  # merged in item order, whatever order items finished in
    (started,) = events.of_kind("map_started")
    (finished,) = events.of_kind("map_finished")
    assert started.data["max_concurrency"] == 3 and started.data["count"] == 12
    assert finished.data["max_in_flight"] == 3
    assert max(e.data["in_flight"] for e in events.of_kind("map_item_started")) == 3


def _mapped(on_error: str, **kw: Any) -> af.Flow:
    return af.Flow("map", state=S, inputs=("queries",), steps=[
        af.map(over="queries", item="query", node=search("search", delay=0.01), on_error=on_error,
               name="fan", **kw)])


def test_map_continue_keeps_the_other_items_results() -> None:
    result = _mapped("continue").run({"queries": ["a", "boom", "c"]})
    assert result["chunks"] == ["A", "C"]
    assert result.map_errors == {}


def test_map_collect_returns_the_errors() -> None:
    result = _mapped("collect", errors="errors").run({"queries": ["a", "boom", "c", "boom2"]})
    assert result["chunks"] == ["A", "C"]
    failed = result.map_errors["fan"]
    assert [(e.index, e.item, e.error_type) for e in failed] == [(1, "boom", "ValueError"),
                                                                  (3, "boom2", "ValueError")]
    assert "cannot search 'boom'" in failed[0].error
    assert [e["index"] for e in result["errors"]] == [1, 3]


def test_map_fail_fast_fails_the_run() -> None:
    with pytest.raises(NodeError, match="cannot search 'boom'") as info:
        _mapped("fail_fast").run({"queries": ["a", "boom", "c"]})
    assert info.value.node == "search"


def test_map_into_collects_results_in_item_order() -> None:
    flow = af.Flow("map", state=S, inputs=("queries",), steps=[
        af.map(over="queries", item="query", node=search, into="found")])
    assert flow.run({"queries": ["x", "y", "z"]})["found"] == [["X"], ["Y"], ["Z"]]


def test_map_over_an_empty_list_goes_straight_on() -> None:
    flow = af.Flow("map", state=S, inputs=("queries",), steps=[
        af.map(over="queries", item="query", node=search, into="found"), note("after", tag="end")])
    result = flow.run({"queries": []})
    assert result["found"] == [] and result["log"] == ["end"]


def test_shapes_nest_freely() -> None:
    """route > sequence > map(composite body) > ...; loop > parallel > (node, loop)."""
    body = af.sequence(search("s1"), note("n1", tag="item"))
    flow = af.Flow("nested", state=S, inputs=("question",), steps=[
        classify_q,
        af.route(on="route", cases={
            "kb": af.sequence(
                expand,
                af.map(over="queries", item="query", node=body, max_concurrency=2, name="per_query"),
                af.loop(
                    af.parallel(answer("draft", tag="draft"),
                                af.loop(note("inner", tag="inner"), until=lambda s: True,
                                        max_iterations=2, name="inner_loop"),
                                name="checks"),
                    until=lambda s: s.n >= 2, max_iterations=3, name="outer"),
            ),
        }, default=note("chat", tag="chat")),
    ])
    result = flow.run({"question": "why?"})
    assert result["chunks"] == [f"WHY? #{i}" for i in range(4)]
    assert result["log"].count("item") == 4
    assert result.loops["outer"].passes == 2
    assert result.loops["inner_loop"].stop_reason == "passed"
    assert result["n"] == 2
