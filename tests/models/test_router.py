"""The router's call path over scripted models: aliases, retries, fallbacks, structured output,
accounting and tracing."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from agentflow.errors import ConfigError, ModelError
from agentflow.models import (
    ChatResponse,
    ModelEntry,
    ModelRouter,
    Price,
    ProviderError,
    RetryConfig,
    Sampling,
    SamplingWarning,
    Usage,
)
from agentflow.models.budget import estimate_messages
from agentflow.models.retry import Attempts, with_retries
from agentflow.testing.models import FakeChatModel, FakeRouter

from .support import Recorder

HELLO = [{"role": "user", "content": "hello"}]


def limited(after: float | None = None) -> ProviderError:
    return ProviderError("429", reason="rate_limit", model="fake", retry_after=after)


class Answer(BaseModel):
    answer: str
    confidence: float


async def test_unknown_alias_names_the_known_ones_and_suggests() -> None:
    router = FakeRouter({"small": ["x"], "large": ["y"]})
    with pytest.raises(ConfigError, match=r"Unknown model alias 'smal' at nodes.a.*'large', 'small'.*Did you mean 'small'"):
        router.check_alias("smal", where="nodes.a")
    with pytest.raises(ConfigError, match="Unknown model alias 'judge'"):
        await router.complete("judge", HELLO)


async def test_transient_failures_are_retried_and_counted() -> None:
    fake = FakeChatModel([limited(), ProviderError("boom", reason="server", model="fake"), "ok"])
    router = FakeRouter({"m": fake})
    tracer = Recorder()
    response = await router.complete("m", HELLO, tracer=tracer)
    assert response.text == "ok" and fake.calls == 3
    assert tracer.last["data"]["retries"] == 2
    assert router.usage.total().retries == 2


async def test_non_transient_failures_go_straight_to_the_fallback() -> None:
    primary = FakeChatModel([ProviderError("no", reason="bad_request", model="p")], name="p")
    backup = FakeChatModel(["from backup"], name="b")
    router = FakeRouter({"m": [primary, backup]})
    response = await router.complete("m", HELLO)
    assert (response.text, response.model) == ("from backup", "b")
    assert primary.calls == 1 and backup.calls == 1


async def test_retries_stop_at_the_cap_and_every_failure_is_reported() -> None:
    fake = FakeChatModel([limited()] * 5)
    router = FakeRouter({"m": fake}, retries=RetryConfig(max_attempts=2, initial_wait_s=0, max_wait_s=0))
    with pytest.raises(ModelError, match=r"every model of alias 'm' failed \(1 tried\)"):
        await router.complete("m", HELLO)
    assert fake.calls == 2
    assert router.usage.total().failures == 1


async def test_backoff_is_exponential_with_jitter_under_the_cap_and_retry_after_wins() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    errors = iter([limited(), limited(), limited(after=7.0), limited()])

    async def call() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "done"

    config = RetryConfig(max_attempts=5, initial_wait_s=1.0, max_wait_s=3.0, max_retry_after_s=10)
    assert await with_retries(call, config, Attempts(), sleep=sleep) == "done"
    assert len(waits) == 4 and waits[2] == 7.0
    assert all(0 <= w <= 3.0 for i, w in enumerate(waits) if i != 2)


async def test_a_retry_after_beyond_the_cap_fails_over_instead_of_sleeping() -> None:
    primary = FakeChatModel([limited(after=3600)], name="p")
    router = FakeRouter({"m": [primary, FakeChatModel(["b"], name="b")]})
    assert (await router.complete("m", HELLO)).text == "b"
    assert primary.calls == 1


async def test_each_attempt_has_a_timeout() -> None:
    async def slow(request: object) -> str:
        await asyncio.sleep(5)
        return "late"

    router = FakeRouter({"m": [FakeChatModel(slow, name="slow"), FakeChatModel(["quick"], name="q")]},
                        retries=RetryConfig(max_attempts=1))
    response = await router.complete("m", HELLO, timeout_s=0.05)
    assert response.text == "quick"


async def test_structured_output_with_a_pydantic_model() -> None:
    router = FakeRouter({"m": ['```json\n{"answer": "42", "confidence": 0.9}\n```']})
    response = await router.complete("m", HELLO, schema=Answer)
    assert response.parsed == Answer(answer="42", confidence=0.9)


async def test_invalid_output_gets_one_repair_request_quoting_the_error() -> None:
    fake = FakeChatModel(['{"answer": "42"}', '{"answer": "42", "confidence": 0.5}'])
    tracer = Recorder()
    response = await FakeRouter({"m": fake}).complete("m", HELLO, schema=Answer, tracer=tracer)
    assert response.parsed.confidence == 0.5
    repair = fake.last_request.messages
    assert repair[-2] == {"role": "assistant", "content": '{"answer": "42"}'}
    assert "confidence" in repair[-1]["content"] and "JSON Schema" in repair[-1]["content"]
    assert tracer.last["data"]["repaired"] is True
    first, second = (r.messages for r in fake.requests)
    # both replies were paid for: the usage of the call counts them both
    assert response.usage.prompt_tokens == estimate_messages(first) + estimate_messages(second)
    assert tracer.last["data"]["tokens"]["total"] == response.usage.total_tokens


async def test_output_still_invalid_after_the_repair_is_a_model_error_not_a_default() -> None:
    fake = FakeChatModel(["not json at all", '{"label": "nope"}'])
    schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]}
    with pytest.raises(ModelError, match=r"does not match the schema.*after one repair.*label"):
        await FakeRouter({"m": fake}).complete("m", HELLO, schema=schema)
    assert fake.calls == 2


async def test_configured_price_per_token_and_per_gpu_second() -> None:
    reply = ChatResponse(text="x", usage=Usage(prompt_tokens=2_000_000, completion_tokens=500_000),
                         latency_s=2.0, cost=123.0)
    per_token = FakeChatModel([reply], name="t")
    per_second = FakeChatModel([reply], name="g")
    router = FakeRouter({"t": per_token, "g": per_second})
    router.chain("t")[0].entry = ModelEntry(
        model="t", price=Price(input_per_million=0.5, output_per_million=2.0))
    router.chain("g")[0].entry = ModelEntry(model="g", price=Price(per_gpu_second=0.25, gpus=2))
    tracer = Recorder()
    assert (await router.complete("t", HELLO, tracer=tracer)).cost == pytest.approx(1.0 + 1.0)
    assert tracer.last["data"]["cost_source"] == "price"
    assert (await router.complete("g", HELLO)).cost == pytest.approx(2.0 * 0.25 * 2)
    assert router.usage.of_alias("t").prompt_tokens == 2_000_000
    assert router.usage.total().cost == pytest.approx(3.0)


async def test_the_trace_records_the_whole_call() -> None:
    fake = FakeChatModel(["hi there"], name="fake-large", kind="openai")
    router = FakeRouter({"large": fake})
    tracer = Recorder()
    with pytest.warns(SamplingWarning):
        await router.complete("large", HELLO, sampling=Sampling(temperature=0.1, top_k=3),
                              tracer=tracer, node="answer", trace_data={"context_budget": {"x": 1}})
    record = tracer.last
    assert record["kind"] == "model_call" and record["name"] == "large"
    data = record["data"]
    assert data["model"] == "fake-large" and data["messages"] == HELLO
    assert data["sampling"] == {"temperature": 0.1, "top_k": 3}
    assert data["dropped_params"] == ["top_k"] and data["response"] == "hi there"
    assert data["tokens"]["total"] > 0 and data["cache"] == "off" and data["cache_hit"] is False
    assert data["context_budget"] == {"x": 1}
    assert record["started"] is not None


async def test_a_failed_call_is_traced_as_an_error() -> None:
    router = FakeRouter({"m": [ProviderError("down", reason="auth", model="fake")]})
    tracer = Recorder()
    with pytest.raises(ModelError):
        await router.complete("m", HELLO, tracer=tracer)
    assert tracer.last["status"] == "error" and "down" in tracer.last["error"]


async def test_n_samples_come_back_as_choices() -> None:
    router = FakeRouter({"m": ["same"]})
    response = await router.complete("m", HELLO, sampling=Sampling(n=3))
    assert response.all_choices() == ("same", "same", "same")


def test_router_from_entries_builds_backends_lazily() -> None:
    router = ModelRouter({"large": [ModelEntry(model="hosted_vllm/a", api_base="http://127.0.0.1:9/v1"),
                                    ModelEntry(model="openai/gpt-4o-mini", context_window=4096)]})
    assert router.models_of("large") == ["hosted_vllm/a", "openai/gpt-4o-mini"]
    assert router.context_window("large") == 4096  # the smallest, so every fallback fits
    assert router.prompt_limit("large", Sampling(max_tokens=96)) == 4000


async def test_a_task_a_model_leaves_to_the_offline_backend_is_answered_offline_and_traced() -> None:
    from agentflow.models import Label, ModelEntry, ModelRouter, PromptInputs
    from agentflow.models.backends import Backends
    from agentflow.models.embeddings import HashEmbedder

    entry = ModelEntry(model="hosted_vllm/tiny", api_base="http://127.0.0.1:9/v1",
                       offline_tasks=("classify",))  # nothing listens there: never called
    router = ModelRouter({"small": [entry]}, backends=Backends(encoder=HashEmbedder.lexical()))
    labels = (Label(name="greeting", examples=("hello", "hi there")),
              Label(name="weather", examples=("will it rain", "is it sunny")))
    tracer = Recorder()
    reply = await router.complete(
        "small", [{"role": "user", "content": "hello"}], tracer=tracer,
        inputs=PromptInputs(task="classify", query="hello", labels=labels),
        schema={"type": "object", "properties": {"label": {"enum": ["greeting", "weather"]}}},
    )
    assert reply.parsed["label"] == "greeting" and reply.model.startswith("offline")
    [call] = tracer.records
    assert call["data"]["models"] == ["offline"]
    assert call["data"]["offline_task"] == {"task": "classify", "declared_by": "hosted_vllm/tiny"}
