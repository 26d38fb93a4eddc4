"""A ``classify`` label that takes its meaning from a collection (``from_collection``).

The reference workflow's own labels, the real embedded store and MiniLM, on a corpus these tests
write: whatever the documents are about is what a knowledge question is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agentflow.graph.context import NodeTracer, RunContext, Services
from agentflow.models import build_router
from agentflow.nodes.classify import ClassifyConfig, classify
from agentflow.prompts import PromptStore
from agentflow.retrieval.catalog import CollectionSpec, ensure_collection, open_retriever
from agentflow.retrieval.chunking import ChunkingConfig
from agentflow.testing.models import FakeChatModel, FakeRouter
from agentflow.tracing.events import Event

ROOT = Path(__file__).resolve().parents[2]

COOKING = {
    "bread.md": """# Bread

## Dough

A basic loaf needs 500 grams of flour, 350 millilitres of water, 10 grams of salt and 7 grams of
dried yeast. Knead the dough for ten minutes until it is smooth and springs back when pressed.

## Proving and baking

Let the dough rise in a warm place for one hour, until it has doubled in size.
Bake the loaf at 220 degrees Celsius for 35 minutes; it is done when the base sounds hollow.
""",
    "pasta.md": """# Pasta

Cook dried pasta in plenty of salted water: one litre of water for every 100 grams of pasta.
Spaghetti takes about nine minutes; taste a strand a minute before the time on the packet.
Keep a cup of the cooking water to loosen the sauce, and never rinse the drained pasta.
""",
    "knives.md": """# Kitchen knives

A chef's knife of 20 centimetres does most kitchen work. Sharpen it on a whetstone every few
months and hone it on a steel before each use. Wash knives by hand and dry them at once; the
dishwasher dulls the edge.
""",
}


def reference_labels() -> ClassifyConfig:
    """The classify node of graphs/agentic_rag.yaml, as it ships."""
    node = dict(yaml.safe_load((ROOT / "graphs" / "agentic_rag.yaml").read_text())["nodes"]["classify"])
    node.pop("type")
    return ClassifyConfig.model_validate(node)


@pytest.fixture(scope="module")
def cooking(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import asyncio

    base = tmp_path_factory.mktemp("cooking")
    for name, text in COOKING.items():
        (base / "docs").mkdir(exist_ok=True)
        (base / "docs" / name).write_text(text)
    spec = CollectionSpec(name="knowledge", sources=(str(base / "docs"),),
                          chunking=ChunkingConfig(chunker="markdown", size=120, overlap=20))
    asyncio.run(ensure_collection(spec, base_dir=base, progress=False))
    return open_retriever(spec, base_dir=base)


def context(retriever: Any, events: list[Event], models: Any = None) -> RunContext:
    tracer = NodeTracer(run_id="r1", parent_id="r1/classify", node="classify", emit_event=events.append)
    services = Services(models=models or build_router(None, env={}), prompts=PromptStore(),
                        retrievers={"knowledge": retriever})
    return RunContext("r1", "t1", "classify", services, tracer)


@pytest.mark.parametrize(("question", "route"), [
    ("How long do I bake a loaf of bread?", "knowledge"),           # the documents answer it
    ("How much water does pasta need?", "knowledge"),
    ("How do I make a sourdough starter?", "knowledge"),             # on topic, not answered
    ("Which knife is best for filleting fish?", "knowledge"),
    ("hi", "chitchat"),
    ("thanks!", "chitchat"),
    ("book me a flight to Paris", "out_of_scope"),                   # unrelated: declined
    ("what is my bank account balance", "out_of_scope"),
])
async def test_the_reference_labels_route_by_the_collection_content(
    cooking: Any, question: str, route: str
) -> None:
    events: list[Event] = []
    out = await classify.fn({"question": question}, reference_labels(), context(cooking, events))
    assert out == {"route": route}


async def test_the_trace_shows_the_route_its_score_and_what_it_was_compared_with(cooking: Any) -> None:
    events: list[Event] = []
    await classify.fn({"question": "How long do I bake a loaf of bread?"}, reference_labels(),
                      context(cooking, events))
    (shown,) = [e for e in events if e.kind == "custom" and e.name == "classification"]
    data = shown.data
    assert data["label"] == "knowledge" and data["score"] >= data["threshold"]
    assert set(data["scores"]) >= {"knowledge", "chitchat"}
    assert "220 degrees" in data["nearest"]["knowledge"]  # the passage sentence it matched
    compared = data["compared_with"]["knowledge"]
    assert compared and all(c["source"].endswith(".md") for c in compared)
    assert any(c["source"].endswith("bread.md") for c in compared)


async def test_an_llm_reads_the_nearest_passages_of_a_collection_label(cooking: Any) -> None:
    small = FakeChatModel(['{"label": "knowledge"}'])
    events: list[Event] = []
    out = await classify.fn({"question": "How do I sharpen a knife?"}, reference_labels(),
                            context(cooking, events, FakeRouter({"small": small})))
    assert out == {"route": "knowledge"}
    system = small.last_request.messages[0]["content"]
    assert "whetstone" in system and "passages like these" in system
    (label,) = [lb for lb in small.last_request.inputs.labels if lb.name == "knowledge"]
    assert any("whetstone" in p for p in label.passages)
    (shown,) = [e for e in events if e.name == "classification"]
    assert shown.data["label"] == "knowledge" and "score" not in shown.data  # an LLM sends none


def test_a_label_from_an_undeclared_collection_is_a_spec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentflow.errors import SpecError
    from agentflow.spec.load import load_workflow

    text = """
version: 1
name: t
inputs: {question: {type: string}}
nodes:
  classify:
    type: classify
    labels:
      knowledge: {description: docs, from_collection: manuals}
      chitchat: {examples: [hi]}
  hello: {type: reply, text: hi}
flow:
  - classify
  - hello
"""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="manuals"):
        load_workflow(tmp_path / "t.yaml", text=text, check_stores=True)
