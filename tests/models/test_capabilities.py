"""Backends declare what they can do (``Capabilities``), and shared code follows the declaration:
the router's cache key, cost and passage preparation, the judge's way of judging, log-probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentflow.checks.judge import Judge
from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models import ModelEntry, ModelRouter, Price, PromptInputs, Sampling
from agentflow.models.backends import Backends, capabilities
from agentflow.models.cache import ResponseCache
from agentflow.models.embeddings import HashEmbedder
from agentflow.models.litellm_adapter import LiteLLMChatModel
from agentflow.models.logprobs import RouterScorer
from agentflow.models.managed_server import ManagedServerChatModel
from agentflow.models.offline import OfflineModel
from agentflow.models.profiles import LOCAL_MODEL
from agentflow.models.types import (
    LANGUAGE_MODEL,
    Capabilities,
    JudgeVerdict,
    capabilities_of,
)
from agentflow.testing.models import FakeChatModel, FakeRouter

from .support import Recorder

HELLO = [{"role": "user", "content": "hello"}]
QUOTER = Capabilities(structured_fields=True, language_model=False, sampling=False,
                      deterministic=True, free=True)


class FieldReader(FakeChatModel):
    """A scripted backend that declares it answers from structured fields, as the offline one does."""

    capabilities = QUOTER


class Preparer(FakeChatModel):
    """A scripted backend that declares it prepares passages, and counts what it was given."""

    capabilities = Capabilities(prepares_passages=True)

    def __init__(self) -> None:
        super().__init__(["unused"])
        self.prepared: list[str] = []

    def prepare(self, passages: Sequence[str], *, progress: bool = False) -> int:
        self.prepared.extend(passages)
        return len(passages)


def test_each_backend_declares_its_capabilities() -> None:
    assert OfflineModel.capabilities == Capabilities(
        structured_fields=True, language_model=False, sampling=False, deterministic=True, free=True,
        prepares_passages=True, in_process=True)
    assert LiteLLMChatModel.capabilities == ManagedServerChatModel.capabilities == LANGUAGE_MODEL
    assert LANGUAGE_MODEL.language_model and LANGUAGE_MODEL.sampling and not LANGUAGE_MODEL.free
    # from the entry alone, nothing built: the kind and ``serve`` pick the backend class
    assert capabilities(ModelEntry(model="offline")).structured_fields
    assert capabilities(ModelEntry(model="offline/minilm")).free
    assert capabilities(ModelEntry(model="openai/gpt-4.1-mini")) == LANGUAGE_MODEL
    assert capabilities(LOCAL_MODEL) == LANGUAGE_MODEL


def test_a_backend_that_declares_nothing_is_a_language_model() -> None:
    assert capabilities_of(FakeChatModel(["x"])) == LANGUAGE_MODEL

    class Older(FakeChatModel):  # a backend written before capabilities, reading the inputs
        reads_inputs = True

    assert capabilities_of(Older(["x"])) == Capabilities(structured_fields=True)
    assert capabilities_of(FieldReader(["x"])) is QUOTER


def test_the_router_says_what_answers_an_alias_and_a_task() -> None:
    router = ModelRouter({"small": [LOCAL_MODEL.model_copy(update={"api_base": "http://127.0.0.1:9/v1"})]},
                         backends=Backends(encoder=HashEmbedder.lexical()))
    assert router.capabilities("small") == LANGUAGE_MODEL
    # the local model leaves judging to the offline backend: that is what judges
    assert router.capabilities("small", task="judge").structured_fields
    assert router.capabilities("small", task="generate") == LANGUAGE_MODEL
    assert FakeRouter({"judge": FieldReader(["x"])}).capabilities("judge") is QUOTER


async def test_a_judge_whose_backend_reads_structured_fields_is_judged_the_structured_way() -> None:
    verdict = JudgeVerdict(score=0.9, supported=True, reason="quoted", sentence_scores=[0.9])
    reader = FieldReader(lambda request: verdict.model_dump())
    judge = Judge(FakeRouter({"judge": reader}))
    assert judge.structured and judge.offline and "not an LLM" in judge.label
    # claims are the answer's sentences: no model call to extract them
    claims = await judge.claims("Qdrant is written in Rust [DOC 1]. It is fast.")
    assert claims == ["Qdrant is written in Rust.", "It is fast."] and reader.calls == 0
    docs = [Chunk(id="a", text="Qdrant is written in Rust.")]
    verdicts = await judge.verify(claims, docs)
    # one structured request per claim, the claim and documents as fields
    assert reader.calls == 2 and [v.supported for v in verdicts] == [True, True]
    assert sorted(r.inputs.claim for r in reader.requests) == sorted(claims)
    assert all(r.inputs.task == "judge" and r.inputs.documents == tuple(docs) for r in reader.requests)
    with pytest.raises(ModelError, match="cannot write questions"):
        await judge.questions("Qdrant is written in Rust.", 3)


async def test_a_judge_on_a_language_model_gets_the_llm_prompts() -> None:
    llm = FakeChatModel([{"statements": ["Qdrant is written in Rust."]}])
    judge = Judge(FakeRouter({"judge": llm}))
    assert not judge.structured and judge.label == "LLM judge (judge)"
    assert await judge.claims("Qdrant is written in Rust [DOC 1].") == ["Qdrant is written in Rust."]
    assert "standalone factual statements" in llm.last_request.messages[0]["content"]


class Serving(Backends):
    """Backends that serve every entry with one given model (so an entry's price applies to it)."""

    def __init__(self, model: FakeChatModel) -> None:
        super().__init__()
        self.model = model

    def chat(self, entry: ModelEntry) -> FakeChatModel:  # type: ignore[override]
        return self.model


async def test_a_free_backend_costs_nothing_whatever_its_price() -> None:
    priced = [ModelEntry(model="hosted_vllm/m", api_base="http://127.0.0.1:9/v1",
                         price=Price(input_per_million=1e6))]
    tracer = Recorder()
    router = ModelRouter({"large": priced}, backends=Serving(FieldReader(["an answer"])))
    reply = await router.complete("large", HELLO, inputs=PromptInputs(query="q"), tracer=tracer)
    assert reply.cost == 0.0 and tracer.last["data"]["cost_source"] == "offline"
    paid = ModelRouter({"large": priced}, backends=Serving(FakeChatModel(["an answer"])))
    reply = await paid.complete("large", HELLO, tracer=tracer)
    assert reply.cost is not None and reply.cost > 0 and tracer.last["data"]["cost_source"] == "price"


async def test_the_cache_keys_structured_fields_only_for_backends_that_read_them() -> None:
    for model, entries in ((FieldReader(["a", "b"]), 2), (FakeChatModel(["a", "b"]), 1)):
        router = FakeRouter({"m": model}, cache=ResponseCache(":memory:", "write"))
        for query in ("first question", "second question"):
            await router.complete("m", HELLO, inputs=PromptInputs(query=query))
        assert router.cache is not None and len(router.cache) == entries


def test_passages_are_prepared_by_the_backends_that_declare_it() -> None:
    preparer, plain = Preparer(), FakeChatModel(["x"])
    router = FakeRouter({"large": preparer, "small": plain})
    assert router.prepares_passages()
    assert router.prepare(["Qdrant is written in Rust."]) == 1
    assert preparer.prepared == ["Qdrant is written in Rust."]
    assert not FakeRouter({"small": plain}).prepares_passages()
    assert FakeRouter({"small": plain}).prepare(["text"]) == 0
    # the offline backend declares it, from its entry, before any chain is built
    offline = ModelRouter({"large": [ModelEntry(model="offline")]}, backends=Backends(encoder=HashEmbedder.lexical()))
    assert offline.prepares_passages()


def test_a_backend_that_does_not_sample_ignores_sampling_and_drops_nothing() -> None:
    plan = OfflineModel(HashEmbedder.lexical()).sampling_plan(Sampling(temperature=0.7, top_k=5, n=3))
    assert plan.ignored == ("temperature", "top_k") and plan.dropped == () and plan.params == {}


def test_prompt_logprobs_need_a_language_model() -> None:
    with pytest.raises(ModelError, match="offline backend, which has no log-probabilities"):
        RouterScorer(ModelRouter({"large": [ModelEntry(model="offline")]},
                                 backends=Backends(encoder=HashEmbedder.lexical())), "large")
    with pytest.raises(ModelError, match="fake backend, which has no log-probabilities"):
        RouterScorer(FakeRouter({"large": FieldReader(["x"], name="fake")}), "large")


def test_a_free_form_prompt_gives_its_query_only_beside_documents() -> None:
    docs = [Chunk(id="a", text="Qdrant is written in Rust.")]
    inputs = PromptInputs.of_prompt({"question": "What is Qdrant written in?", "chunks": docs, "n": 3},
                                    node="ask")
    assert inputs.task == "prompt" and inputs.query == "What is Qdrant written in?"
    assert inputs.documents == tuple(docs) and inputs.variables == {"question": "What is Qdrant written in?",
                                                                    "n": 3}
    alone = PromptInputs.of_prompt({"query": "What is Qdrant written in?"}, node="ask")
    assert alone.query == "" and alone.documents == ()


def test_a_profiles_address_key_and_price_pass_by_a_backend_that_runs_in_the_process() -> None:
    from agentflow.models import ModelsConfig

    config = ModelsConfig.model_validate({"profiles": {"mine": {
        "api_base": "http://gpu-box:8000/v1", "api_key_env": "GPU_KEY", "price": {"per_gpu_second": 1.0},
        "aliases": {"small": "offline", "large": "hosted_vllm/qwen"}}}})
    aliases = config.aliases_of("mine", env={})
    assert aliases["small"] == [ModelEntry(model="offline")]
    [large] = aliases["large"]
    assert large.api_base == "http://gpu-box:8000/v1" and large.api_key_env == "GPU_KEY" and large.price
