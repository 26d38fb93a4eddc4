"""Every workflow in graphs/ runs offline: the reference agentic RAG workflow and one per shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentflow.spec.load import load_workflow

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"
CORPUS = Path(__file__).parent / "corpus"
SOURCE = f"collections.knowledge.source={CORPUS}"


async def run(name: str, inputs: dict[str, Any], root: Path, *overrides: str) -> Any:
    wf = load_workflow(GRAPHS / f"{name}.yaml", overrides=overrides)
    services = await wf.aservices(root=root, progress=False)
    return await wf.flow.arun(inputs, services=services)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project")


async def test_knowledge_question_is_answered_with_checked_citations(project: Path) -> None:
    result = await run("agentic_rag", {"question": "Why can a loop never run forever?"},
                       project, SOURCE)
    assert result["route"] == "knowledge"
    assert "max_iterations" in result["answer"] and "[DOC" in result["answer"]
    assert result["citations"], "the answer cites its documents"
    assert {Path(c["source"]).name for c in result["citations"]} == {"loops.md"}
    assert all(c["quote"] in (CORPUS / "loops.md").read_text().replace("\n", " ") or c["quote"]
               for c in result["citations"])
    assert set(result["checks"]) == {"citations", "faithfulness", "relevancy", "self_consistency"}
    assert result.loops["refine"].stop_reason == "passed"
    assert result["answer_status"] == "passed"


async def test_chit_chat_is_answered_without_retrieval(project: Path) -> None:
    result = await run("agentic_rag", {"question": "hello there!"}, project, SOURCE)
    assert result["route"] == "chitchat"
    assert result["answer"].startswith("Hello!")  # offers help with what the documents cover
    assert "the documents in corpus" in result["answer"] and "offline" not in result["answer"]
    assert not result.get("citations") and "search" not in result.nodes_run


async def test_out_of_scope_is_declined(project: Path) -> None:
    result = await run("agentic_rag", {"question": "What will the stock market do next year?"},
                       project, SOURCE)
    assert result["route"] == "out_of_scope"
    assert result["answer"] == "I can only answer questions about the documents in corpus."


async def test_an_unanswerable_question_is_not_made_up(project: Path) -> None:
    result = await run("agentic_rag", {"question": "How does agentflow encrypt its trace database?"},
                       project, SOURCE)
    assert result["route"] == "knowledge"
    assert result["answer_status"] in ("abstained", "caveat")
    if result["answer_status"] == "abstained":  # an outcome: no retries, no caveat
        assert result.loops["refine"].passes == 1 and "Caveat" not in result["answer"]


async def test_router_graph(project: Path) -> None:
    result = await run("router", {"question": "pip install fails with an error"}, project)
    assert result["route"] in ("install", "bug")
    assert result["answer"]


async def test_sequential_rag_graph(project: Path) -> None:
    result = await run("rag_sequential", {"question": "How are the dense and sparse lists merged?"},
                       project, SOURCE)
    assert "reciprocal rank fusion" in result["answer"]
    assert {Path(c["source"]).name for c in result["citations"]} == {"search.md"}


async def test_map_reduce_summary_graph(project: Path) -> None:
    result = await run("map_reduce_summary", {"topic": "hybrid search"}, project, SOURCE)
    assert len(result["partials"]) == len(result["passages"]) > 1  # one per passage, in parallel
    assert result["summary"]
    assert result.loops == {}


def test_the_main_job_prints_answer_and_citations_as_one_json_line(tmp_path: Path) -> None:
    project = tmp_path  # its own project: an embedded collection is opened by one process at a time
    env = {**os.environ, "AGENTFLOW_TRACES_DB": str(project / "traces.db")}
    proc = subprocess.run(
        [sys.executable, "-m", "agentflow.cli", "run", str(GRAPHS / "agentic_rag.yaml"),
         "-i", "question=What merges the dense and sparse rankings?", "--set", SOURCE,
         "--output", "json"],
        cwd=project, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out) >= {"answer", "citations", "route", "checks"}
    assert out["route"] == "knowledge"
    assert any(Path(c["source"]).name == "search.md" for c in out["citations"])
    assert (project / "traces.db").exists()


def test_every_graph_validates() -> None:
    names = sorted(p.stem for p in GRAPHS.glob("*.yaml"))
    assert names == ["agentic_rag", "map_reduce_summary", "rag_sequential", "router"]
    for name in names:
        load_workflow(GRAPHS / f"{name}.yaml").flow.compile()


async def test_an_ingestion_that_writes_passages_prepares_the_offline_models_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentences of new passages are embedded with the ingestion (the cold run), so a
    warm run's new question embeds only itself; a run that ingests nothing prepares nothing."""
    from agentflow.models.embeddings import cache_path, shared_cache
    from agentflow.models.offline.extractive import passage_sentences
    from agentflow.models.offline.model import OfflineModel

    monkeypatch.setenv("AGENTFLOW_EMBEDDING_CACHE", str(tmp_path / "emb.db"))
    prepared: list[list[str]] = []
    real = OfflineModel.prepare

    def spy(self: OfflineModel, passages: list[str], *, progress: bool = False) -> int:
        prepared.append(list(passages))
        return real(self, passages, progress=progress)

    monkeypatch.setattr(OfflineModel, "prepare", spy)
    wf = load_workflow(GRAPHS / "agentic_rag.yaml", overrides=[SOURCE])
    services = await wf.aservices(root=tmp_path, progress=False)
    await wf.aservices(root=tmp_path, progress=False)
    rows = await services.retrievers["knowledge"].store.scan(["text"])
    assert len(prepared) == 1 and sorted(prepared[0]) == sorted(r["text"] for r in rows)
    sentences = {s for r in rows for s in passage_sentences(r["text"])}
    cache = shared_cache(cache_path())
    assert cache is not None and set(cache.get_many(sorted(sentences))) == sentences


