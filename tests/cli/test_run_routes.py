"""`agentflow run graphs/agentic_rag.yaml --set collections.knowledge.source=DIR` on anyone's
documents: the route comes from the collection, and every route prints cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "graphs" / "agentic_rag.yaml"
KEYS = {"answer", "citations", "route", "checks", "answer_status"}

GARDEN = {
    "tomatoes.md": "# Tomatoes\n\nSow tomato seeds indoors six to eight weeks before the last frost.\n"
                   "Plant the seedlings out when the nights stay above ten degrees Celsius.\n"
                   "Water tomatoes at the base every two days and pinch out the side shoots.\n",
    "compost.md": "# Compost\n\nA compost heap needs equal parts of green and brown material.\n"
                  "Turn the heap every two weeks; compost is ready after six to twelve months.\n",
}


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("garden")
    (project / "garden").mkdir()
    for name, text in GARDEN.items():
        (project / "garden" / name).write_text(text)
    return project


def agentflow_run(project: Path, question: str, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTFLOW_TRACES_DB": str(project / "traces.db")}
    proc = subprocess.run(
        [sys.executable, "-m", "agentflow.cli", "run", str(WORKFLOW), "-i", f"question={question}",
         "--set", f"collections.knowledge.source={project / 'garden'}", "--quiet", *options],
        cwd=project, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_request_unrelated_to_the_documents_prints_only_the_decline_and_the_route(garden: Path) -> None:
    proc = agentflow_run(garden, "book me a flight to Paris")  # the cold run: it ingests
    assert proc.stdout == "I can only answer questions about the documents in garden.\n\nroute: out_of_scope\n"


def test_every_route_has_the_same_json_keys_and_no_nulls(garden: Path) -> None:
    knowledge = json.loads(agentflow_run(garden, "When do I plant tomato seedlings outside?",
                                         "--output", "json").stdout.splitlines()[-1])
    assert knowledge["route"] == "knowledge" and "[DOC" in knowledge["answer"]
    assert any(Path(c["source"]).name == "tomatoes.md" for c in knowledge["citations"])
    chat = json.loads(agentflow_run(garden, "thanks!", "--output", "json").stdout.splitlines()[-1])
    assert chat == {"answer": "You're welcome! I'm glad to help with answering questions about the "
                              "documents in garden.",
                    "citations": [], "route": "chitchat", "checks": {}, "answer_status": ""}
    assert set(knowledge) == set(chat) == KEYS


def test_outputs_no_node_wrote_are_empty_values_of_their_declared_type_and_not_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agentflow.cli import _print_state
    from agentflow.spec.load import load_workflow

    workflow = load_workflow(WORKFLOW)
    declined = workflow.outputs_of({"answer": "No.", "route": "out_of_scope", "citations": None})
    assert declined == {"answer": "No.", "citations": [], "route": "out_of_scope", "checks": {},
                        "answer_status": ""}
    _print_state(declined)
    assert capsys.readouterr().out == "No.\n\nroute: out_of_scope\n"
