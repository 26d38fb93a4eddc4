"""The chat model contract: what every :class:`~agentflow.models.types.ChatModel` backend does.

The router, the nodes and the checks rely on it: a reply with text, every sample of ``n``, the
tokens spent, a reply matching the JSON Schema of a structured request (where the backend takes
one), and failures raised as :class:`~agentflow.errors.ModelError` (a
:class:`~agentflow.models.types.ProviderError` with a ``reason`` the router's retry policy reads).
Subclass :class:`ChatModelContract` and override ``chat_model``:

.. code-block:: python

    class TestMyModel(ChatModelContract):
        structured_output = True   # it fills a JSON Schema (response_format)
        deterministic = True       # the same request always gets the same answer (a mock)

        @pytest.fixture
        def chat_model(self):
            return MyChatModel(api_base="http://127.0.0.1:8000/v1")

        @pytest.fixture
        def failing_chat_model(self):
            return MyChatModel(api_base="http://127.0.0.1:9/v1")  # nothing listens there

What a backend declares in its ``capabilities`` (:class:`~agentflow.models.types.Capabilities`)
is checked too: an answer from the structured fields alone, ``n`` copies of one answer where it
does not sample, the same answer twice where it is deterministic, no cost where it is free.

Override :meth:`ChatModelContract.request` when your backend needs more than messages (the
offline backends answer from the request's :class:`~agentflow.models.types.PromptInputs`; the
suite's requests carry a ``chat`` task by default).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, get_args

import pytest

from agentflow.errors import ModelError
from agentflow.models.sampling import Sampling, SamplingPlan
from agentflow.models.types import (
    Capabilities,
    ChatModel,
    ChatRequest,
    ChatResponse,
    Message,
    PromptInputs,
    ProviderError,
    ProviderFailure,
    capabilities_of,
)
from agentflow.testing.contracts._run import run_async
from agentflow.testing.models import FakeRouter

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
"""The JSON Schema of the structured-output test: ``{"answer": "<text>"}``."""

QUESTION = "What is the capital of France?"


class ChatModelContract:
    """The tests every chat model passes; see the module docstring.

    The class attributes declare what the backend can do; a test of something it does not
    declare is skipped, saying so.
    """

    structured_output: ClassVar[bool] = False
    """Its reply to a request with ``response_schema`` is JSON matching the schema (or
    ``parsed`` holds the object)."""
    samples: ClassVar[bool] = True
    """It answers ``sampling.n > 1`` with ``n`` choices."""
    deterministic: ClassVar[bool | None] = None
    """The same request always gets the same text (greedy decoding, a mock, an offline backend);
    ``None`` takes what the backend's capabilities declare."""

    @pytest.fixture
    def chat_model(self) -> ChatModel:
        raise NotImplementedError(
            f"{type(self).__name__}: override the chat_model fixture with one that returns "
            "your backend"
        )

    @pytest.fixture
    def failing_chat_model(self) -> ChatModel:
        pytest.skip(f"{type(self).__name__} gives no failing_chat_model fixture (a backend set "
                    "up to fail: a port nothing listens on, a bad key, a mock error)")

    def request(self, question: str = QUESTION, **options: Any) -> ChatRequest:
        """The request the suite sends; ``options`` are :class:`ChatRequest` fields."""
        messages: list[Message] = [
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": question},
        ]
        options.setdefault("inputs", PromptInputs(task="chat", query=question))
        return ChatRequest(messages=messages, **options)

    def failing_request(self) -> ChatRequest:
        """The request sent to ``failing_chat_model`` (by default the ordinary one)."""
        return self.request()

    # -- the protocol ------------------------------------------------------------------------

    def test_implements_the_chat_model_protocol(self, chat_model: ChatModel) -> None:
        assert isinstance(chat_model, ChatModel), f"{chat_model!r} lacks attributes of ChatModel"
        assert isinstance(chat_model.name, str) and chat_model.name, "a model has a name"
        assert isinstance(chat_model.kind, str)

    def test_sampling_plan_drops_only_what_was_asked_for(self, chat_model: ChatModel) -> None:
        assert isinstance(chat_model.sampling_plan(Sampling()), SamplingPlan)
        asked = Sampling(temperature=0.2, top_p=0.9, seed=7, max_tokens=64)
        plan = chat_model.sampling_plan(asked)
        assert isinstance(plan, SamplingPlan)
        assert set(plan.dropped) <= set(asked.provided()), (
            f"dropped {plan.dropped}, but only {sorted(asked.provided())} were asked for")

    def test_declared_capabilities_are_capabilities(self, chat_model: ChatModel) -> None:
        declared = getattr(chat_model, "capabilities", None)
        assert declared is None or isinstance(declared, Capabilities), (
            f"capabilities must be a Capabilities, not {type(declared).__name__}: shared code "
            "would ignore it and take the backend for a language model behind an API")

    # -- answers -----------------------------------------------------------------------------

    @run_async
    async def test_complete_answers_with_text(self, chat_model: ChatModel) -> None:
        response = await chat_model.complete(self.request())
        assert isinstance(response, ChatResponse), f"complete returned {type(response).__name__}"
        assert isinstance(response.text, str) and response.text.strip(), "an answer has text"
        assert isinstance(response.model, str)
        assert response.all_choices() == (response.text,), "one sample unless n > 1 was asked"

    @run_async
    async def test_usage_counts_the_tokens_spent(self, chat_model: ChatModel) -> None:
        usage = (await chat_model.complete(self.request())).usage
        assert usage.prompt_tokens > 0, "the prompt's tokens are counted (or estimated)"
        assert usage.completion_tokens > 0, "the answer's tokens are counted (or estimated)"
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    @run_async
    async def test_n_samples_come_back_as_n_choices(self, chat_model: ChatModel) -> None:
        if not self.samples:
            pytest.skip(f"{type(self).__name__}.samples is False")
        response = await chat_model.complete(self.request(sampling=Sampling(n=3, temperature=0.8)))
        choices = response.all_choices()
        assert len(choices) == 3, f"asked for 3 samples, got {len(choices)}"
        assert all(isinstance(c, str) and c.strip() for c in choices), "every sample has text"
        assert response.text in choices, "text is one of the samples"

    @run_async
    async def test_a_structured_request_gets_json_matching_its_schema(
        self, chat_model: ChatModel
    ) -> None:
        if not self.structured_output:
            pytest.skip(f"{type(self).__name__}.structured_output is False")
        response = await chat_model.complete(
            self.request(response_schema=SCHEMA, schema_name="answer"))
        value = response.parsed
        if value is None:
            try:
                value = json.loads(response.text)
            except json.JSONDecodeError as exc:
                pytest.fail(f"the reply to a structured request is not JSON: {response.text!r} "
                            f"({exc})")
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        assert isinstance(value, dict) and isinstance(value.get("answer"), str), (
            f"the reply does not match {SCHEMA}: {value!r}")

    @run_async
    async def test_the_same_request_gets_the_same_answer(self, chat_model: ChatModel) -> None:
        declared = capabilities_of(chat_model).deterministic
        if not (declared if self.deterministic is None else self.deterministic):
            pytest.skip(f"{type(self).__name__}.deterministic is {self.deterministic} and the "
                        f"backend's capabilities say deterministic={declared}")
        first = await chat_model.complete(self.request())
        second = await chat_model.complete(self.request())
        assert first.text == second.text

    @run_async
    async def test_a_backend_that_does_not_sample_gives_copies_of_one_answer(
        self, chat_model: ChatModel
    ) -> None:
        if capabilities_of(chat_model).sampling or not self.samples:
            pytest.skip("the backend samples (capabilities.sampling), or samples is False")
        response = await chat_model.complete(self.request(sampling=Sampling(n=3, temperature=1.0)))
        assert set(response.all_choices()) == {response.text}, "capabilities.sampling is False"

    @run_async
    async def test_a_backend_of_structured_fields_answers_from_them_alone(
        self, chat_model: ChatModel
    ) -> None:
        if not capabilities_of(chat_model).structured_fields:
            pytest.skip("the backend reads the messages (capabilities.structured_fields is False)")
        plain = self.request()
        reworded = ChatRequest(messages=[{"role": "user", "content": "Something else entirely."}],
                               sampling=plain.sampling, inputs=plain.inputs)
        first, second = await chat_model.complete(plain), await chat_model.complete(reworded)
        assert first.text == second.text, "the same structured fields, another prompt text"

    @run_async
    async def test_concurrent_requests_each_get_their_answer(self, chat_model: ChatModel) -> None:
        questions = [f"{QUESTION} ({i})" for i in range(4)]
        responses = await asyncio.gather(*(chat_model.complete(self.request(q)) for q in questions))
        assert len(responses) == 4
        assert all(isinstance(r, ChatResponse) and r.text.strip() for r in responses)

    @run_async
    async def test_it_answers_through_the_router(self, chat_model: ChatModel) -> None:
        router = FakeRouter({"model": chat_model})
        request = self.request()
        response = await router.complete("model", request.messages, inputs=request.inputs)
        assert response.text.strip()
        totals = router.usage.of_alias("model")
        assert (totals.calls, totals.failures) == (1, 0)
        assert totals.total_tokens == response.usage.total_tokens > 0, "the router counts tokens"
        if capabilities_of(chat_model).free:
            assert response.cost == 0.0, "a backend that declares itself free costs nothing"

    # -- failures ----------------------------------------------------------------------------

    @run_async
    async def test_a_failure_raises_a_model_error(self, failing_chat_model: ChatModel) -> None:
        try:
            await failing_chat_model.complete(self.failing_request())
        except ModelError as exc:
            if isinstance(exc, ProviderError):
                assert exc.reason in get_args(ProviderFailure), f"unknown reason {exc.reason!r}"
                assert isinstance(exc.model, str) and exc.model, "a provider error names the model"
            return
        except Exception as exc:  # noqa: BLE001 - the point: any other exception fails the contract
            pytest.fail(f"raised {type(exc).__name__} ({exc}); translate it into a ModelError "
                        "(a ProviderError with a reason, so the router knows whether to retry)")
        pytest.fail("the failing model answered; failing_chat_model must be set up to fail")

    @run_async
    async def test_a_failure_reaches_the_caller_through_the_router(
        self, failing_chat_model: ChatModel
    ) -> None:
        router = FakeRouter({"model": failing_chat_model})
        request = self.failing_request()
        with pytest.raises(ModelError):
            await router.complete("model", request.messages, inputs=request.inputs)
        assert router.usage.of_alias("model").failures == 1
