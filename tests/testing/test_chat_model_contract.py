"""The chat model contract, run against agentflow's own backends and the test kit's fake."""

from __future__ import annotations

import pytest

from agentflow.models.embeddings import HashEmbedder
from agentflow.models.offline.model import OfflineModel
from agentflow.models.profiles import ModelEntry
from agentflow.models.types import ChatModel, ChatRequest, ProviderError
from agentflow.testing.contracts import ChatModelContract
from agentflow.testing.models import FakeChatModel

ANSWER = '{"answer": "Paris"}'


class TestFakeChatModel(ChatModelContract):
    """The scripted fake: a JSON reply fills the schema, and it answers the same every time."""

    structured_output = True
    deterministic = True

    @pytest.fixture
    def chat_model(self) -> ChatModel:
        return FakeChatModel([ANSWER], repeat_last=True)

    @pytest.fixture
    def failing_chat_model(self) -> ChatModel:
        busy = ProviderError("busy", reason="rate_limit", model="fake")
        return FakeChatModel([busy], name="fake", repeat_last=True)


class TestOfflineModel(ChatModelContract):
    """The offline backends (here on the instant hashing encoder): text only; what else they can
    do (deterministic, no sampling, structured fields, free) their capabilities declare."""

    @pytest.fixture
    def chat_model(self) -> ChatModel:
        return OfflineModel(HashEmbedder.lexical())

    @pytest.fixture
    def failing_chat_model(self) -> ChatModel:
        return OfflineModel(HashEmbedder.lexical())

    def failing_request(self) -> ChatRequest:
        return self.request(inputs=None)  # no structured fields: it cannot answer


class TestLiteLLMMockResponse(ChatModelContract):
    """Every real provider's path, through LiteLLM's mock_response (no network)."""

    structured_output = True
    deterministic = True

    @pytest.fixture
    def chat_model(self) -> ChatModel:
        from agentflow.models.litellm_adapter import LiteLLMChatModel

        return LiteLLMChatModel(ModelEntry(model="openai/gpt-4.1-mini", mock_response=ANSWER))

    @pytest.fixture
    def failing_chat_model(self) -> ChatModel:
        from agentflow.models.litellm_adapter import LiteLLMChatModel

        return LiteLLMChatModel(ModelEntry(model="openai/gpt-4.1-mini",
                                           mock_response="litellm.RateLimitError"))
