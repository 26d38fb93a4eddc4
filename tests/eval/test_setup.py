"""What a dataset applies to a workflow: its corpus as the knowledge collection, its labels on
the classify node; the user's --set wins; what cannot apply is a note, not a failure."""

from __future__ import annotations

from pathlib import Path

from agentflow.eval.formats import load_dataset
from agentflow.eval.setup import dataset_overrides, outputs_of, route_node
from agentflow.spec.load import load_workflow
from agentflow.spec.yamlio import load_file

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
RAG, ROUTER = ROOT / "graphs" / "agentic_rag.yaml", ROOT / "graphs" / "router.yaml"


def test_a_qa_set_becomes_the_knowledge_collection_and_re_describes_the_knowledge_label() -> None:
    data = load_dataset(DATA / "nq_open_oracle", "nq_open_oracle", limit=1)
    applied, notes = dataset_overrides(load_file(RAG).data, data, collection="knowledge",
                                       route="classify")
    assert notes == []
    workflow = load_workflow(RAG, overrides=[*applied, "nodes.classify.threshold=0.2"])
    [knowledge] = [c for c in workflow.collections() if c.name == "knowledge"]
    assert knowledge.sources == (str((DATA / "nq_open_oracle" / "derived_corpus.jsonl").resolve()),)
    assert knowledge.field_map.id == "doc_id" and knowledge.store == "embedded"
    assert knowledge.chunking.chunker == "sentences"
    classify = route_node(workflow.flow, None)
    assert classify is not None and classify.name == "classify"
    labels = classify.config.specs()
    assert labels["knowledge"].description == "a factual question that Wikipedia passages answer"
    assert len(labels["knowledge"].examples) == 64
    assert "hi there" in labels["chitchat"].examples  # the other labels are kept
    # re-described field by field: the label still routes by the collection's content
    assert labels["knowledge"].from_collection == "knowledge"
    assert classify.config.threshold == 0.2  # the user's --set came last and wins
    outputs = outputs_of(workflow.flow, answer="answer", chunks="chunks", route=classify)
    assert (outputs.route, outputs.out_of_scope, outputs.chunks) == ("route", "out_of_scope",
                                                                     "chunks")


def test_an_intent_set_replaces_the_labels_and_the_out_of_scope_label() -> None:
    data = load_dataset(DATA / "clinc150", "clinc150", limit=1)
    applied, notes = dataset_overrides(load_file(ROUTER).data, data, collection="knowledge",
                                       route="classify")
    assert notes == []
    config = route_node(load_workflow(ROUTER, overrides=applied).flow, None).config
    assert len(config.specs()) == 150 and config.out_of_scope == "oos"
    assert "install" not in config.specs()


def test_what_a_workflow_cannot_take_is_noted(tmp_path: Path) -> None:
    data = load_dataset(DATA / "hotpotqa_musique", "hotpotqa", limit=1, work_dir=tmp_path)
    router = load_file(ROUTER).data
    applied, notes = dataset_overrides(router, data, collection="knowledge", route="classify")
    assert applied == []  # nor the threshold: the node's own labels are kept as they are
    assert "declares no collection 'knowledge'" in notes[0]
    assert "has no label 'knowledge' to re-describe" in notes[1]
    _, notes = dataset_overrides(router, data, collection="knowledge", route=None)
    assert "has no classify node" in notes[1]
