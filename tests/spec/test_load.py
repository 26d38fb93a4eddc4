"""Loading YAML workflows: what works, and errors that say where and what would be valid."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentflow.errors import SpecError
from agentflow.spec.load import load_workflow

from .nodes import REG

GOOD = textwrap.dedent("""\
    # yaml-language-server: $schema=../../graphs/schema.json
    version: 1
    name: demo
    description: route, map, loop and parallel in YAML
    inputs:
      question: {type: string}
    state:
      shouted: {type: list}
    outputs: [answer, label, tries]
    nodes:
      classify: {type: label, labels: [what, hi]}
      words: {type: split}
      shout: {type: echo, input: word, output: said, prefix: "!"}
      write: {type: echo, prefix: "A: "}
      tally: {type: count}
      greet: {type: echo, prefix: "hello "}
    flow:
      - classify
      - route:
          on: label
          cases:
            what:
              - words
              - map: {over: parts, item: word, node: shout, max_concurrency: 2, into: shouted}
              - loop:
                  name: refine
                  body: [write, tally]
                  until: done
                  max_iterations: 3
          default: greet
""")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


def test_a_yaml_workflow_builds_the_same_objects_and_runs(tmp_path: Path) -> None:
    wf = load_workflow(write(tmp_path, GOOD), reg=REG)
    result = wf.flow.run({"question": "what is up"})
    assert result["label"] == "what"
    assert result["shouted"] == ["!what", "!is", "!up"]
    assert result["answer"] == "A: what is up"
    assert result.loops["refine"].passes == 2 and result.loops["refine"].stop_reason == "passed"
    assert wf.flow.run({"question": "hi you"})["answer"] == "hello hi you"


def err(tmp_path: Path, text: str, *overrides: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_workflow(write(tmp_path, text), reg=REG, overrides=overrides)
    return info.value


def test_malformed_yaml(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("  words: {type: split}", "   words: {type: split}"))
    assert e.file and e.file.endswith("wf.yaml")
    assert e.line == 12
    assert "malformed YAML" in str(e)


def test_unknown_node_type_with_did_you_mean(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("type: split", "type: splt"))
    assert (e.line, e.column) == (12, 10)
    assert e.path == "nodes.words"
    assert "unknown node type 'splt'. Did you mean 'split'? Registered node types: 'count', " \
           "'echo', 'label', 'split'" in str(e)
    assert str(e).startswith(f"{e.file}:12:10 (nodes.words): ")


def test_unknown_field_of_a_node(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("prefix: \"!\"", "prefx: \"!\""))
    assert e.path == "nodes.shout.prefx" and e.line == 13
    assert "unknown field 'prefx'. Did you mean 'prefix'? Valid fields: 'input', 'output', " \
           "'prefix', 'times', 'type'" in str(e)


def test_missing_required_field(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("{type: label, labels: [what, hi]}", "{type: label}"))
    assert e.path == "nodes.classify.labels" and e.line == 11
    assert "missing required field 'labels'" in str(e)


def test_loop_without_max_iterations(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("              max_iterations: 3\n", ""))
    assert e.path == "flow[1].route.cases.what[2].loop.max_iterations"
    assert e.line == 26  # the loop's mapping
    assert "a loop needs max_iterations (an integer from 1 to 1000)" in str(e)


def test_route_case_to_nowhere(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("default: greet", "default: gret"))
    assert "leads to 'gret', which is no node of this flow. Did you mean 'greet'?" in str(e)
    assert e.path == "flow[1].route" and e.line == 20
    e = err(tmp_path, GOOD.replace("default: greet", "default: null"))
    assert "unreachable" in str(e) and e.path == "nodes.greet"
    e = err(tmp_path, GOOD.replace("      default: greet", "        hi: null"))
    assert "case 'hi' leads nowhere" in str(e)


def test_unknown_version(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("version: 1", "version: 7"))
    assert (e.line, e.path) == (2, "version")
    assert "unknown version 7; supported: 1" in str(e)
    e = err(tmp_path, GOOD.replace("version: 1\n", ""))
    assert "missing required field 'version'" in str(e)


def test_a_graph_error_points_at_the_yaml_of_the_step(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("on: label", "on: lable"))
    assert "reads 'lable', which is not a field of state" in str(e) and "Did you mean 'label'" in str(e)
    assert e.path == "flow[1].route"


def test_duplicate_keys_and_invalid_steps(tmp_path: Path) -> None:
    e = err(tmp_path, GOOD.replace("  tally: {type: count}\n",
                                   "  tally: {type: count}\n  tally: {type: count}\n"))
    assert "duplicate key 'tally'" in str(e) and e.line == 16
    e = err(tmp_path, GOOD.replace("  - classify\n", "  - {classify: 1}\n"))
    assert "a step is a node name, a list of steps, or a mapping with one key" in str(e)
    assert e.path == "flow[0]"


def test_set_overrides_any_field_for_one_run(tmp_path: Path) -> None:
    wf = load_workflow(write(tmp_path, GOOD), reg=REG,
                       overrides=["nodes.write.prefix=B: ",
                                  "flow.1.route.cases.what.2.loop.max_iterations=1"])
    result = wf.flow.run({"question": "what now"})
    assert result["answer"] == "B: what now"
    assert result.loops["refine"].stop_reason == "exhausted"
    e = err(tmp_path, GOOD, "nodes.wirte.prefix=x")
    assert "no field 'wirte' at nodes. Did you mean 'write'?" in str(e)


REAL = textwrap.dedent("""\
    version: 1
    name: real
    inputs:
      question: {type: string}
    nodes:
      summary:
        type: llm
        prompt: prompts/summarize.j2
        variables: {question: question, documents: question}
        model: small
    flow: [summary]
""")


def _real(tmp_path: Path, text: str) -> SpecError:
    path = tmp_path / "real.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_workflow(path)
    return info.value


def test_unknown_model_alias(tmp_path: Path) -> None:
    e = _real(tmp_path, REAL.replace("model: small", "model: smal"))
    assert e.path == "nodes.summary.model" and e.line == 10
    assert "Unknown model alias 'smal'" in str(e) and "Did you mean 'small'?" in str(e)


def test_unknown_prompt_file(tmp_path: Path) -> None:
    e = _real(tmp_path, REAL.replace("prompts/summarize.j2", "prompts/sumarize.j2"))
    assert e.path == "nodes.summary.prompt" and e.line == 8
    assert "prompt template 'prompts/sumarize.j2' not found" in str(e)
    assert "Did you mean 'prompts/summarize.j2'?" in str(e)


def test_unknown_template_variable(tmp_path: Path) -> None:
    e = _real(tmp_path, REAL.replace("variables: {question: question, documents: question}",
                                      "variables: {question: question}"))
    assert e.path == "nodes.summary.variables"
    assert "uses variable(s) 'documents', which the node does not give" in str(e)


def test_aliases_are_checked_against_the_profile_the_run_uses(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``agentflow run --profile tiny`` fails at load time, at the node, when its profile lacks
    an alias the workflow names (not later, at the node's first model call)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    tiny:\n      aliases:\n        large: offline/extractive\n")
    path = tmp_path / "real.yaml"
    path.write_text(REAL)
    assert load_workflow(path).spec.nodes["summary"].model == "small"  # the default profile
    with pytest.raises(SpecError) as info:
        load_workflow(path, profile="tiny")
    assert info.value.path == "nodes.summary.model" and info.value.line == 10
    assert "Unknown model alias 'small'" in str(info.value) and "'tiny'" in str(info.value)
