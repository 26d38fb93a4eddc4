"""Abstentions judged: right when the documents lack the answer, wrong when they hold it."""

from __future__ import annotations

import json

from agentflow.checks import Judge, combine, run_check
from agentflow.checks.judge import ANSWERABLE_PROMPT, ANSWERABLE_THRESHOLD
from agentflow.documents import Chunk
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel
from tests.checks.support import router

DOCS = [Chunk(id="p", text="Paris is the capital of France. It lies on the Seine.")]
ABSTAIN = "I don't know: the documents do not contain enough information to answer this."


def offline() -> Judge:
    return Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))


async def test_an_offline_right_abstention_passes_and_makes_the_verdict_abstained() -> None:
    result = await run_check("faithfulness", judge=offline(), answer=ABSTAIN, documents=DOCS,
                             question="Who won the 1998 football world cup?", abstention="support")
    assert result.passed and result.score is None
    assert result.details["abstained"] and result.details["abstention"] == "right"
    assert result.details["support"]["score"] < ANSWERABLE_THRESHOLD
    verdict = combine({"faithfulness": result})
    assert verdict.passed and verdict.abstained


async def test_an_offline_wrong_abstention_fails_with_what_would_fix_it() -> None:
    result = await run_check("citations", judge=offline(), answer=ABSTAIN, documents=DOCS,
                             question="What is the capital of France?", abstention="support")
    assert not result.passed and result.details["abstention"] == "wrong"
    assert "the documents support an answer" in result.reason and "[DOC n]" in result.reason
    verdict = combine({"citations": result})
    assert not verdict.passed and not verdict.abstained


async def test_without_documents_an_abstention_is_right() -> None:
    result = await run_check("relevancy", judge=offline(), answer=ABSTAIN, documents=[],
                             question="What is the capital of France?", abstention="support")
    assert result.passed and "no documents were retrieved" in result.reason


async def test_an_llm_judge_is_asked_whether_the_passages_answer_the_question() -> None:
    def respond(request: ChatRequest) -> str:
        assert request.messages[0]["content"] == ANSWERABLE_PROMPT
        assert "Question: What is the capital of France?" in request.messages[-1]["content"]
        return json.dumps({"reason": "passage 1 names the capital", "verdict": True})

    judge = Judge(router(FakeChatModel(respond, name="fake-judge")))
    result = await run_check("faithfulness", judge=judge, answer=ABSTAIN, documents=DOCS,
                             question="What is the capital of France?", abstention="support")
    assert not result.passed and "passage 1 names the capital" in result.reason


async def test_the_old_policies_still_pass_or_fail_an_abstention_unjudged() -> None:
    failed = await run_check("faithfulness", judge=offline(), answer=ABSTAIN, documents=DOCS)
    passed = await run_check("faithfulness", judge=offline(), answer=ABSTAIN, documents=DOCS,
                             abstention="pass")
    assert not failed.passed and passed.passed and not combine([passed]).abstained


async def test_a_judge_whose_model_leaves_judging_offline_uses_the_offline_support_judge() -> None:
    from agentflow.checks import Judge
    from agentflow.checks.ragas import faithfulness
    from agentflow.models import ModelEntry, ModelRouter
    from agentflow.models.backends import Backends
    from agentflow.models.embeddings import HashEmbedder

    entry = ModelEntry(model="hosted_vllm/tiny", api_base="http://127.0.0.1:9/v1",
                       offline_tasks=("judge", "answerable"))  # nothing listens there: never called
    router = ModelRouter({"judge": [entry], "embed": [ModelEntry(model="offline/minilm")]},
                         backends=Backends(encoder=HashEmbedder.lexical()))
    judge = Judge(router, "judge")
    assert judge.offline and judge.label.startswith("offline support judge")
    doc = Chunk(id="k", text="Wilhelm Conrad Röntgen received the first Nobel Prize in Physics in 1901.")
    right = await faithfulness("Röntgen received the first Nobel Prize in Physics [DOC 1].", [doc], judge)
    made_up = await faithfulness("Henry Moseley won it for the structure of DNA [DOC 1].", [doc], judge)
    assert right.error is None and made_up.error is None
    assert right.passed and not made_up.passed
    support = await judge.answerable("Who received the first Nobel Prize in Physics?", [doc])
    assert support.answerable
