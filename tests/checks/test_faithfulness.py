"""Faithfulness (RAGAS): claims from the answer, each judged against the context."""

from __future__ import annotations

import json

from agentflow.checks import Judge, faithfulness
from agentflow.checks.judge import VERIFY_PROMPT
from agentflow.documents import Chunk
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel
from tests.checks.support import fact_judge, router

DOCS = [Chunk(id="k", text="Marie Curie won the Nobel Prize in Physics in 1903. She was born in Warsaw.")]
ANSWER = "Curie, born in Warsaw, won the 1903 physics Nobel and later moved to the Moon [DOC 1]."


async def test_the_score_is_the_share_of_extracted_claims_the_context_supports() -> None:
    claims = ["Marie Curie was born in Warsaw.", "Marie Curie won the Nobel Prize in Physics in 1903.",
              "Marie Curie moved to the Moon."]
    model = fact_judge({"Warsaw": ["born in Warsaw"], "Nobel": ["Physics in 1903"]}, claims=claims)
    result = await faithfulness(ANSWER, DOCS, Judge(router(model)), question="Who was Curie?")
    assert result.score == round(2 / 3, 4) and not result.passed
    assert [c["supported"] for c in result.details["claims"]] == [True, True, False]
    assert result.details["claims_from"] == "LLM-extracted statements"
    assert "unsupported: 'Marie Curie moved to the Moon.'" in result.reason
    assert model.calls == 2  # one extraction, one verification of all claims together
    assert "Question: Who was Curie?" in model.requests[0].messages[1]["content"]


async def test_a_verdict_list_of_the_wrong_length_is_asked_again_then_reported_as_an_error() -> None:
    def respond(request: ChatRequest) -> str:
        if request.messages[0]["content"] == VERIFY_PROMPT:
            return json.dumps({"verdicts": [{"verdict": True}]})  # one verdict for two claims
        return json.dumps({"statements": ["Curie was born in Warsaw.", "Curie won a Nobel."]})

    model = FakeChatModel(respond)
    result = await faithfulness(ANSWER, DOCS, Judge(router(model)))
    assert model.calls == 3  # extraction, verification, one more verification
    assert "exactly one verdict per statement" in model.requests[2].messages[-1]["content"]
    assert result.error is not None and "1 verdicts for 2 statements" in result.error
    assert result.score is None and not result.passed


async def test_a_verdict_that_never_parses_is_an_error_after_the_repair_request() -> None:
    model = FakeChatModel([json.dumps({"statements": ["Curie was born in Warsaw."]}),
                           "yes", '{"verdicts": "all good"}'])
    result = await faithfulness(ANSWER, DOCS, Judge(router(model)))
    assert model.calls == 3 and result.outcome == "error" and result.score is None


async def test_offline_claims_are_the_answer_sentences() -> None:
    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    answer = ("Marie Curie won the Nobel Prize in Physics in 1903 [DOC 1]. "
              "She was born in Warsaw [DOC 1]. She invented the telephone in Paris.")
    result = await faithfulness(answer, DOCS, judge)
    assert result.details["claims_from"] == "sentences (offline)"
    assert [c["supported"] for c in result.details["claims"]] == [True, True, False]
    assert result.score == round(2 / 3, 4) and result.threshold == 0.8 and not result.passed
    strict = await faithfulness(answer, DOCS, Judge(judge.models, claim_threshold=0.99))
    assert strict.score is not None and strict.score <= result.score


async def test_offline_a_bare_yes_is_judged_as_the_question_it_answers() -> None:
    judge = Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))
    question = "Was Marie Curie born in Warsaw?"
    assert await judge.claims("Yes.", question) == [question]
    assert await judge.claims("Yes.") == ["Yes."]  # without the question: the sentence itself
    result = await faithfulness("yes", DOCS, judge, question=question)
    assert result.passed and result.details["claims"][0]["claim"] == question
