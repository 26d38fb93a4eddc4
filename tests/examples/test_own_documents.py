"""examples/own_documents: answers from the shipped handbook, with checked citations, or abstains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentflow.retrieval.catalog import ensure_collection
from agentflow.spec.load import load_workflow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "own_documents" / "rag.yaml"


def ask(question: str, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", str(WORKFLOW), "-i",
                           f"question={question}", "--output", "json", "-q"], cwd=cwd, text=True,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_handbook_question_is_answered_from_the_handbook_with_checked_citations(tmp_path: Path) -> None:
    state = ask("Can I deploy on a Friday?", tmp_path)
    assert "Nobody deploys to production on a Friday" in state["answer"] and "[DOC" in state["answer"]
    assert state["citations"] and {Path(c["source"]).name for c in state["citations"]} == {"deploys.md"}
    handbook = (WORKFLOW.parent / "handbook" / "deploys.md").read_text()
    assert all(c["quote"] in handbook for c in state["citations"])
    assert state["checks"]["citations"]["passed"] and state["checks"]["faithfulness"]["passed"]


def test_a_question_the_handbook_does_not_answer_gets_an_abstention(tmp_path: Path) -> None:
    state = ask("Which programming language does the team use?", tmp_path)
    assert state["answer"].startswith("I don't know")
    assert state["citations"] == []
    assert {r["passed"] for r in state["checks"].values()} == {False}
    assert {r["score"] for r in state["checks"].values()} == {None}


async def test_the_handbook_is_ingested_once_and_then_found_unchanged(tmp_path: Path) -> None:
    [spec] = load_workflow(WORKFLOW).collections()
    first = await ensure_collection(spec, base_dir=tmp_path, progress=False)
    second = await ensure_collection(spec, base_dir=tmp_path, progress=False)
    assert (first.added, first.files) == (3, 3) and first.chunks_written > 0
    assert (second.unchanged, second.chunks_written) == (3, 0)
