"""examples/release_notes: a map that collects its failures, parallel branches, a bounded loop."""

from __future__ import annotations

import json

from .support import ROOT, run

FLOW = "examples.release_notes.flow:flow"
INPUTS = f"@{ROOT / 'examples' / 'release_notes' / 'prs.json'}"


def notes(*extra: str) -> dict:
    proc = run("-m", "agentflow.cli", "run", FLOW, "--input-json", INPUTS, *extra, "--output", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_failing_title_is_collected_and_the_others_keep_their_order() -> None:
    state = notes()
    assert [r["item"] for r in state["rejected"]] == ["Update the contributing guide"]
    assert [e["kind"] for e in state["entries"]] == ["feat", "fix", "feat", "fix"]
    assert state["features"].startswith("Features:\n") and state["fixes"].startswith("Fixes:\n")
    assert len(state["notes"]) <= 200 and state["edits"] == 2


def test_the_loop_stops_after_max_iterations_when_the_notes_never_fit() -> None:
    state = notes("-i", "limit=100")
    assert state["edits"] == 3 and len(state["notes"]) > 100


def test_the_script_shows_the_concurrency_limit_and_each_pass_verdict() -> None:
    proc = run("-m", "examples.release_notes.run")
    assert proc.returncode == 0, proc.stderr
    assert "map label_all: 4 ok, 1 failed, at most 3 in flight (max_concurrency 3)" in proc.stdout
    assert "loop shorten: pass 1 failed (248 characters, limit 200)" in proc.stdout
    assert "loop shorten: pass 2 passed (171 characters, limit 200)" in proc.stdout
    assert "parallel sections: branch 0 finished" in proc.stdout
