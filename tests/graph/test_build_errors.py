"""Compiling rejects what can be known to be wrong before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

import agentflow as af
from agentflow.errors import GraphBuildError

from .nodes import REG, S, answer, classify_q, expand, note, search


def build(*steps: Any, nodes: tuple[Any, ...] = (), inputs: tuple[str, ...] = ("question",)) -> Any:
    return af.Flow("f", state=S, steps=list(steps), nodes=nodes, inputs=inputs).compile()


def test_a_node_reading_a_field_nothing_writes() -> None:
    with pytest.raises(GraphBuildError) as info:
        build(search("lookup"))
    message = str(info.value)
    assert "node 'lookup' (type 'search') reads 'query'" in message
    assert "nothing in the flow writes it" in message
    assert "Inputs: 'question'" in message
    assert info.value.step == "lookup"


def test_a_node_reading_a_field_written_only_after_it() -> None:
    with pytest.raises(GraphBuildError, match=r"map 'fan' reads 'queries', but it is not an input of "
                       r"the flow; it is written only by node 'expand' \(type 'expand'\), which "
                       r"cannot run before it"):
        build(af.map(over="queries", item="query", node=search, name="fan"), expand)


def test_reading_a_field_written_on_an_earlier_loop_pass_is_fine() -> None:
    @af.node("uses_answer", reads=("answer",), writes=("log",), registry=REG)
    async def uses_answer(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        return {"log": [state.answer]}

    build(af.loop(uses_answer, answer, until="answer", max_iterations=2))


def test_reading_a_field_that_is_not_in_the_schema() -> None:
    @af.node("typo", reads=("questoin",), writes=(), registry=REG)
    async def typo(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        return {}

    with pytest.raises(GraphBuildError, match=r"reads 'questoin', which is not a field of state S\. "
                       r"Did you mean 'question'\?"):
        build(typo)


def test_unreachable_declared_node() -> None:
    with pytest.raises(GraphBuildError, match=r"node 'orphan' is unreachable: no step of the flow "
                       r"leads to it; use it in the steps or remove it"):
        build("greet", nodes=(note("greet"), note("orphan")))


def test_duplicate_names() -> None:
    with pytest.raises(GraphBuildError, match=r"duplicate step name 'n': a node of type 'note' and "
                       r"a node of type 'answer' both use it"):
        build(note("n"), answer("n"))
    with pytest.raises(GraphBuildError, match="duplicate step name 'x'"):
        build(note("x"), af.loop(note("y"), until=lambda s: True, max_iterations=1, name="x"))
    with pytest.raises(GraphBuildError, match="two declared nodes use it"):
        build("a", nodes=(note("a"), answer("a")))


def test_loop_without_max_iterations_is_rejected_with_what_is_valid() -> None:
    with pytest.raises(GraphBuildError, match=r"loop 'refine' has no max_iterations; loops are "
                       r"bounded: set max_iterations=N \(an integer from 1 to 1000\)"):
        build(af.loop(answer, until="answer", name="refine"))
    with pytest.raises(GraphBuildError, match="must be an integer from 1 to 1000, got 0"):
        build(af.loop(answer, until="answer", max_iterations=0, name="refine"))


def test_route_case_that_leads_nowhere() -> None:
    with pytest.raises(GraphBuildError, match=r"route 'pick': case 'chat' leads nowhere; give it a "
                       r"step"):
        build(classify_q, af.route(on="route", cases={"kb": note("kb"), "chat": None}, name="pick"))
    with pytest.raises(GraphBuildError, match=r"route 'pick': case 'kb' leads to 'anser', which is "
                       r"no node of this flow\. Did you mean 'answer'\?"):
        build(classify_q, af.route(on="route", cases={"kb": "anser"}, name="pick"),
              nodes=(answer("answer"),))
    with pytest.raises(GraphBuildError, match="its default leads nowhere"):
        build(classify_q, af.route(on="route", cases={"kb": note("kb")}, default=af.sequence(),
                                   name="pick"))


def test_unknown_node_reference() -> None:
    with pytest.raises(GraphBuildError, match=r"no node named 'clasify'\. Did you mean 'classify_q'"):
        build("clasify", nodes=(classify_q(),))


def test_map_checks_its_fields_and_reducers() -> None:
    with pytest.raises(GraphBuildError, match=r"map 'm': over='queriez' is not a field of state S\. "
                       r"Did you mean 'queries'\?"):
        build(expand, af.map(over="queriez", item="query", node=search, name="m"))
    with pytest.raises(GraphBuildError, match=r"map 'm': its items write 'answer', 'n'.*no reducer"):
        build(expand, af.map(over="queries", item="query", node=answer, name="m"))
    with pytest.raises(GraphBuildError, match=r"on_error='ignore'; valid: 'collect', 'continue', "
                       r"'fail_fast'"):
        build(expand, af.map(over="queries", item="query", node=search, on_error="ignore",  # type: ignore[arg-type]
                             name="m"))
    with pytest.raises(GraphBuildError, match="max_concurrency must be a positive integer"):
        build(expand, af.map(over="queries", item="query", node=search, max_concurrency=0, name="m"))


def test_a_map_item_writing_a_field_the_state_lacks_names_the_node() -> None:
    @af.node("writes_nothing_declared", reads=("query",), writes=("chunkz",), registry=REG)
    async def stray(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        return {"chunkz": []}

    with pytest.raises(GraphBuildError, match=r"node 'stray' \(type 'writes_nothing_declared'\) "
                       r"writes 'chunkz' \(an item of map 'm'\), which is not a field of state S\. "
                       r"Did you mean 'chunks'\?") as info:
        build(expand, af.map(over="queries", item="query", node=stray("stray"), name="m"))
    assert info.value.step == "stray"


def test_invalid_node_config_names_the_node_and_the_fields() -> None:
    with pytest.raises(GraphBuildError, match=r"invalid config for node 'n' \(type 'note'\): "
                       r"colour: Extra inputs are not permitted; fields of 'note': 'delay', 'tag'"):
        note("n", colour="red")


def test_node_functions_must_be_async_and_take_state_cfg_ctx() -> None:
    with pytest.raises(GraphBuildError, match="must be `async def`"):
        af.node("sync_node", registry=REG)(lambda state, cfg, ctx: {})  # type: ignore[arg-type,return-value]

    async def two(state: S, cfg: af.NodeConfig) -> dict[str, Any]:
        return {}

    with pytest.raises(GraphBuildError, match=r"must take \(state, cfg, ctx\); it takes \(state, cfg\)"):
        af.node("two_args", registry=REG)(two)  # type: ignore[arg-type]


def test_writing_an_undeclared_field_fails_at_run_time() -> None:
    @af.node("sneaky", reads=(), writes=("log",), registry=REG)
    async def sneaky(state: S, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
        return {"answer": "not mine"}

    flow = af.Flow("f", state=S, steps=[sneaky], inputs=())
    with pytest.raises(af.NodeError, match=r"wrote undeclared field\(s\) \['answer'\]; it declares "
                       r"writes=\['log'\]"):
        flow.run({})
