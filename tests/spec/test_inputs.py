"""Loose values are refused: null for a required input, NaN or infinity for a number."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentflow.errors import InputError, SpecError
from agentflow.spec.load import load_workflow

from .nodes import REG

WORKFLOW = textwrap.dedent("""\
    version: 1
    name: strict
    inputs:
      question: {type: string}
      weight: {type: number, default: 1.0}
      note: {type: string, default: none given}
    nodes:
      say: {type: echo}
    flow: [say]
""")


def flow_of(tmp_path: Path) -> object:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return load_workflow(path, reg=REG).flow


def test_null_is_no_value_for_a_required_string_input(tmp_path: Path) -> None:
    flow = flow_of(tmp_path)
    with pytest.raises(InputError) as err:
        flow.run({"question": None})  # type: ignore[attr-defined]
    assert "question" in str(err.value) and "Input should be a valid string" in str(err.value)
    assert flow.run({"question": "hi"})["answer"] == "hi"  # type: ignore[attr-defined]


def test_an_optional_input_still_takes_null(tmp_path: Path) -> None:
    result = flow_of(tmp_path).run({"question": "hi", "note": None})  # type: ignore[attr-defined]
    assert result["note"] is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_input_must_be_finite(tmp_path: Path, value: float) -> None:
    with pytest.raises(InputError, match=r"weight\n.*Input should be a finite number"):
        flow_of(tmp_path).run({"question": "hi", "weight": value})  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [".nan", ".inf", "-.inf", ".NaN"])
def test_set_refuses_nan_and_infinity_naming_the_field(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    with pytest.raises(SpecError) as err:
        load_workflow(path, reg=REG, overrides=[f"inputs.weight.default={raw}"])
    e = err.value
    assert (e.path, e.line) == ("inputs.weight.default", 5)
    assert "expected a finite number, got" in str(e) and "NaN and infinity are not valid" in str(e)


def test_nan_written_in_the_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.replace("default: 1.0", "default: .inf"))
    with pytest.raises(SpecError, match=r"wf.yaml:5:\d+ \(inputs.weight.default\): expected a "
                                        "finite number, got inf"):
        load_workflow(path, reg=REG)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


CLASSIFY = textwrap.dedent("""\
    version: 1
    name: gate
    inputs:
      question: {type: string}
    nodes:
      classify:
        type: classify
        input: question
        output: route
        labels: {greeting: {description: hello and small talk}, sport: {description: football}}
      done: {type: reply, text: ok}
    flow: [classify, done]
""")


def test_the_command_line_refuses_null_input_and_nan_thresholds(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(CLASSIFY)
    null = cli(tmp_path, "run", "wf.yaml", "-q", "--input-json", '{"question": null}')
    assert null.returncode == 2 and "Traceback" not in null.stderr
    assert "bad input" in null.stderr and "question" in null.stderr
    assert "Input should be a valid string" in null.stderr
    for raw in (".nan", ".inf"):
        bad = cli(tmp_path, "run", "wf.yaml", "-q", "-i", "question=hi",
                  "--set", f"nodes.classify.threshold={raw}")
        assert bad.returncode == 3 and "Traceback" not in bad.stderr
        assert "wf.yaml:7:5 (nodes.classify.threshold): expected a finite number" in bad.stderr
    ok = cli(tmp_path, "run", "wf.yaml", "-q", "-i", "question=hi",
             "--set", "nodes.classify.threshold=0.1")
    assert ok.returncode == 0, ok.stderr
