"""The response cache: modes off/read/write/replay, keys, and record-then-replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models import (
    ChatRequest,
    ModelEntry,
    ModelRouter,
    PromptInputs,
    ResponseCache,
    Sampling,
    build_router,
)
from agentflow.models.cache import normalised_request, request_key
from agentflow.models.embeddings import HashEmbedder
from agentflow.testing.models import FakeChatModel, FakeRouter

from .support import Recorder

HELLO = [{"role": "user", "content": "hello"}]


def test_the_key_ignores_whitespace_and_timeout_but_not_sampling() -> None:
    def key(messages: list[dict[str, str]], **kwargs: object) -> str:
        request = ChatRequest(messages=messages, **kwargs)  # type: ignore[arg-type]
        return request_key(normalised_request("m", request, with_inputs=False))

    base = key(HELLO)
    assert key([{"role": "user", "content": "  hello \n"}], timeout_s=3) == base
    assert key(HELLO, sampling=Sampling(temperature=0.5)) != base
    assert key([{"role": "user", "content": "hello!"}]) != base


def test_inputs_count_only_for_backends_that_read_them() -> None:
    a = ChatRequest(messages=HELLO, inputs=PromptInputs(query="a"))
    b = ChatRequest(messages=HELLO, inputs=PromptInputs(query="b"))
    assert normalised_request("m", a, with_inputs=False) == normalised_request("m", b, with_inputs=False)
    assert normalised_request("m", a, with_inputs=True) != normalised_request("m", b, with_inputs=True)


@pytest.mark.parametrize(
    ("mode", "second_call_reaches_model", "stored"),
    [("off", True, 0), ("read", True, 0), ("write", False, 1)],
)
async def test_modes(tmp_path: Path, mode: str, second_call_reaches_model: bool, stored: int) -> None:
    fake = FakeChatModel(["first", "second"])
    cache = ResponseCache(tmp_path / "c.db", mode)  # type: ignore[arg-type]
    router = FakeRouter({"m": fake}, cache=cache)
    assert (await router.complete("m", HELLO)).text == "first"
    again = await router.complete("m", HELLO)
    assert again.text == ("second" if second_call_reaches_model else "first")
    assert fake.calls == (2 if second_call_reaches_model else 1)
    if mode != "off":
        assert len(cache) == stored


async def test_replay_serves_recorded_answers_and_a_miss_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await FakeRouter({"m": ["recorded"]}, cache=ResponseCache(path, "write")).complete("m", HELLO)

    never = FakeChatModel([], name="fake-m")  # the recording model's name: part of the key
    replay = FakeRouter({"m": never}, cache=ResponseCache(path, "replay"))
    tracer = Recorder()
    response = await replay.complete("m", HELLO, tracer=tracer)
    assert response.text == "recorded" and response.cost == 0.0
    assert tracer.last["data"]["cache_hit"] is True
    with pytest.raises(ModelError, match=r"no recorded response.*'write'"):
        await replay.complete("m", [{"role": "user", "content": "never recorded"}])
    assert never.calls == 0


def test_replay_without_a_recording_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="record one first"):
        ResponseCache(tmp_path / "missing.db", "replay").get("k")


async def test_record_a_litellm_run_then_replay_it_offline(tmp_path: Path) -> None:
    """Recording goes through LiteLLM (here its mock_response); replay never calls a backend."""
    config = {"models": {"cache": {"path": str(tmp_path / "rec.db")}, "profiles": {"rec": {
        "aliases": {"large": {"model": "openai/gpt-4.1-mini", "mock_response": "Paris [DOC 1]."}}}}}}
    recording = build_router(config, profile="rec", cache_mode="write", env={})
    first = await recording.complete("large", HELLO, sampling=Sampling(temperature=0))
    assert first.text == "Paris [DOC 1]." and first.cost is not None and first.cost > 0

    replay_config = {"models": {"cache": {"path": str(tmp_path / "rec.db")}, "profiles": {"rec": {
        "aliases": {"large": "openai/gpt-4.1-mini"}}}}}  # no mock: a miss would reach the network
    replaying = build_router(replay_config, profile="rec", cache_mode="replay", env={})
    again = await replaying.complete("large", HELLO, sampling=Sampling(temperature=0))
    assert again.text == "Paris [DOC 1]." and again.usage == first.usage
    with pytest.raises(ModelError, match="no recorded response"):
        await replaying.complete("large", HELLO, sampling=Sampling(temperature=1))


async def test_structured_answers_replay_as_validated_objects(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Out(BaseModel):
        label: str

    path = tmp_path / "c.db"
    await FakeRouter({"m": ['{"label": "a"}']}, cache=ResponseCache(path, "write")).complete(
        "m", HELLO, schema=Out)
    replayed = await FakeRouter({"m": []}, cache=ResponseCache(path, "replay")).complete(
        "m", HELLO, schema=Out)
    assert replayed.parsed == Out(label="a")


async def test_offline_answers_are_cached_by_their_structured_inputs(tmp_path: Path) -> None:
    router = build_router(None, cache_mode="write", root=tmp_path, env={}, encoder=HashEmbedder.lexical())
    docs = (Chunk(id="1", text="Qdrant is written in Rust."),)

    async def ask(query: str) -> str:
        inputs = PromptInputs(task="generate", query=query, documents=docs)
        return (await router.complete("large", HELLO, inputs=inputs)).text

    assert await ask("What language is Qdrant written in?") == "Qdrant is written in Rust [DOC 1]."
    assert "know" in await ask("Who painted the Mona Lisa?")  # same messages, other inputs
    assert router.cache is not None and len(router.cache) == 2


def test_router_ignores_an_off_cache() -> None:
    router = ModelRouter({"m": [ModelEntry(model="offline")]}, cache=ResponseCache(":memory:", "off"))
    assert router.cache is None
