"""What LiteLLM really sends: requests captured by a local HTTP server started by the test.

Covers how each sampling parameter reaches each kind of provider, retries over HTTP (429 with
Retry-After, 5xx, no retry on 400), the per-call timeout, structured output in the request body,
and that API keys never reach the trace.
"""

from __future__ import annotations

import json
import time
import warnings

import pytest

from agentflow.errors import ModelError
from agentflow.models import ModelEntry, ModelRouter, RetryConfig, Sampling, SamplingWarning
from agentflow.models.litellm_adapter import LiteLLMChatModel, translate_error

from .support import Recorder, RecordingServer, Reply, openai_reply

FULL = Sampling(
    temperature=0.3, top_p=0.9, top_k=40, repetition_penalty=1.2, logit_bias={50256: -100.0},
    seed=7, n=2, max_tokens=64, stop=["\n\n"],
)
MESSAGES = [{"role": "user", "content": "What is Qdrant?"}]


def router(entry: ModelEntry, **kwargs: object) -> ModelRouter:
    retries = RetryConfig(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.05)
    return ModelRouter({"m": [entry]}, retries=retries, **kwargs)  # type: ignore[arg-type]


async def test_openai_compatible_server_gets_every_parameter_with_non_openai_ones_in_the_body(
    http_server: RecordingServer,
) -> None:
    http_server.reply(Reply(body=openai_reply("two", n=2)))
    entry = ModelEntry(model="openai/served-model", api_base=f"{http_server.url}/v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)  # nothing may be dropped
        response = await router(entry).complete("m", MESSAGES, sampling=FULL, node="answer")

    [sent] = http_server.chat_requests()
    assert sent.path == "/v1/chat/completions"
    body = sent.body
    assert body["model"] == "served-model"
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["seed"] == 7
    assert body["n"] == 2 and body["max_tokens"] == 64 and body["stop"] == ["\n\n"]
    assert body["logit_bias"] == {"50256": -100.0}
    assert body["top_k"] == 40 and body["repetition_penalty"] == 1.2  # extra body fields
    assert response.choices == ("two", "two")


async def test_vllm_provider_sends_the_same_body(http_server: RecordingServer) -> None:
    entry = ModelEntry(model="hosted_vllm/served-model", api_base=f"{http_server.url}/v1")
    await router(entry).complete("m", MESSAGES, sampling=Sampling(top_k=5, repetition_penalty=1.1))
    body = http_server.chat_requests()[0].body
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.1


async def test_openai_drops_top_k_and_repetition_penalty_with_one_warning_per_node(
    http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    entry = ModelEntry(model="openai/gpt-4.1-mini", api_base=f"{http_server.url}/v1", kind="openai")
    r = router(entry)
    sampling = Sampling(temperature=0.0, top_k=5, repetition_penalty=1.1, seed=3)
    with pytest.warns(SamplingWarning, match=r"does not accept top_k, repetition_penalty") as caught:
        await r.complete("m", MESSAGES, sampling=sampling, node="a")
        await r.complete("m", MESSAGES, sampling=sampling, node="a")
        await r.complete("m", MESSAGES, sampling=sampling, node="b")
    assert [str(w.message)[:8] for w in caught] == ["node 'a'", "node 'b'"]
    for sent in http_server.chat_requests():
        assert "top_k" not in sent.body and "repetition_penalty" not in sent.body
        assert sent.body["temperature"] == 0.0 and sent.body["seed"] == 3


async def test_ollama_gets_top_k_and_repeat_penalty_as_options(http_server: RecordingServer) -> None:
    entry = ModelEntry(model="ollama_chat/llama3.2", api_base=http_server.url)
    sampling = Sampling(temperature=0.2, top_k=20, repetition_penalty=1.3, seed=1, max_tokens=9)
    with pytest.warns(SamplingWarning, match="logit_bias"):
        response = await router(entry).complete(
            "m", MESSAGES, sampling=sampling.merged(Sampling(logit_bias={1: 2.0})), node="n"
        )
    [sent] = http_server.chat_requests()
    assert sent.path == "/api/chat"
    options = sent.body["options"]
    assert options["top_k"] == 20 and options["repeat_penalty"] == 1.3
    assert options["temperature"] == 0.2 and options["seed"] == 1 and options["num_predict"] == 9
    assert "logit_bias" not in json.dumps(sent.body)
    assert response.text == "hello"


async def test_anthropic_gets_top_k_natively_and_drops_seed(
    http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-secret")
    entry = ModelEntry(
        model="anthropic/claude-haiku-4-5", api_base=http_server.url, api_key_env="TEST_ANTHROPIC_KEY"
    )
    with pytest.warns(SamplingWarning, match="seed"):
        await router(entry).complete(
            "m", MESSAGES, sampling=Sampling(temperature=0.5, top_k=10, seed=4, max_tokens=30), node="n"
        )
    [sent] = http_server.chat_requests()
    assert sent.path.endswith("/messages")
    assert sent.body["top_k"] == 10 and sent.body["temperature"] == 0.5
    assert sent.body["max_tokens"] == 30 and "seed" not in sent.body
    assert sent.headers["x-api-key"] == "sk-ant-secret"


async def test_rate_limit_is_retried_after_the_retry_after_header(http_server: RecordingServer) -> None:
    http_server.reply(
        Reply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0.4"}),
        Reply(body=openai_reply("finally")),
    )
    entry = ModelEntry(model="openai/m", api_base=f"{http_server.url}/v1")
    tracer = Recorder()
    started = time.perf_counter()
    response = await router(entry).complete("m", MESSAGES, tracer=tracer)
    assert time.perf_counter() - started >= 0.4  # honoured, although the backoff cap is 0.05 s
    assert response.text == "finally"
    assert len(http_server.chat_requests()) == 2  # no hidden retries inside LiteLLM or the SDK
    assert tracer.last["data"]["retries"] == 1


async def test_server_errors_are_retried_then_the_fallback_answers(http_server: RecordingServer) -> None:
    http_server.reply(*[Reply(503, {"error": {"message": "overloaded"}}) for _ in range(3)])
    http_server.reply(Reply(body=openai_reply("from the fallback")))
    base = f"{http_server.url}/v1"
    r = ModelRouter(
        {"m": [ModelEntry(model="openai/primary", api_base=base),
               ModelEntry(model="openai/backup", api_base=base)]},
        retries=RetryConfig(max_attempts=3, initial_wait_s=0.0, max_wait_s=0.0),
    )
    tracer = Recorder()
    response = await r.complete("m", MESSAGES, tracer=tracer)
    assert response.text == "from the fallback" and response.model == "openai/backup"
    assert [s.body["model"] for s in http_server.chat_requests()] == ["primary"] * 3 + ["backup"]
    assert tracer.last["data"]["failures"][0]["model"] == "openai/primary"


async def test_a_bad_request_is_not_retried(http_server: RecordingServer) -> None:
    http_server.reply(Reply(400, {"error": {"message": "bad field", "type": "invalid_request_error"}}))
    entry = ModelEntry(model="openai/m", api_base=f"{http_server.url}/v1")
    with pytest.raises(ModelError, match="bad request"):
        await router(entry).complete("m", MESSAGES)
    assert len(http_server.chat_requests()) == 1


async def test_a_slow_server_times_out_per_call_and_is_retried(http_server: RecordingServer) -> None:
    http_server.reply(Reply(body=openai_reply("late"), delay_s=8.0), Reply(body=openai_reply("fast")))
    entry = ModelEntry(model="openai/m", api_base=f"{http_server.url}/v1", timeout_s=0.5)
    started = time.perf_counter()
    response = await router(entry).complete("m", MESSAGES)
    assert response.text == "fast"
    assert len(http_server.chat_requests()) == 2
    assert time.perf_counter() - started < 6.0  # the 8 s reply was cut at 0.5 s, not waited for


async def test_structured_output_sends_the_schema_and_validates_the_reply(
    http_server: RecordingServer,
) -> None:
    http_server.reply(Reply(body=openai_reply('{"label": "knowledge"}')))
    schema = {"type": "object", "properties": {"label": {"enum": ["knowledge", "chit_chat"]}},
              "required": ["label"], "title": "Route"}
    entry = ModelEntry(model="openai/m", api_base=f"{http_server.url}/v1")
    response = await router(entry).complete("m", MESSAGES, schema=schema)
    assert response.parsed == {"label": "knowledge"}
    fmt = http_server.chat_requests()[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema


async def test_api_keys_reach_the_server_but_never_the_trace(
    http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_NODE_KEY", "sk-very-secret")
    entry = ModelEntry(model="openai/m", api_base=f"{http_server.url}/v1", api_key_env="MY_NODE_KEY")
    tracer = Recorder()
    await router(entry).complete("m", MESSAGES, tracer=tracer)
    assert http_server.chat_requests()[0].headers["authorization"] == "Bearer sk-very-secret"
    assert "sk-very-secret" not in json.dumps(tracer.records, default=str)


async def test_provider_cost_and_tokens_come_from_the_response(
    http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    http_server.reply(Reply(body=openai_reply("hi", prompt_tokens=1000, completion_tokens=100)))
    entry = ModelEntry(model="openai/gpt-4o-mini", api_base=f"{http_server.url}/v1", kind="openai")
    r = router(entry)
    response = await r.complete("m", MESSAGES)
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1000, 100)
    assert response.cost == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)
    assert r.usage.total().cost == pytest.approx(response.cost)


async def test_a_missing_api_key_is_an_auth_error_and_not_retried(http_server: RecordingServer) -> None:
    entry = ModelEntry(model="openai/gpt-4.1-mini", api_base=f"{http_server.url}/v1", kind="openai")
    with pytest.raises(ModelError, match="auth"):
        await router(entry).complete("m", MESSAGES)
    assert http_server.chat_requests() == []


def test_errors_are_translated_with_a_reason_and_retry_after() -> None:
    import httpx
    import litellm

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    raw = httpx.Response(429, headers={"retry-after": "3"}, request=request)
    exc = litellm.RateLimitError("limit", llm_provider="openai", model="m", response=raw)
    error = translate_error(exc, "openai/m")
    assert error.reason == "rate_limit" and error.retryable and error.retry_after == 3.0
    bad = translate_error(litellm.BadRequestError("no", model="m", llm_provider="openai"), "openai/m")
    assert bad.reason == "bad_request" and not bad.retryable


def test_request_kwargs_switch_off_litellm_retries() -> None:
    model = LiteLLMChatModel(ModelEntry(model="hosted_vllm/x", api_base="http://127.0.0.1:1/v1"))
    from agentflow.models.types import ChatRequest

    kwargs = model.request_kwargs(ChatRequest(messages=MESSAGES, sampling=Sampling(top_k=3)))
    assert kwargs["num_retries"] == 0 and kwargs["max_retries"] == 0
    assert kwargs["extra_body"] == {"top_k": 3} and kwargs["api_key"] == "not-needed"


async def test_a_citation_grammar_reaches_a_server_that_accepts_grammars_and_no_other(
    http_server: RecordingServer,
) -> None:
    from agentflow.models.structured import citation_grammar

    http_server.reply(Reply(body=openai_reply("Yes [DOC 2].")))
    http_server.reply(Reply(body=openai_reply("Yes.")))
    grammar = citation_grammar([1, 2])
    accepts = ModelEntry(model="hosted_vllm/m", api_base=f"{http_server.url}/v1", grammars=True)
    plain = ModelEntry(model="hosted_vllm/m", api_base=f"{http_server.url}/v1")
    for entry in (accepts, plain):
        await router(entry).complete("m", MESSAGES, sampling=Sampling(top_k=5), constraint=grammar)
    with_grammar, without = (r.body for r in http_server.chat_requests())
    assert with_grammar["structured_outputs"] == {"grammar": grammar.pattern}  # vLLM's spelling
    assert with_grammar["top_k"] == 5  # beside the other extra body fields
    assert "structured_outputs" not in without and "response_format" not in without
    assert '"[DOC 1]" | "[DOC 2]"' in grammar.pattern and "[DOC 3]" not in grammar.pattern


async def test_a_models_text_sampling_is_sent_under_the_nodes_own_for_free_text_only(
    http_server: RecordingServer,
) -> None:
    for _ in range(3):
        http_server.reply(Reply(body=openai_reply('{"label": "a"}')))
    entry = ModelEntry(model="hosted_vllm/m", api_base=f"{http_server.url}/v1",
                       text_sampling=Sampling(repetition_penalty=1.2, temperature=0.5))
    await router(entry).complete("m", MESSAGES, sampling=Sampling(temperature=0.1))
    await router(entry).complete("m", MESSAGES)
    await router(entry).complete("m", MESSAGES, schema={"type": "object"})
    own, defaults, structured = (r.body for r in http_server.chat_requests())
    assert own["temperature"] == 0.1 and own["repetition_penalty"] == 1.2  # the node's value wins
    assert defaults["temperature"] == 0.5 and defaults["repetition_penalty"] == 1.2
    assert "repetition_penalty" not in structured and "temperature" not in structured


async def test_a_local_model_is_named_as_written_and_only_litellm_sees_its_hosted_vllm_prefix(
    http_server: RecordingServer,
) -> None:
    from agentflow.models.litellm_adapter import litellm_model
    from agentflow.models.profiles import local_entry

    entry = local_entry("local/served-model").model_copy(update={"api_base": f"{http_server.url}/v1", "serve": None})
    tracer = Recorder()
    response = await router(entry).complete("m", MESSAGES, sampling=Sampling(top_k=5), tracer=tracer)

    assert http_server.chat_requests()[0].body["model"] == "served-model"  # LiteLLM's hosted_vllm/ at work
    assert http_server.chat_requests()[0].body["top_k"] == 5  # an OpenAI-compatible server's extra field
    assert entry.model == response.model == "local/served-model"
    recorded = json.dumps(tracer.records, default=str)
    assert "local/served-model" in recorded and "hosted_vllm" not in recorded
    assert (litellm_model("local/x"), litellm_model("hosted_vllm/x"), litellm_model("openai/x"),
            litellm_model("local")) == ("hosted_vllm/x", "hosted_vllm/x", "openai/x", "local")


def test_a_local_embedding_model_too_is_sent_to_litellm_as_hosted_vllm_and_named_as_written() -> None:
    from agentflow.models.embeddings.litellm_embedder import LiteLLMEmbedder

    embedder = LiteLLMEmbedder(ModelEntry(model="local/e5", api_base="http://127.0.0.1:9/v1"))
    assert embedder.request_kwargs(["a"])["model"] == "hosted_vllm/e5"
    assert embedder.model == "local/e5" and "hosted_vllm" not in embedder.name
