"""The answer-quality benchmark's data (benchmarks/answer_quality/) is well formed.

benchmarks/answer_quality.py scores an answer as right only when it cites the gold document and
contains the gold string, so a gold string missing from its document, a duplicate id or a typo in
a kind would silently turn into a wrong score. No model runs here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "answer_quality"
CORPUS = DATA / "corpus"
KINDS = {"answerable", "unanswerable", "chitchat", "unrelated"}
TEST_MINIMUMS = {"answerable": 20, "unanswerable": 8, "chitchat": 5, "unrelated": 7}


def norm(text: str) -> str:
    """Lower case, whitespace collapsed: gold strings may span a hard line break."""
    return " ".join(text.split()).lower()


@pytest.fixture(scope="module")
def questions() -> list[dict[str, str]]:
    lines = (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_corpus_is_ten_or_more_realistic_markdown_documents() -> None:
    docs = sorted(CORPUS.glob("*.md"))
    assert len(docs) >= 10
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        words = len(text.split())
        assert 300 <= words <= 800, f"{doc.name}: {words} words"
        assert text.startswith("# "), f"{doc.name}: no title heading"
        assert "\n## " in text, f"{doc.name}: no section headings"


def test_every_question_has_a_unique_id_a_valid_split_and_kind(
        questions: list[dict[str, str]]) -> None:
    ids = Counter(q["id"] for q in questions)
    assert [i for i, n in ids.items() if n > 1] == []
    for q in questions:
        assert q["split"] in {"dev", "test"}, q
        assert q["kind"] in KINDS, q
        assert q["question"].strip(), q
        if q["kind"] != "answerable":
            assert "doc" not in q and "answer" not in q, q


def test_every_gold_answer_occurs_in_its_document(questions: list[dict[str, str]]) -> None:
    for q in questions:
        if q["kind"] == "answerable":
            doc = CORPUS / q["doc"]
            assert doc.is_file(), f"{q['id']}: no document {q['doc']}"
            assert q["answer"].strip(), q
            assert norm(q["answer"]) in norm(doc.read_text(encoding="utf-8")), q["id"]


def test_the_test_split_meets_the_minimums_and_dev_covers_every_kind(
        questions: list[dict[str, str]]) -> None:
    test = Counter(q["kind"] for q in questions if q["split"] == "test")
    dev = Counter(q["kind"] for q in questions if q["split"] == "dev")
    assert sum(test.values()) >= 40
    for kind, least in TEST_MINIMUMS.items():
        assert test[kind] >= least, (kind, test[kind])
    assert set(dev) == KINDS and sum(dev.values()) >= 25
    texts = Counter(norm(q["question"]) for q in questions)
    assert [t for t, n in texts.items() if n > 1] == []  # no test question leaks into dev


def _benchmark():  # noqa: ANN202 - the module, loaded from its file (benchmarks/ is no package)
    import importlib.util

    path = DATA.parent / "answer_quality.py"
    spec = importlib.util.spec_from_file_location("answer_quality_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_scores_each_kind_as_documented() -> None:
    judge = _benchmark().judge
    q = {"id": "x", "kind": "answerable", "doc": "queen-bee.md", "answer": "2,000 eggs"}
    cite = [{"doc": 1, "source": "/tmp/corpus/queen-bee.md", "quote": "..."}]
    right = {"route": "knowledge", "answer_status": "passed", "citations": cite,
             "answer": "A good queen lays up to 2,000\neggs per day [DOC 1]."}
    assert judge(q, right)[0]
    other_doc = {**right, "citations": [{**cite[0], "source": "corpus/swarming.md"}]}
    assert not judge(q, other_doc)[0]
    only_in_caveat = {**right, "answer_status": "caveat",
                      "answer": "Queens mate [DOC 1].\n\nCaveat: ... 2,000 eggs ..."}
    assert not judge(q, only_in_caveat)[0]
    dont_know = {"route": "knowledge", "answer_status": "abstained", "citations": [],
                 "answer": "I don't know: the documents do not say."}
    assert not judge(q, dont_know)[0]
    unanswerable = {"id": "u", "kind": "unanswerable"}
    assert judge(unanswerable, dont_know)[0]
    assert not judge(unanswerable, {**dont_know, "route": "out_of_scope"})[0]
    assert not judge(unanswerable, right)[0]
    assert judge({"id": "c", "kind": "chitchat"}, {"route": "chitchat", "answer": "Hello!"})[0]
    declined = {"route": "out_of_scope", "answer": "I can only answer questions about bees."}
    assert judge({"id": "r", "kind": "unrelated"}, declined)[0]
    assert not judge({"id": "r", "kind": "unrelated"}, {**declined, "route": "chitchat"})[0]
