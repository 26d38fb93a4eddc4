"""The fake embedder: pinned and word vectors, recorded calls, and the router and retrievers
serving it."""

from __future__ import annotations

import numpy as np
import pytest

from agentflow.checks.consistency import self_consistency
from agentflow.checks.judge import Judge
from agentflow.checks.ragas import response_relevancy
from agentflow.errors import ModelError
from agentflow.models.embeddings import HashEmbedder
from agentflow.models.types import ProviderError
from agentflow.testing import FakeChatModel, FakeEmbedder, FakeRouter, InMemoryRetriever


async def test_pinned_texts_get_their_unit_vectors_and_others_word_vectors() -> None:
    embed = FakeEmbedder({"north": [0, 3], "east": [4, 0]})
    vectors = await embed.embed(["north", "east", "anything else"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 2)
    assert vectors[0].tolist() == [0.0, 1.0] and vectors[1].tolist() == [1.0, 0.0]
    assert np.allclose(vectors[2], HashEmbedder(2).encode(["anything else"])[0])
    assert np.allclose(embed.vector("north"), vectors[0])
    assert embed.requests == [["north", "east", "anything else"]] and embed.calls == 1


def test_texts_that_share_words_are_closer_than_texts_that_do_not() -> None:
    embed = FakeEmbedder(dim=256)
    a, b, c = embed.encode(["the capital of France", "France and its capital", "zebra stripes"])
    assert float(a @ b) > float(a @ c)
    assert embed.texts == ["the capital of France", "France and its capital", "zebra stripes"]


def test_pinned_vectors_must_agree_in_size_and_be_non_zero() -> None:
    with pytest.raises(ValueError, match="'b' has 3 dimensions, the others 2"):
        FakeEmbedder({"a": [1, 0], "b": [1, 0, 0]})
    with pytest.raises(ValueError, match="must be finite and non-zero"):
        FakeEmbedder({"a": [0, 0]})
    with pytest.raises(AssertionError, match="never called"):
        _ = FakeEmbedder().last_request


async def test_the_router_serves_an_embedding_alias_and_retries_its_failures() -> None:
    busy = ProviderError("busy", reason="rate_limit", model="fake-embed")
    embed = FakeEmbedder({"hello": [1, 0, 0]}, failures=[busy])
    router = FakeRouter({"small": "hi", "embed": embed})
    assert sorted(router.aliases) == ["embed", "small"]
    vectors = await router.embed("embed", ["hello"])
    assert np.allclose(vectors, [[1, 0, 0]])
    assert embed.requests == [["hello"], ["hello"]]  # the failed call, then its retry
    assert router.model("embed") is embed
    denied = FakeEmbedder(failures=[ProviderError("no", reason="auth", model="fake-embed")])
    with pytest.raises(ModelError, match="embedding with alias 'vectors' failed"):
        await FakeRouter({}, embedders={"vectors": denied}).embed("vectors", ["x"])


async def test_self_consistency_on_long_answers_embeds_through_the_alias() -> None:
    long = "The capital of France is Paris, a city on the Seine with many museums"
    same = "Paris is the capital of France, it lies on the Seine and has many museums"
    other = "Berlin is the capital of Germany and lies on the Spree near the Baltic sea"
    embed = FakeEmbedder({long: [1, 0.1], same: [1, 0.12], other: [0, 1]})
    judge = Judge(FakeRouter({"judge": FakeChatModel([]), "embed": embed}), "judge")
    result = await self_consistency([long, same, other], judge)
    assert result.score == pytest.approx(2 / 3, abs=1e-4)  # two of three samples agree
    assert embed.requests == [[long, same, other]]


async def test_relevancy_compares_the_judges_questions_with_the_question_through_the_alias(
) -> None:
    question = "What is the capital of France?"
    asked_back = ["Which city is the capital of France?", "Where does the French government sit?"]
    judge_model = FakeChatModel([{"questions": asked_back, "noncommittal": False}])
    embed = FakeEmbedder({question: [1, 0], asked_back[0]: [1, 0], asked_back[1]: [0.6, 0.8]})
    judge = Judge(FakeRouter({"judge": judge_model, "embed": embed}), "judge")
    result = await response_relevancy(question, "Paris is the capital of France.", judge, k=2,
                                      threshold=0.7)
    assert result.score == pytest.approx((1.0 + 0.6) / 2, abs=1e-4) and result.passed
    assert embed.requests == [[question, *asked_back]]


async def test_a_retriever_searches_with_the_fake_embedder() -> None:
    embed = FakeEmbedder(dim=128)
    retriever = InMemoryRetriever.from_texts(
        {"paris.md": "Paris is the capital of France.", "zebra.md": "Zebras have stripes."},
        embedder=embed)
    (hits,) = await retriever.search_many(["capital of France"], top_k=1)
    assert [c.source for c in hits] == ["paris.md"]
    assert "capital of France" in embed.texts
