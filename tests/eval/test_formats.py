"""Each dataset adapter against the real files in ../shared/data, and bad input with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.eval.formats import FORMATS, KNOWLEDGE, DatasetError, load_dataset
from agentflow.retrieval.loaders import FieldMap, load

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def corpus_ids(dataset) -> set[str]:  # type: ignore[no-untyped-def]
    """The record ids the collection built from the dataset's corpus will carry."""
    corpus = dataset.corpus
    docs = load(corpus.path, field_map=FieldMap.parse(dict(corpus.field_map)))
    return {d.metadata["record_id"] for d in docs}


def test_clapnq_interleaves_answerable_and_unanswerable_and_keeps_gold_passage_ids() -> None:
    data = load_dataset(DATA / "clapnq_dev", "clapnq", limit=4)
    first = data.items[0]
    assert first.id == "6401197308716204890"
    assert first.question.startswith("which method of forecasting uses averages")
    assert first.gold.doc_ids == ("820769473_15895-16818",) and first.gold.route == KNOWLEDGE
    assert [i.gold.answerable for i in data.items] == [True, False, True, False]
    assert data.items[1].gold.answers == () and data.items[1].gold.doc_ids == ()
    assert dict(data.corpus.field_map) == {"text": "text", "title": "title", "id": "doc_id"}
    assert data.corpus.documents == 597
    full = load_dataset(DATA / "clapnq_dev" / "derived_questions.jsonl", "clapnq")  # a file in it
    assert len(full.items) == 600 - 64  # 32 of each half describe the knowledge label
    examples = full.routing.labels[KNOWLEDGE].examples
    assert len(examples) == 64 and not set(examples) & {i.question for i in full.items}
    assert len(load_dataset(DATA / "clapnq_dev", "clapnq", split="unanswerable").items) == 268


def test_nq_open_oracle_gold_ids_are_ids_of_its_corpus() -> None:
    data = load_dataset(DATA / "nq_open_oracle", "nq_open_oracle", limit=3)
    assert data.items[0].inputs == {"question": "who got the first nobel prize in physics"}
    assert data.items[0].gold.answers == ("Wilhelm Conrad Röntgen",)
    assert data.items[0].gold.doc_ids == ("nqo_0",)
    assert {d for i in data.items for d in i.gold.doc_ids} <= corpus_ids(data)


def test_hotpotqa_derives_a_title_keyed_corpus_under_the_work_folder(tmp_path: Path) -> None:
    data = load_dataset(DATA / "hotpotqa_musique", "hotpotqa", limit=2, work_dir=tmp_path)
    first = data.items[0]
    assert first.question == "If Gallu is a demon Lilu is what?"
    assert first.gold.answers == ("a spirit",) and first.gold.doc_ids == ("Alû", "Lilu (mythology)")
    assert data.corpus.path == tmp_path / "hotpotqa" / "corpus.jsonl"
    assert data.corpus.documents == 994
    assert set(first.gold.doc_ids) <= corpus_ids(data)
    stamp = data.corpus.path.stat().st_mtime_ns
    load_dataset(DATA / "hotpotqa_musique", "hotpotqa", work_dir=tmp_path)
    assert data.corpus.path.stat().st_mtime_ns == stamp  # unchanged content is not rewritten


def test_musique_maps_supporting_paragraphs_to_unique_corpus_ids(tmp_path: Path) -> None:
    data = load_dataset(DATA / "hotpotqa_musique", "musique", work_dir=tmp_path)
    first = data.items[0]
    assert first.id == "2hop__150763_14904"
    assert first.gold.answers == ("G. Stanley Hall", "Stanley Hall")
    assert len(data.items) == 80 and data.corpus.documents == 1890
    ids = corpus_ids(data)
    assert len(ids) == 1890  # repeated titles got " (2)", " (3)"...
    assert all(set(i.gold.doc_ids) <= ids and 2 <= len(i.gold.doc_ids) <= 4 for i in data.items)


def test_scifact_items_are_claims_with_evidence_and_abstracts_are_the_corpus() -> None:
    data = load_dataset(DATA / "scifact", "scifact")
    assert len(data.items) == 188  # dev claims with evidence
    first = data.items[0]
    assert first.id == "3" and first.gold.doc_ids == ("14717500",)
    assert first.question.startswith("1,000 genomes project enables mapping")
    assert data.corpus.field_map["text"] == "abstract" and data.corpus.documents == 5183
    assert len(data.routing.labels[KNOWLEDGE].examples) == 64
    with pytest.raises(DatasetError, match="no split 'test'. Splits: dev, train"):
        load_dataset(DATA / "scifact", "scifact", split="test")


