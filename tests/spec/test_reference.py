"""The YAML reference (docs/reference/yaml.md) is generated from the schema and kept up to date."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

from agentflow.graph.registry import registry
from agentflow.nodes import BUILTINS, load_builtins
from agentflow.spec.model import json_schema
from agentflow.spec.reference import render_markdown

from .nodes import REG

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "reference" / "yaml.md"


def generated() -> str:
    proc = subprocess.run([sys.executable, "-m", "agentflow.spec.reference"], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_committed_reference_is_up_to_date() -> None:
    assert generated() == COMMITTED.read_text(encoding="utf-8"), (
        "docs/reference/yaml.md is out of date: regenerate it with "
        "`python -m agentflow.spec.reference -o docs/reference/yaml.md`")


def test_the_reference_documents_every_built_in_node_type() -> None:
    load_builtins()
    modules = {importlib.import_module(f"agentflow.nodes.{m}").__name__ for m in BUILTINS}
    built_in = sorted(t.name for t in registry if t.fn.__module__ in modules)
    assert {"retrieve", "generate", "check", "verdict", "python"} <= set(built_in)
    text = COMMITTED.read_text(encoding="utf-8")
    for name in built_in:
        assert f"### `{name}`" in text, f"node type {name!r} is missing from docs/reference/yaml.md"
        assert f"`type: {name}`" in text


def test_every_link_inside_the_reference_points_at_a_heading() -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)


def test_a_node_type_renders_with_its_fields_types_defaults_and_constraints() -> None:
    text = render_markdown(json_schema(REG))
    section = text.split("### `echo`", 1)[1].split("\n### ", 1)[0]
    assert "Copy a field, with a prefix." in section
    assert "| `input` | `string` | `question` | The field to read. |" in section
    assert "| `times` | `integer` (>= 1, <= 5) | `1` |" in section
    label = text.split("### `label`", 1)[1].split("\n### ", 1)[0]
    assert "| `labels` | list of `string` | **required** |" in label


def test_steps_and_enums_are_rendered_with_their_valid_values() -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    assert "| `max_iterations` | `integer` (>= 1, <= 1000) | **required** |" in text
    assert "one of `fail_fast`, `continue`, `collect`" in text
    assert "one of `replace`, `append`, `merge`, `messages`" in text
    for step in ("route", "loop", "parallel", "map"):
        assert f"### `{step}`" in text
