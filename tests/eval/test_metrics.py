"""Metrics, per-item scoring and the summary, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from agentflow.checks import CheckResult
from agentflow.documents import Chunk
from agentflow.eval import metrics as m
from agentflow.eval.formats import Gold, Item
from agentflow.eval.scoring import Outputs, observe, score
from agentflow.eval.summary import direction, summarize


def test_exact_match_normalises_like_squad_and_drops_citations() -> None:
    assert m.exact_match("The Eiffel Tower [DOC 2].", ["eiffel tower"]) == 1.0
    assert m.exact_match("Eiffel Tower, Paris", ["eiffel tower"]) == 0.0
    assert m.exact_match("an apple", ["pear", "Apple!"]) == 1.0


def test_token_f1_is_the_best_over_aliases() -> None:
    # "cat sat on mat" vs "cat on mat": 3 common, precision 3/4, recall 1 -> 6/7
    assert m.token_f1("the cat sat on the mat", ["cat on mat"]) == pytest.approx(6 / 7)
    # a token repeated in the prediction matches the gold's one occurrence once: p = r = 2/3
    assert m.token_f1("red red blue", ["red blue green"]) == pytest.approx(2 / 3)
    assert m.token_f1("nothing shared", ["other words"]) == 0.0
    assert m.token_f1("x", ["no match", "x"]) == 1.0
    assert m.token_f1("the", ["a"]) == 1.0  # both empty after normalisation, as in SQuAD
    assert m.token_f1("word", []) == 0.0


def test_answer_contains_matches_whole_words_only() -> None:
    assert m.answer_contains("He was born in Paris, France [DOC 1].", ["paris"]) == 1.0
    assert m.answer_contains("He was born in Paris, France.", ["par"]) == 0.0
    assert m.answer_contains("about 270 degrees", ["270 degrees", "x"]) == 1.0
    assert m.answer_contains("anything", ["the"]) == 0.0  # an answer that normalises to nothing


def test_recall_at_k_and_ndcg_at_10() -> None:
    assert m.recall_at(["a", "b", "c"], ["c", "d"], 2) == 0.0
    assert m.recall_at(["a", "b", "c"], ["c", "d"], 3) == 0.5
    # gold at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m.ndcg_at(["x", "a", "y", "b"], ["a", "b"]) == pytest.approx(expected)
    assert m.ndcg_at(["a"], ["a"]) == 1.0
    assert m.ndcg_at([f"x{i}" for i in range(10)] + ["a"], ["a"]) == 0.0  # rank 11 is past 10
    with pytest.raises(ValueError):
        m.recall_at(["a"], [], 5)


def test_percentiles_interpolate_linearly() -> None:
    assert m.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert m.percentile([float(v) for v in range(1, 21)], 95) == pytest.approx(19.05)
    assert m.percentile([7.0], 95) == 7.0
    assert m.unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def chunk(doc: str, n: int = 0, **meta: str) -> Chunk:
    return Chunk(id=f"{doc}:{n}", text=f"text of {doc}", source=f"/data/{doc}", metadata=meta)


def check(kind: str, score: float | None, passed: bool, **details: float) -> dict:
    return CheckResult(name=kind, kind=kind, score=score, passed=passed, threshold=0.5,  # type: ignore[arg-type]
                       reason="r", details=details).model_dump()


async def test_scoring_reads_the_state_and_uses_the_workflows_own_checks() -> None:
    outputs = Outputs(route="route", out_of_scope="out_of_scope")
    state = {
        "answer": "Fifteen hours [DOC 1].\n\nCaveat: this answer did not pass all of its checks.",
        "answer_status": "caveat", "route": "knowledge",
        # two chunks of d1, then d2: documents rank d1, d2, d3
        "chunks": [chunk("x", record_id="d1"), chunk("x", 1, record_id="d1"),
                   chunk("y", record_id="d2"), chunk("z", record_id="d3")],
        "checks": {"cite": check("citations", 0.8, True, precision=0.75, recall=0.9),
                   "grounded": check("faithfulness", 0.5, False)},
    }
    item = Item("q", {"question": "How long?"},
                Gold(answers=("fifteen hours",), doc_ids=("d2", "d9"), answerable=True,
                     route="knowledge"))
    observed = observe(state, outputs)
    assert observed.body == "Fifteen hours [DOC 1]."  # the caveat is not scored
    assert observed.retrieved == ["d1", "d2", "d3"]
    metrics, checks = await score(item, observed, outputs, judge=None, recall_ks=(1, 2))
    assert metrics["exact_match"] == 1.0 and metrics["answer_contains"] == 1.0
    assert metrics["recall@1"] == 0.0 and metrics["recall@2"] == 0.5
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert metrics["citation_precision"] == 0.75 and metrics["citation_recall"] == 0.9
    assert metrics["faithfulness"] == 0.5 and "relevancy" not in metrics  # no judge, no check
    assert metrics["abstention_accuracy"] == 1.0 and metrics["routing_accuracy"] == 1.0
    assert set(checks) == {"citations", "faithfulness"}


async def test_abstentions_and_out_of_scope_routes_count_as_not_answering() -> None:
    outputs = Outputs(route="route", out_of_scope="out_of_scope")
    unanswerable = Item("u", {"question": "q"}, Gold(answers=("x",), answerable=False))
    declined = observe({"answer": "I can only answer questions about docs.",
                        "route": "out_of_scope"}, outputs)
    metrics, _ = await score(unanswerable, declined, outputs)
    assert metrics == {"abstention_accuracy": 1.0}  # answers of an unanswerable item are not scored
    answerable = Item("a", {"question": "q"}, Gold(answers=("x",), answerable=True))
    dont_know = observe({"answer": "I don't know.", "route": "knowledge"}, outputs)
    metrics, _ = await score(answerable, dont_know, outputs)
    assert metrics["abstention_accuracy"] == 0.0 and metrics["exact_match"] == 0.0


async def test_gold_file_ids_match_the_end_of_a_chunks_source_path() -> None:
    outputs = Outputs()
    observed = observe({"answer": "a", "chunks": [
        Chunk(id="1", text="t", source="/home/me/project/docs/loops.md"),
        Chunk(id="2", text="t", source="/home/me/project/docs/search.md")]}, outputs)
    item = Item("f", {"question": "q"}, Gold(doc_ids=("docs/search.md",)))
    metrics, _ = await score(item, observed, outputs, recall_ks=(1, 2))
    assert metrics["recall@1"] == 0.0 and metrics["recall@2"] == 1.0


async def test_hallucination_detection_compares_the_faithfulness_verdict_with_the_label() -> None:
    outputs = Outputs(chunks=None)
    state = {"answer": "Mumbai.", "checks": {"faithfulness": check("faithfulness", 0.0, False)}}
    hallucinated = Item("h", {"question": "q"}, Gold(faithful=False))
    right = Item("r", {"question": "q"}, Gold(faithful=True))
    assert (await score(hallucinated, observe(state, outputs), outputs))[0][
        "hallucination_detection"] == 1.0
    assert (await score(right, observe(state, outputs), outputs))[0][
        "hallucination_detection"] == 0.0


def test_summary_averages_over_scored_items_and_reports_latency_cost_and_errors() -> None:
    records = [
        {"id": "a", "status": "ok", "metrics": {"token_f1": 1.0, "abstention_accuracy": 1.0},
         "gold": {"answerable": True}, "abstained": False, "latency_s": 1.0, "tokens": 100,
         "cost": 0.01},
        {"id": "b", "status": "ok", "metrics": {"token_f1": 0.5, "abstention_accuracy": 0.0},
         "gold": {"answerable": False}, "abstained": False, "latency_s": 3.0, "tokens": 300,
         "cost": 0.03},
        {"id": "c", "status": "ok", "metrics": {"abstention_accuracy": 1.0},
         "gold": {"answerable": False}, "abstained": True, "latency_s": 2.0, "tokens": 200,
         "cost": None},
        {"id": "d", "status": "error", "error": "boom", "latency_s": 9.0},
    ]
    summary = summarize(records, planned=5, manifest={"workflow": "w", "format": "jsonl"})
    got = summary["metrics"]
    assert got["token_f1"] == 0.75 and summary["counts"]["token_f1"] == 2
    assert got["abstention_accuracy"] == pytest.approx(0.6667, abs=1e-4)
    assert got["unanswerable_abstained"] == 0.5 and got["answerable_abstained"] == 0.0
    assert got["latency_p50_s"] == 2.0 and got["latency_p95_s"] == pytest.approx(2.9)
    assert got["tokens_per_item"] == 200.0
    assert got["cost_total"] == pytest.approx(0.04) and got["cost_per_item"] == pytest.approx(0.04 / 3, abs=1e-6)
    assert got["error_rate"] == 0.25
    assert summary["items"] == {"planned": 5, "finished": 4, "ok": 3, "errors": 1}
    assert direction("latency_p95_s") == "lower" and direction("recall@5") == "higher"
    assert direction("answerable_abstained") == "lower"


async def test_an_abstention_counts_right_on_an_unanswerable_item_and_wrong_on_an_answerable_one() -> None:
    outputs = Outputs(route="route", out_of_scope="out_of_scope")
    judged = CheckResult(name="faithfulness", kind="faithfulness", score=None, passed=True,
                         threshold=0.8, reason="r", details={"abstained": True,
                                                             "abstention": "right"}).model_dump()
    state = {"answer": "I don't know: the documents do not say.", "answer_status": "abstained",
             "route": "knowledge", "checks": {"faithfulness": judged}}
    unanswerable = Item("u", {"question": "q"}, Gold(answers=("x",), answerable=False))
    answerable = Item("a", {"question": "q"}, Gold(answers=("x",), answerable=True))
    right, _ = await score(unanswerable, observe(state, outputs), outputs)
    wrong, _ = await score(answerable, observe(state, outputs), outputs)
    assert right == {"abstention_accuracy": 1.0, "abstention_judgement": 1.0}
    assert wrong["abstention_accuracy"] == 0.0 and wrong["abstention_judgement"] == 0.0
    assert wrong["token_f1"] == 0.0  # an answerable item's abstention scores no answer either
