"""The shipped test doubles behave as documented."""

from __future__ import annotations

import pytest

from agentflow.errors import ModelError
from agentflow.models import ChatRequest, ChatResponse, ProviderError, Sampling
from agentflow.testing.models import FakeChatModel, FakeRouter

HELLO = [{"role": "user", "content": "hello"}]


async def test_a_script_is_used_in_order_and_every_request_is_kept() -> None:
    fake = FakeChatModel(["one", {"two": 2}, ChatResponse(text="three")])
    texts = [(await fake.complete(ChatRequest(HELLO))).text for _ in range(3)]
    assert texts == ["one", '{"two": 2}', "three"]
    assert fake.calls == 3 and fake.prompts == [HELLO] * 3
    with pytest.raises(ModelError, match="no scripted response for call 4"):
        await fake.complete(ChatRequest(HELLO))


async def test_functions_and_exceptions_script_behaviour() -> None:
    async def echo(request: ChatRequest) -> str:
        return request.messages[-1]["content"].upper()

    assert (await FakeChatModel(echo).complete(ChatRequest(HELLO))).text == "HELLO"
    failing = FakeChatModel([ProviderError("x", reason="auth", model="fake")])
    with pytest.raises(ProviderError):
        await failing.complete(ChatRequest(HELLO))


async def test_fake_router_accepts_scripts_strings_and_fallback_lists() -> None:
    primary = FakeChatModel([ProviderError("down", reason="server", model="p")] * 3, name="p")
    router = FakeRouter({"small": "always this", "large": [primary, FakeChatModel(["b"], name="b")],
                         "judge": lambda request: "judged"})
    assert (await router.complete("small", HELLO)).text == "always this"
    assert (await router.complete("small", HELLO)).text == "always this"
    assert (await router.complete("large", HELLO)).text == "b" and primary.calls == 3
    assert (await router.complete("judge", HELLO)).text == "judged"
    assert router.model("large") is primary
    assert router.usage.of_alias("small").calls == 2


async def test_the_provider_kind_of_a_fake_decides_what_is_dropped() -> None:
    assert FakeChatModel(kind="openai").sampling_plan(Sampling(top_k=3)).dropped == ("top_k",)
    assert FakeChatModel().sampling_plan(Sampling(top_k=3)).dropped == ()
