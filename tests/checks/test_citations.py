"""The citations check: invented ids, per-sentence support, ALCE recall and precision, resolution."""

from __future__ import annotations

import pytest

from agentflow.checks import Judge, check_citations, resolve_citations
from agentflow.documents import Chunk
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from tests.checks.support import fact_judge, router

DOCS = [
    Chunk(id="c1", text="Paris is the capital of France. It has many museums.", source="geo/paris.md"),
    Chunk(id="c2", text="France is in Europe.", source="geo/france.md"),
    Chunk(id="c3", text="Bananas are yellow.", source="food/bananas.md"),
]
FACTS = {
    "capital": ["capital of France"],
    "Europe": ["capital of France", "France is in Europe"],  # needs both passages together
}
ANSWER = ("Paris is the capital of France [DOC 1][DOC 3]. Paris is in Europe [DOC 1, 2]. "
          "The sky is green [DOC 2]. Paris has a river.")


async def test_alce_recall_and_precision_with_an_llm_judge() -> None:
    judge = Judge(router(fact_judge(FACTS)))
    result = await check_citations(ANSWER, DOCS, judge, threshold=0.5)
    details = result.details
    # recall: sentences 1 and 2 are entailed by their citations; 3 is not; 4 cites nothing
    assert details["recall"] == 0.5
    # precision: [DOC 3] is irrelevant for sentence 1, both citations of sentence 2 are needed,
    # sentence 3's citation supports nothing: 3 precise citations of 5
    assert details["precision"] == 0.6
    assert result.score == pytest.approx(2 * 0.5 * 0.6 / 1.1, abs=1e-4)
    assert result.passed and details["invalid_ids"] == []
    by_index = {s["index"]: s for s in details["sentences"]}
    assert by_index[0]["unnecessary"] == [3]
    assert by_index[1]["supported"] and by_index[1]["unnecessary"] == []
    assert not by_index[2]["supported"]
    assert "sentence 4 has no citation: 'Paris has a river.'" in result.reason
    assert "sentence 3 is not supported by [DOC 2]" in result.reason
    assert "sentence 1 does not need [DOC 3]" in result.reason


async def test_an_id_that_was_not_retrieved_fails_the_check_whatever_the_score() -> None:
    judge = Judge(router(fact_judge(FACTS)))
    result = await check_citations("Paris is the capital of France [DOC 1, 9].", DOCS, judge,
                                   threshold=0.0)
    assert not result.passed and result.outcome == "fail"
    assert result.details["invalid_ids"] == [9]
    assert "cites [DOC 9], which was not retrieved (retrieved: DOC 1-3)" in result.reason
    assert result.details["recall"] == 0.0  # ALCE: a sentence with an invalid id is not entailed


async def test_every_citation_resolves_to_its_document_source_and_supporting_sentence() -> None:
    resolved = resolve_citations("Paris has museums [DOC 1]. Bananas are yellow [DOC 3, 5].", DOCS)
    assert resolved == [
        {"doc": 1, "source": "geo/paris.md", "chunk_id": "c1", "quote": "It has many museums.",
         "statement": "Paris has museums.", "valid": True},
        {"doc": 3, "source": "food/bananas.md", "chunk_id": "c3", "quote": "Bananas are yellow.",
         "statement": "Bananas are yellow.", "valid": True},
        {"doc": 5, "source": "", "chunk_id": None, "quote": "", "statement": "Bananas are yellow.",
         "valid": False},
    ]


async def test_the_offline_judge_accepts_quoted_sentences_and_rejects_invented_ones() -> None:
    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    assert judge.offline and "not an LLM" in judge.label
    good = await check_citations("Paris is the capital of France [DOC 1]. France is in Europe. [DOC 2]",
                                 DOCS, judge)
    assert good.passed and good.score == 1.0
    assert [c["quote"] for c in good.details["citations"]] == [
        "Paris is the capital of France.", "France is in Europe."]
    bad = await check_citations("Paris is the capital of France [DOC 1]. "
                                "Berlin hosts the Olympic rowing finals every winter [DOC 2].", DOCS, judge)
    assert not bad.passed and bad.details["recall"] == 0.5
    assert "sentence 2 is not supported by [DOC 2]" in bad.reason


async def test_an_abstaining_answer_has_no_score_and_follows_the_abstention_policy() -> None:
    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    text = "The documents do not contain this information."
    failed = await check_citations(text, DOCS, judge)
    assert failed.score is None and not failed.passed and failed.details["abstained"]
    passed = await check_citations(text, DOCS, judge, abstention="pass")
    assert passed.passed and passed.score is None


async def test_an_unparseable_judge_reply_is_an_error_not_a_zero() -> None:
    from agentflow.testing.models import FakeChatModel

    broken = FakeChatModel(["no verdict here", "still {not json"], name="broken-judge")
    result = await check_citations("Paris is the capital of France [DOC 1].", DOCS,
                                   Judge(router(broken)))
    assert broken.calls == 2  # the reply, then one repair request
    assert result.error is not None and "does not match the schema" in result.error
    assert result.score is None and not result.passed and result.outcome == "error"
