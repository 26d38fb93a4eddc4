"""The YAML loader is bounded: alias bombs, recursive aliases and deep nesting are located errors.

Without limits a 600-byte "billion laughs" document ran `agentflow validate` past 60 s at 1 GB,
and `x: &x [*x]` or 500 nested `[` crashed with RecursionError and no location.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from agentflow.errors import SpecError
from agentflow.spec import yamlio
from agentflow.spec.load import apply_override, load_workflow
from agentflow.spec.yamlio import load

from .nodes import REG


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: width**levels."""
    lines = ["version: 1", "name: bomb", 'l0: &l0 ["' + "lol" * 12 + '"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines += ["nodes: {a: {type: echo}}", "flow: [a]", ""]
    return "\n".join(lines)


def test_an_alias_bomb_fails_fast_with_little_memory_and_a_location(tmp_path: Path) -> None:
    text = alias_bomb()
    assert 500 <= len(text.encode()) <= 700
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SpecError) as err:
            load_workflow(path, reg=REG)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5, f"took {elapsed:.1f} s"  # about 10 ms; generous for busy machines
    assert peak < 50 * 2**20, f"peaked at {peak / 2**20:.0f} MB"
    e = err.value
    assert (e.file, e.line, e.column) == (str(path), 8, 5)  # l5: 125,479 values expanded
    assert f"aliases expand this value to more than {yamlio.MAX_NODES:,} values" in str(e)
    assert str(e).startswith(f"{path}:8:5: ")


def test_validate_refuses_the_bomb_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "validate", "bomb.yaml"],
                          cwd=tmp_path, text=True, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("agentflow: bomb.yaml:8:5: ")
    assert "alias bomb" in proc.stderr


@pytest.mark.parametrize("text, line, column, message", [
    ("x: &x [*x]\n", 1, 8, "recursive YAML alias: *x refers to a value that contains it"),
    ("a: &a {b: [1, *a]}\n", 1, 15, "recursive YAML alias: *a"),
    ("x: " + "[" * 500 + "]" * 500 + "\n", 1, 3 + yamlio.MAX_DEPTH,
     f"YAML nested more than {yamlio.MAX_DEPTH} levels deep"),
    ("x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "\n", 100, 199,
     "nested more than"),
])
def test_recursion_and_depth_are_located_errors_not_recursion_errors(
        text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load(text, "wf.yaml")
    assert (err.value.file, err.value.line, err.value.column) == ("wf.yaml", line, column)
    assert message in str(err.value)


def test_the_number_of_aliases_is_bounded() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (yamlio.MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(SpecError, match=rf"wf.yaml:2:\d+: more than {yamlio.MAX_ALIASES:,} "
                                        "YAML aliases"):
        load(text, "wf.yaml")


def test_ordinary_aliases_and_nesting_still_load() -> None:
    text = "base: &b {top_k: 4, mode: hybrid}\none: *b\ntwo: [*b, *b]\ndeep: " \
        + "[" * 50 + "1" + "]" * 50 + "\n"
    located = load(text, "wf.yaml")
    assert located.data["one"] == located.data["two"][1] == {"top_k": 4, "mode": "hybrid"}
    assert located.where(("two", 1, "top_k")) == (1, 18)  # the anchor's position
    deep = located.data["deep"]
    for _ in range(49):
        deep = deep[0]
    assert deep == [1]


def test_set_values_are_read_by_the_bounded_loader_too() -> None:
    located = load("version: 1\nname: x\n", "wf.yaml")
    apply_override(located, "name=" + "[" * 300 + "]" * 300)  # no RecursionError
    assert located.data["name"] == "[" * 300 + "]" * 300  # not YAML within bounds: the text
    apply_override(located, "name=[a, b]")
    assert located.data["name"] == ["a", "b"]