async def test_each_retry_answers_from_a_wider_context(tmp_path: Path) -> None:
    """The verdict raises ``retrieval_k`` by 6 on each failing pass; retrieval and fusion both
    follow it, so a retry reads more passages rather than the same six again."""
    from agentflow.tracing.events import EventCollector

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(30):
        (corpus / f"city{i}.md").write_text(
            f"# City {i}\n\nThe weather in city {i} is mild in spring. Its market opens at {i % 12 + 1} "
            f"o'clock.\n", encoding="utf-8")
    collector = EventCollector()
    wf = load_workflow(GRAPHS / "agentic_rag.yaml",  # routed as knowledge whatever its topic
                       overrides=[f"collections.knowledge.source={corpus}",
                                  "nodes.classify.threshold=-1",
                                  "nodes.relevant.threshold=1.0"])  # fails every pass
    services = await wf.aservices(root=tmp_path, progress=False)
    result = await wf.flow.arun({"question": "When does the market in city 3 open?"},
                                services=services, hooks=[collector])
    fused = [len(e.data["update"]["chunks"]) for e in collector.of_kind("node_finished")
             if e.name == "fuse"]
    assert result.loops["refine"].passes == 3 and result["answer_status"] != "passed"
    assert fused == [6, 12, 18]


BIKE = """# Chain care

Clean the chain every 300 kilometres with a degreaser and a brush. Wipe it dry with a clean rag before you oil it.

# Brakes

SRAM hydraulic brakes use DOT 5.1 brake fluid. Shimano brakes use mineral oil, never DOT fluid.
"""


@pytest.fixture(scope="module")
def bike(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bike")
    (root / "docs").mkdir()
    (root / "docs" / "bike.md").write_text(BIKE, encoding="utf-8")
    return root


async def bike_run(root: Path, question: str) -> Any:
    return await run("agentic_rag", {"question": question}, root,
                     f"collections.knowledge.source={root / 'docs'}", "nodes.classify.threshold=-1")


async def test_a_right_abstention_ends_the_refine_loop_at_once_as_abstained(bike: Path) -> None:
    result = await bike_run(bike, "How much does a new chain cost?")
    assert result["answer"].startswith("I don't know") and "Caveat" not in result["answer"]
    assert result["answer_status"] == "abstained" and result.loops["refine"].passes == 1
    assert result["checks"]["faithfulness"].details["abstention"] == "right"
    assert all(c.passed for c in result["checks"].values())


async def test_an_on_topic_answer_that_misses_the_question_does_not_pass(bike: Path) -> None:
    result = await bike_run(bike, "How many kilometres does a chain last?")
    assert result["answer_status"] != "passed"
    relevancy = result["checks"]["relevancy"]
    assert not relevancy.passed and "asks for a number" in relevancy.reason
    answered = await bike_run(bike, "Which brake fluid do SRAM brakes use?")
    assert answered["answer"].startswith("SRAM hydraulic brakes use DOT 5.1 brake fluid [DOC")
    assert answered["answer_status"] == "passed"
