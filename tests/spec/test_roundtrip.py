"""YAML and Python are two views of one flow."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from pydantic import BaseModel

import agentflow as af
from agentflow.spec.build import flow_to_spec
from agentflow.spec.load import load_workflow
from agentflow.spec.yamlio import dump

from .nodes import REG, count, echo, label, split


class State(BaseModel):
    question: str
    label: str = ""
    parts: list[str] = []
    word: str = ""
    said: Annotated[list[str], operator.add] = []
    answer: str = ""
    tries: int = 0
    done: bool = False


def python_flow() -> af.Flow:
    return af.Flow("roundtrip", state=State, description="built in Python", steps=[
        label(labels=["what", "hi"]),
        af.route(on="label", name="by_label", cases={
            "what": af.sequence(
                split,
                af.map(over="parts", item="word", node=echo("shout", input="word", output="said"),
                       max_concurrency=2, on_error="collect", name="shout_all"),
                af.loop(echo("write", prefix="A: "), count, until="done", max_iterations=3,
                        name="refine"),
                af.parallel(echo("p1", output="answer", prefix="1"), name="fan"),
            ),
        }, default=echo("greet", prefix="hello ")),
    ])


def _registry_flow_to_spec(flow: af.Flow) -> dict[str, Any]:
    return flow_to_spec(flow, REG)


def test_a_python_flow_exports_to_yaml_and_loads_back_the_same() -> None:
    flow = python_flow()
    spec = _registry_flow_to_spec(flow)
    assert spec["nodes"]["shout"] == {"type": "echo", "input": "word", "output": "said"}
    assert spec["state"]["said"] == {"type": "list", "reducer": "append"}
    text = dump(spec)
    loaded = load_workflow("roundtrip.yaml", text=text, reg=REG).flow
    assert loaded.compile().structure == flow.compile().structure
    a = flow.run({"question": "what is up"})
    b = loaded.run({"question": "what is up"})
    assert a.state == {k: b.state[k] for k in a.state}
    assert b.loops["refine"].passes == a.loops["refine"].passes == 2
    # and once more: the reloaded flow exports to the same spec
    assert flow_to_spec(loaded, REG)["flow"] == spec["flow"]
    # af.to_yaml is the same spec as text, with the schema comment editors read
    yaml_text = af.to_yaml(flow, REG)
    assert yaml_text.startswith("# yaml-language-server: $schema=schema.json\n")
    again = load_workflow("again.yaml", text=yaml_text, reg=REG).flow
    assert again.compile().structure == flow.compile().structure


def test_to_yaml_refuses_what_yaml_cannot_name() -> None:
    import pytest

    flow = af.Flow("fn", state=State, steps=[
        af.loop(echo("w"), count, until=lambda s: s.done, max_iterations=2)])
    with pytest.raises(af.GraphBuildError, match="until is a Python function"):
        flow_to_spec(flow, REG)
