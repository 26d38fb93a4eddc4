"""Self-consistency: agreement of sampled answers, majority or medoid, abstention, sampling."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentflow.checks import Judge, consensus, sample_answers, self_consistency
from agentflow.checks.consistency import long_consensus
from agentflow.models import Sampling
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel
from tests.checks.support import TableEmbedder, router


async def test_short_answers_agree_by_normal_form_and_the_majority_wins() -> None:
    samples = ["Paris [DOC 1].", "paris", "The Paris!", "Lyon", "Marseille"]
    result = await self_consistency(samples, threshold=0.5)
    assert result.score == 0.6 and result.passed
    assert result.details["mode"] == "short" and result.details["answer"] == "Paris [DOC 1]."
    assert result.details["clusters"][0] == [0, 1, 2]
    assert result.details["abstain"] is False


async def test_low_agreement_fails_and_says_to_abstain() -> None:
    result = await self_consistency(["Paris", "Lyon", "Nice", "Paris"], threshold=0.6)
    assert result.score == 0.5 and not result.passed and result.details["abstain"]
    assert "2 of 4 samples agree" in result.reason and "split into 3 different answers" in result.reason


async def test_the_checked_answer_is_compared_with_the_majority() -> None:
    result = await self_consistency(["Paris", "Paris", "Paris"], answer="Lyon", threshold=0.5)
    assert result.details["answer_agrees"] is False and result.score == 0.75
    assert "the checked answer is not the majority answer" in result.reason


LONG = [
    "Qdrant is a vector database written in Rust that supports hybrid search and filtering.",
    "Written in Rust, Qdrant is a vector database with filtering and hybrid search support.",
    "Qdrant, a Rust vector database, offers hybrid search as well as payload filtering options.",
    "Qdrant is a relational database written in Java that stores tables and runs SQL queries.",
]


async def test_long_answers_cluster_by_embedding_and_the_medoid_is_chosen() -> None:
    embed = TableEmbedder({LONG[0]: [1, 0.1, 0, 0], LONG[1]: [1, 0.05, 0.05, 0],
                           LONG[2]: [1, 0, 0.1, 0], LONG[3]: [0, 0, 0, 1]})
    judge = Judge(router(FakeChatModel([]), embed))
    result = await self_consistency(LONG, judge, threshold=0.7)
    assert result.details["mode"] == "long"
    assert result.details["clusters"] == [[0, 1, 2], [3]]
    assert result.details["chosen"] == 1  # closest, on average, to the others of its cluster
    assert result.score == 0.75 and result.passed


def test_average_link_keeps_a_chain_of_loose_neighbours_apart() -> None:
    # a-b and b-c are similar, a-c is not: average link does not chain them into one cluster
    angles = np.radians([0, 25, 50])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    found = long_consensus(vectors, similarity=0.85)
    assert len(found.clusters) == 2 and sorted(map(len, found.clusters)) == [1, 2]


async def test_long_answers_need_a_judge_for_embeddings() -> None:
    with pytest.raises(ValueError, match="pass a judge"):
        await consensus(LONG)


def slow_model(kind: str, delay: float = 0.15) -> FakeChatModel:
    """A scripted model whose calls take ``delay`` s; ``model.peak`` is the most calls that were
    in flight at once."""
    in_flight = 0

    async def respond(request: ChatRequest) -> str:
        nonlocal in_flight
        in_flight += 1
        model.peak = max(model.peak, in_flight)  # type: ignore[attr-defined]
        try:
            await asyncio.sleep(delay)
        finally:
            in_flight -= 1
        return f"answer seed={request.sampling.seed} n={request.sampling.n}"

    model = FakeChatModel(respond, kind=kind, name=f"slow-{kind}")  # type: ignore[arg-type]
    model.peak = 0  # type: ignore[attr-defined]
    return model


async def test_one_request_with_n_where_the_provider_supports_it() -> None:
    model = slow_model("openai-compatible")
    answers, how = await sample_answers(router(model, large=model), "large",
                                        [{"role": "user", "content": "q"}], n=4)
    assert how == "n" and model.calls == 1 and len(answers) == 4
    assert model.last_request.sampling.n == 4 and model.last_request.sampling.temperature == 0.7


async def test_concurrent_requests_with_their_own_seeds_where_n_is_not_supported() -> None:
    model = slow_model("anthropic")
    with pytest.warns(UserWarning, match="does not accept seed"):
        answers, how = await sample_answers(router(model, large=model), "large",
                                            [{"role": "user", "content": "q"}], n=6,
                                            sampling=Sampling(temperature=0.9, seed=10))
    assert how == "concurrent" and model.calls == 6
    assert sorted(r.sampling.seed for r in model.requests) == [10, 11, 12, 13, 14, 15]
    assert all(r.sampling.n is None for r in model.requests)
    assert len(set(answers)) == 6
    assert model.peak == 6  # all six in flight together, not one after another
