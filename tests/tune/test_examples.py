"""Training examples from the evaluation formats, rendered as the workflow's nodes render their prompts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentflow.tune.base import TuneError
from agentflow.tune.examples import classify_examples, dataset_examples, split_examples

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ROOT = Path(__file__).resolve().parents[2]


def test_rag_examples_cite_the_gold_passage_among_distractors(tmp_path: Path) -> None:
    examples = dataset_examples(DATA / "nq_open_oracle", "nq_open_oracle", task="rag", offset=1000, limit=5,
                                distractors=2, seed=3, root=tmp_path)
    corpus = {json.loads(line)["doc_id"]: json.loads(line)
              for line in (DATA / "nq_open_oracle" / "derived_corpus.jsonl").read_text().splitlines()}
    assert len(examples) == 5
    for example in examples:
        system, *shots, user = example.prompt
        assert system["role"] == "system" and "Cite the document behind every statement" in system["content"]
        assert shots[1]["content"] == "The library opens at 10 am on Saturdays [DOC 1]."  # the workflow's example
        assert user["content"].count("[DOC ") == 3
        (cited,) = re.findall(r"\[DOC (\d+)\]", example.completion)
        gold = corpus[example.meta["doc_ids"][0]]["text"]
        assert f"[DOC {cited}] {gold[:60]}" in user["content"]
        assert example.completion.startswith(example.meta["answers"][0].rstrip("."))
    assert [e.prompt for e in examples] == [e.prompt for e in dataset_examples(
        DATA / "nq_open_oracle", "nq_open_oracle", task="rag", offset=1000, limit=5, distractors=2, seed=3,
        root=tmp_path)]


def test_routing_examples_come_from_clinc150_train_with_its_intents(tmp_path: Path) -> None:
    examples = dataset_examples(DATA / "clinc150", "clinc150", limit=4, label_examples=0, root=tmp_path)
    assert [json.loads(e.completion)["label"] for e in examples] == [e.meta["label"] for e in examples]
    system, user = examples[0].prompt
    assert "- translate: " in system["content"] and "- oos: the message fits none" in system["content"]
    assert "examples:" not in system["content"]
    assert user == {"role": "user", "content": examples[0].meta["text"]}
    assert examples[0].id.startswith("train-")


def test_a_classify_nodes_examples_are_training_data_and_the_split_is_disjoint() -> None:
    examples = classify_examples(ROOT / "graphs" / "router.yaml")
    labels = {json.loads(e.completion)["label"] for e in examples}
    assert len(examples) >= 4 and len(labels) >= 2
    split = split_examples(examples, held_out=0.25, seed=0)
    assert not {e.meta["text"] for e in split.train} & {e.meta["text"] for e in split.held_out}
    assert len(split.held_out) == round(len(examples) * 0.25)
    with pytest.raises(TuneError, match="no classify node 'nope'"):
        classify_examples(ROOT / "graphs" / "router.yaml", "nope")
    with pytest.raises(TuneError, match="no training examples"):
        split_examples([], held_out=0.1, seed=0)
