"""Every example runs: its script, and the command its README shows."""

from __future__ import annotations

import json

from .support import ROOT, run

EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir() and not p.name.startswith("_"))


def test_every_example_is_a_folder_with_a_readme_a_workflow_and_a_script() -> None:
    assert EXAMPLES
    for folder in EXAMPLES:
        assert (folder / "README.md").is_file(), folder.name
        assert (folder / "run.py").is_file(), folder.name
        assert list(folder.glob("flow.py")) or list(folder.glob("*.yaml")), folder.name


def test_every_example_script_runs() -> None:
    for folder in EXAMPLES:
        proc = run("-m", f"examples.{folder.name}.run")
        assert proc.returncode == 0, f"{folder.name}: {proc.stderr}"
        assert proc.stdout.strip(), folder.name


def test_hello_example_from_the_command_line() -> None:
    proc = run("-m", "agentflow.cli", "run", "examples.hello.flow:flow", "-i",
               "message=What are a loop and a map?", "--output", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["kind"] == "question" and state["topics"] == ["loop", "map"]
    assert "at most max_iterations times" in state["reply"]
