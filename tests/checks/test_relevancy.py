"""Response relevancy: RAGAS with an LLM judge, and the labelled offline variant."""

from __future__ import annotations

import pytest

from agentflow.checks import Judge, response_relevancy
from agentflow.checks.ragas import RELEVANCY_OFFLINE_THRESHOLD
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.testing.models import FakeChatModel
from tests.checks.support import TableEmbedder, fact_judge, router

QUESTION = "What is Qdrant written in?"


async def test_ragas_relevancy_is_the_mean_similarity_of_generated_questions() -> None:
    embed = TableEmbedder({QUESTION: [1, 0, 0, 0], "Which language is Qdrant written in?": [1, 0, 0, 0],
                           "What is Qdrant?": [0.6, 0.8, 0, 0]})
    model = fact_judge({}, questions=["Which language is Qdrant written in?", "What is Qdrant?"])
    judge = Judge(router(model, embed))
    result = await response_relevancy(QUESTION, "Qdrant is written in Rust [DOC 1].", judge, k=2)
    assert result.score == pytest.approx((1.0 + 0.6) / 2)
    assert result.details["method"] == "ragas-generated-questions"
    assert result.threshold == 0.7 and result.passed
    assert [q["similarity"] for q in result.details["questions"]] == [1.0, 0.6]
    assert "Write 2 different questions" in model.requests[0].messages[0]["content"]
    assert embed.calls == [[QUESTION, "Which language is Qdrant written in?", "What is Qdrant?"]]


async def test_a_noncommittal_answer_scores_zero_as_in_ragas() -> None:
    embed = TableEmbedder({})
    judge = Judge(router(fact_judge({}, questions=["What is Qdrant?"], noncommittal=True), embed))
    result = await response_relevancy(QUESTION, "It might be one of several languages.", judge)
    assert result.score == 0.0 and not result.passed and "noncommittal" in result.reason


async def test_the_offline_variant_compares_answer_sentences_with_the_question_and_says_so() -> None:
    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    on_topic = await response_relevancy(QUESTION, "Qdrant is written in Rust [DOC 1].", judge)
    padded = await response_relevancy(
        QUESTION, "Qdrant is written in Rust [DOC 1]. Bananas ripen faster next to apples [DOC 2].", judge)
    assert on_topic.details["method"] == "offline-sentence-similarity"
    assert on_topic.threshold == RELEVANCY_OFFLINE_THRESHOLD and on_topic.passed
    assert padded.score is not None and on_topic.score is not None and padded.score < on_topic.score
    assert padded.details["sentences"][1] == {"text": "Bananas ripen faster next to apples.",
                                              "similarity": pytest.approx(0.0, abs=0.2)}


async def test_an_offline_judge_cannot_generate_questions() -> None:
    from agentflow.errors import ModelError

    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    with pytest.raises(ModelError, match="cannot write questions"):
        await judge.questions("Qdrant is written in Rust.", 3)


async def test_an_unparseable_question_list_is_an_error() -> None:
    model = FakeChatModel(["questions: what?", '{"questions": []}'])
    result = await response_relevancy(QUESTION, "Qdrant is written in Rust.",
                                      Judge(router(model, TableEmbedder({}))))
    assert result.outcome == "error" and result.score is None and model.calls == 2


async def test_an_on_topic_answer_that_does_not_address_the_question_fails_offline() -> None:
    from agentflow.models.embeddings import MiniLMEmbedder

    judge = Judge(build_router(None, env={}, encoder=MiniLMEmbedder()))
    question = "How many kilometres does a chain last?"
    miss = await response_relevancy(
        question, "Clean the chain every 300 kilometres with a degreaser and a brush [DOC 1].", judge)
    hit = await response_relevancy(
        question, "A chain wears out after about 3000 kilometres of riding [DOC 1].", judge)
    assert not miss.passed and "asks for a number and the answer gives none" in miss.reason
    assert miss.details["answer_type"] == {"wanted": "number", "found": False}
    assert hit.passed and hit.details["answer_type"]["found"]
