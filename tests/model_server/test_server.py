"""The server over real HTTP on 127.0.0.1, with real clients: the openai SDK, LiteLLM, raw httpx."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openai import AsyncOpenAI, OpenAI

from .conftest import Served, hf_greedy, serve

MODEL = "stories260K"


def client(served: Served, **kw: object) -> OpenAI:
    return OpenAI(base_url=served.base, api_key="unused", max_retries=0, **kw)  # type: ignore[arg-type]


def metric(served: Served, name: str) -> float:
    text = httpx.get(served.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_models_and_metrics_text(server: Served) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok", "model": MODEL}
    models = client(server).models.list()
    assert [m.id for m in models.data] == [MODEL]
    client(server).completions.create(model=MODEL, prompt="The cat", max_tokens=5, temperature=0)
    text = httpx.get(server.url + "/metrics").text
    for name in ("queue_depth", "running_batch_size", "tokens_per_second", "time_to_first_token_seconds_count",
                 "generation_tokens_total"):
        assert f"agentflow_model_server_{name} " in text
    assert metric(server, "agentflow_model_server_time_to_first_token_seconds_count") >= 1
    assert metric(server, "agentflow_model_server_generation_tokens_total") >= 5


def test_openai_sdk_greedy_completion_equals_transformers(server: Served, hf_model, tokenizer) -> None:
    for prompt in ("Once upon a time", "The cat"):
        _, want = hf_greedy(hf_model, tokenizer, prompt, 60)
        got = client(server).completions.create(model=MODEL, prompt=prompt, max_tokens=60, temperature=0)
        assert got.choices[0].text == want[: len(got.choices[0].text)]
        assert got.usage.prompt_tokens == len(tokenizer.encode(prompt))
    readme = client(server).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=30, temperature=0)
    assert readme.choices[0].text.startswith(", there was a little girl named Lily. She loved to play outside")


def test_streaming_equals_the_whole_response(server: Served) -> None:
    c = client(server)
    whole = c.completions.create(model=MODEL, prompt="Lily and Ben", max_tokens=40, temperature=0)
    chunks = list(c.completions.create(model=MODEL, prompt="Lily and Ben", max_tokens=40, temperature=0, stream=True))
    assert len(chunks) > 5
    assert "".join(ch.choices[0].text for ch in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason == "length"
    raw = httpx.post(server.base + "/completions", json={"model": MODEL, "prompt": "The cat", "max_tokens": 3,
                                                       "stream": True, "stream_options": {"include_usage": True}})
    events = [line for line in raw.text.split("\n\n") if line]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 3


def test_n_samples_seed_and_logprobs(server: Served) -> None:
    c = client(server)
    out = c.completions.create(model=MODEL, prompt="The cat", max_tokens=20, temperature=1.0, n=4, seed=11)
    texts = [ch.text for ch in sorted(out.choices, key=lambda ch: ch.index)]
    assert len(set(texts)) == 4 and out.usage.completion_tokens == sum(1 for _ in texts) * 20
    again = c.completions.create(model=MODEL, prompt="The cat", max_tokens=20, temperature=1.0, n=4, seed=11)
    assert [ch.text for ch in sorted(again.choices, key=lambda ch: ch.index)] == texts
    lp = c.completions.create(model=MODEL, prompt="The cat", max_tokens=4, temperature=0, logprobs=3)
    info = lp.choices[0].logprobs
    assert len(info.tokens) == 4 and "".join(info.tokens) == lp.choices[0].text
    assert all(len(top) == 3 and max(top.values()) == pytest.approx(v) for top, v in
               zip(info.top_logprobs, info.token_logprobs, strict=True))


def test_sampling_extensions_pass_through_the_sdk(server: Served) -> None:
    c = client(server)
    greedy = c.completions.create(model=MODEL, prompt="The cat", max_tokens=30, temperature=0).choices[0].text
    penalised = c.completions.create(model=MODEL, prompt="The cat", max_tokens=30, temperature=0,
                                     extra_body={"repetition_penalty": 1.5}).choices[0].text
    assert penalised != greedy
    banned = c.completions.create(model=MODEL, prompt="The cat", max_tokens=30, temperature=0,
                                  logit_bias={"261": -100}, extra_body={"return_token_ids": True})
    assert 261 not in banned.choices[0].model_extra["token_ids"]
    stopped = c.completions.create(model=MODEL, prompt="The cat", max_tokens=30, temperature=0, stop=["park"])
    assert stopped.choices[0].finish_reason == "stop" and stopped.choices[0].text == greedy[: greedy.index("park")]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"min_p": 2}, "min_p"),
        ({"top_k": -5}, "top_k"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"logit_bias": {"99999": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 500}}, "logit_bias"),
        ({"temprature": 0.5}, "temprature"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "array",
                                                                                "uniqueItems": True}}}},
         "response_format"),
        ({"response_format": {"type": "regex", "regex": "(unclosed"}}, "response_format"),
        ({"response_format": {"type": "grammar", "grammar": "start: missing_rule"}}, "response_format"),
        ({"response_format": {"type": "regex"}}, "response_format"),
        ({"structured_outputs": {"regex": "[a-"}}, "structured_outputs"),
        ({"guided_regex": "(a|"}, "guided_regex"),
        ({"guided_choice": []}, "guided_choice"),
        ({"response_format": {"type": "json_object"}, "guided_regex": "a+"}, "guided_regex"),
        ({"max_tokens": 600}, "max_tokens"),
        ({"n": 64}, "n"),
        ({"prompt": [70000]}, "prompt"),
    ],
)
def test_invalid_parameters_get_400_naming_the_field(server: Served, body: dict, param: str) -> None:
    payload = {"model": MODEL, "prompt": "The cat", **body}
    r = httpx.post(server.base + "/completions", json=payload)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and param in error["message"]


def test_chat_field_errors(chat_server: Served) -> None:
    r = httpx.post(chat_server.base + "/chat/completions", json={
        "model": "stories260K-chat", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"
    r = httpx.post(chat_server.base + "/chat/completions", json={"model": "stories260K-chat", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_prompt_longer_than_the_context_is_400(server: Served) -> None:
    r = httpx.post(server.base + "/completions", json={"model": MODEL, "prompt": "the cat " * 400})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt" and "context is 512 tokens" in r.json()["error"]["message"]


def test_chat_on_a_model_without_template_is_400(server: Served) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(server.base + "/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages" and "no chat template" in r.json()["error"]["message"]


def test_unknown_model_is_404(server: Served) -> None:
    r = httpx.post(server.base + "/completions", json={"model": "gpt-x", "prompt": "hi"})
    assert r.status_code == 404 and "stories260K" in r.json()["error"]["message"]


def test_chat_with_a_template_streams_and_matches(chat_server: Served) -> None:
    c = client(chat_server)
    messages = [{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "A cat"}]
    whole = c.chat.completions.create(model="stories260K-chat", messages=messages, max_tokens=30, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.choices[0].message.content
    chunks = list(c.chat.completions.create(model="stories260K-chat", messages=messages, max_tokens=30,
                                            temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == whole.choices[0].message.content
    lp = c.chat.completions.create(model="stories260K-chat", messages=messages, max_tokens=3, temperature=0,
                                   logprobs=True, top_logprobs=2)
    assert len(lp.choices[0].logprobs.content) == 3
    assert all(len(t.top_logprobs) == 2 for t in lp.choices[0].logprobs.content)


JUDGE = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["supported", "unsupported"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "maxLength": 60},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["verdict", "score", "reason"],
    "additionalProperties": False,
}


def test_json_schema_output_always_parses_and_validates(chat_server: Served) -> None:
    c = client(chat_server)
    fmt = {"type": "json_schema", "json_schema": {"name": "judge", "schema": JUDGE, "strict": True}}
    shortest = len('{"verdict":"supported","score":1,"reason":""}')
    for seed, max_tokens in ((0, 200), (1, 200), (2, shortest + 8), (3, shortest)):
        out = c.chat.completions.create(
            model="stories260K-chat", messages=[{"role": "user", "content": "Judge this."}], max_tokens=max_tokens,
            temperature=1.0, seed=seed, response_format=fmt)  # type: ignore[arg-type]
        jsonschema.validate(json.loads(out.choices[0].message.content), JUDGE)
        assert out.usage.completion_tokens <= max_tokens
    r = httpx.post(chat_server.base + "/chat/completions", json={
        "model": "stories260K-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": shortest - 1,
        "response_format": fmt})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    assert f"below {shortest}" in r.json()["error"]["message"]


def test_json_object_mode_on_completions(server: Served) -> None:
    out = client(server).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=30, temperature=0.9,
                                          seed=5, n=3, extra_body={"response_format": {"type": "json_object"}})
    for choice in out.choices:
        assert isinstance(json.loads(choice.text), dict)


def test_fifty_concurrent_clients(server: Served) -> None:
    prompts = ["Once upon a time", "The cat", "Lily and Ben", "One day", "The dog"]
    c = client(server)
    sequential = {p: c.completions.create(model=MODEL, prompt=p, max_tokens=24, temperature=0).choices[0].text
                  for p in prompts}

    async def fire() -> list[tuple[str, str]]:
        ac = AsyncOpenAI(base_url=server.base, api_key="unused", max_retries=0)

        async def one(i: int) -> tuple[str, str]:
            p = prompts[i % len(prompts)]
            r = await ac.completions.create(model=MODEL, prompt=p, max_tokens=24, temperature=0)
            return p, r.choices[0].text

        try:
            return await asyncio.gather(*(one(i) for i in range(50)))
        finally:
            await ac.close()

    results = asyncio.run(fire())
    assert len(results) == 50
    assert all(text == sequential[p] for p, text in results)


def test_litellm_reaches_the_model_server_as_the_self_hosted_profile(server: Served, chat_server: Served) -> None:
    import litellm

    chat = litellm.completion(model="openai/stories260K-chat", api_base=chat_server.base, api_key="unused",
                              messages=[{"role": "user", "content": "A dog"}], max_tokens=12, temperature=0,
                              seed=3)
    assert chat.choices[0].message.content and chat.usage.completion_tokens <= 12
    text = litellm.text_completion(model="openai/stories260K", api_base=server.base, api_key="unused",
                                   prompt="Once upon a time", max_tokens=10, temperature=0)
    assert text.choices[0].text.startswith(", there was a little girl")
    # The profile's own provider prefix, with the server serving an extra name.
    vllm_style = litellm.completion(model="hosted_vllm/default", api_base=chat_server.base, api_key="unused",
                                    messages=[{"role": "user", "content": "A dog"}], max_tokens=12, temperature=0,
                                    seed=3)
    assert vllm_style.choices[0].message.content == chat.choices[0].message.content

    async def streamed() -> str:
        parts = []
        response = await litellm.acompletion(model="openai/stories260K-chat", api_base=chat_server.base,
                                             api_key="unused", messages=[{"role": "user", "content": "A dog"}],
                                             max_tokens=12, temperature=0, seed=3, stream=True)
        async for chunk in response:
            parts.append(chunk.choices[0].delta.content or "")
        return "".join(parts)

    assert asyncio.run(streamed()) == chat.choices[0].message.content


@pytest.fixture(scope="module")
def small_server(stories: Path) -> Iterator[Served]:
    """One slot and a queue of one: overload is easy to reach."""
    yield from serve(stories, max_batch=1, queue_limit=1)


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


LONG = {"model": MODEL, "prompt": "The cat", "max_tokens": 500, "ignore_eos": True, "stream": True}


def test_overload_gets_503_and_a_disconnect_frees_the_slot(small_server: Served,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    engine: Any = small_server.runtime.engine  # type: ignore[attr-defined]
    running, step = threading.Event(), engine.step
    running.set()

    def held_step() -> Any:  # the first request must not finish before the third arrives
        running.wait(30)
        return step()

    monkeypatch.setattr(engine, "step", held_step)
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", small_server.base + "/completions", json=LONG) as first:
            next(first.iter_lines())  # generating: the only slot is taken
            running.clear()
            try:
                with http.stream("POST", small_server.base + "/completions", json=LONG) as second:
                    assert second.status_code == 200  # accepted: it waits for the slot
                    third = http.post(small_server.base + "/completions", json={**LONG, "stream": False})
                    assert third.status_code == 503 and third.headers["retry-after"] == "1"
                    assert "queue is full" in third.json()["error"]["message"]
                    assert metric(small_server, "agentflow_model_server_requests_rejected_total") == 1
            finally:
                running.set()
    # Both streams were closed mid-generation: the engine aborts them and the slot is free again.
    wait_for(lambda: metric(small_server, 'agentflow_model_server_requests_finished_total{reason="abort"}') == 2)
    wait_for(lambda: metric(small_server, "agentflow_model_server_running_batch_size") == 0)
    ok = client(small_server).completions.create(model=MODEL, prompt="The cat", max_tokens=5, temperature=0)
    assert ok.choices[0].finish_reason == "length"


def test_a_non_streaming_client_that_disconnects_is_aborted(small_server: Served) -> None:
    before = metric(small_server, 'agentflow_model_server_requests_finished_total{reason="abort"}')
    # two prompts on one slot: generation outlasts the client's 0.1 s and the server's 0.25 s look at the
    # connection, however fast the machine (500 tokens of this model take about 0.3 s on a 2-core box)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(small_server.base + "/completions",
                   json={**LONG, "prompt": ["The cat", "The dog"], "stream": False}, timeout=0.1)
    aborted = 'agentflow_model_server_requests_finished_total{reason="abort"}'
    wait_for(lambda: metric(small_server, aborted) >= before + 1)
    wait_for(lambda: metric(small_server, "agentflow_model_server_running_batch_size") == 0)


@pytest.fixture(scope="module")
def keyed_server(stories: Path) -> Iterator[Served]:
    yield from serve(stories, max_batch=2, api_key="s3cret")


def test_api_key_is_required_when_set(keyed_server: Served) -> None:
    r = httpx.post(keyed_server.base + "/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    ok = OpenAI(base_url=keyed_server.base, api_key="s3cret", max_retries=0).completions.create(
        model=MODEL, prompt="hi", max_tokens=2)
    assert ok.usage.completion_tokens == 2
    assert httpx.get(keyed_server.url + "/health").status_code == 200