def test_clinc150_routes_to_intents_and_oos_with_the_train_queries_as_labels() -> None:
    data = load_dataset(DATA / "clinc150", "clinc150", limit=62)
    assert data.items[0].inputs == {"question": "in spanish, meet me tomorrow is said how"}
    assert data.items[0].gold.route == "translate"
    assert [i.gold.route for i in data.items].count("oos") == 2  # 3,000 + 100 interleaved
    routing = data.routing
    assert routing.replace and routing.out_of_scope == "oos" and len(routing.labels) == 150
    assert routing.labels["translate"].description == "travel: translate"
    assert len(routing.labels["translate"].examples) == 10


def test_halueval_gives_a_right_and_a_hallucinated_item_per_row() -> None:
    data = load_dataset(DATA / "halueval_qa", "halueval", limit=2)
    right, invented = data.items
    assert (right.id, invented.id) == ("1-right", "1-hallucinated")
    assert right.inputs["answer"] == "Arthur's Magazine" and right.gold.faithful is True
    assert invented.inputs["answer"] == "First for Women was started first."
    assert invented.gold.faithful is False and invented.inputs["context"] == right.context[0]
    assert data.needs_inputs == ("question", "answer", "context")


def write(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_reads_every_documented_field_and_filters_by_split(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl",
                 {"id": "a", "question": "q1", "answers": "x", "gold_doc_ids": ["d1", 7],
                  "answerable": True, "route": "kb", "context": "c", "split": "dev",
                  "metadata": {"anything": 1}},
                 {"inputs": {"question": "q2", "history": []}, "faithful": False, "split": "test"})
    data = load_dataset(path, "jsonl")
    a, b = data.items
    assert a.gold.answers == ("x",) and a.gold.doc_ids == ("d1", "7") and a.context == ("c",)
    assert b.id == "2" and b.inputs == {"question": "q2", "history": []}
    assert b.gold.faithful is False
    assert [i.id for i in load_dataset(path, "jsonl", split="test").items] == ["2"]
    with pytest.raises(DatasetError, match="no items in split 'val'; splits in the file: dev, test"):
        load_dataset(path, "jsonl", split="val")


@pytest.mark.parametrize(("rows", "message"), [
    (['{"question": "q"', ], r"d.jsonl:1: invalid JSON"),
    ([{"question": "q"}, {"question": "q", "answer": "x"}],
     r"d.jsonl:2: unknown field 'answer'. Did you mean 'answers'\?"),
    ([{"question": ""}], r"d.jsonl:1: field 'question' must be a non-empty string"),
    ([{"question": "q", "answerable": "yes"}], r"d.jsonl:1: field 'answerable' must be true or false"),
    ([{"question": "q", "gold_doc_ids": {"a": 1}}], r"field 'gold_doc_ids' must be a list of strings"),
    ([{"id": 1, "question": "q"}, {"id": "1", "question": "r"}], r"d.jsonl:2: id '1' is also the id of line 1"),
])
def test_malformed_rows_are_named_by_file_line_and_field(tmp_path: Path, rows: list[object],
                                                         message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(write(tmp_path / "d.jsonl", *rows), "jsonl")


def test_unknown_formats_splits_and_paths_say_what_is_valid(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset format 'clapqn'. Did you mean 'clapnq'\? "
                                           r"Formats: clapnq, nq_open_oracle"):
        load_dataset(DATA / "clapnq_dev", "clapqn")
    with pytest.raises(DatasetError, match="no split 'dev'.*Splits: all, answerable, unanswerable"):
        load_dataset(DATA / "clapnq_dev", "clapnq", split="dev")
    with pytest.raises(DatasetError, match="no such dataset file or folder"):
        load_dataset(tmp_path / "missing", "clapnq")
    with pytest.raises(DatasetError, match=r"expects derived_questions.jsonl in .*found: nothing"):
        load_dataset(tmp_path, "nq_open_oracle")
    with pytest.raises(DatasetError, match="--limit must be at least 1"):
        load_dataset(DATA / "clapnq_dev", "clapnq", limit=0)
    assert set(FORMATS) == {"clapnq", "nq_open_oracle", "hotpotqa", "musique", "scifact",
                            "clinc150", "halueval", "jsonl", "mcq", "halueval_mcq"}
