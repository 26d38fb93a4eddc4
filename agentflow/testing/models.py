"""Test doubles for models: a scripted chat model that records its calls, and a router of them.

.. code-block:: python

    from agentflow.testing.models import FakeChatModel, FakeRouter

    small = FakeChatModel(['{"label": "knowledge"}'])
    large = FakeChatModel(lambda request: f"echo: {request.messages[-1]['content']}")
    services = Services(models=FakeRouter({"small": small, "large": large}))
    ...
    assert small.calls == 1 and "knowledge" in small.last_request.messages[0]["content"]

A :class:`FakeRouter` is the real :class:`~agentflow.models.router.ModelRouter` (cache, retries,
fallbacks, structured output, tracing, accounting) over fakes, with retry waits of zero. An embedder
among its models (a :class:`~agentflow.testing.embedders.FakeEmbedder`) serves that alias's
embeddings: ``FakeRouter({"judge": judge, "embed": FakeEmbedder()})``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from agentflow.errors import ModelError
from agentflow.models.budget import estimate_messages, estimate_tokens
from agentflow.models.cache import ResponseCache
from agentflow.models.profiles import RetryConfig
from agentflow.models.router import ModelRouter
from agentflow.models.sampling import ProviderKind, Sampling, SamplingPlan, plan_sampling
from agentflow.models.types import ChatModel, ChatRequest, ChatResponse, Embedder, Message, Usage

Scripted = str | ChatResponse | Mapping[str, Any] | list[Any] | BaseException
Responder = Callable[[ChatRequest], Scripted | Awaitable[Scripted]]


class FakeChatModel:
    """A chat model that answers from a script (a list, used in order) or a function.

    A scripted item is the reply's text, a JSON value (sent as JSON text), a full
    :class:`ChatResponse`, or an exception to raise (e.g. a ``ProviderError`` with
    ``reason="rate_limit"`` to exercise retries). Every request is kept in ``requests``.
    """

    reads_inputs = False

    def __init__(
        self,
        responses: Sequence[Scripted] | Responder | None = None,
        *,
        name: str = "fake",
        kind: ProviderKind = "openai-compatible",
        context_window: int = 8192,
        repeat_last: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.context_window = context_window
        self.repeat_last = repeat_last
        self._responder = responses if callable(responses) else None
        self._script = [] if callable(responses) or responses is None else list(responses)
        self.requests: list[ChatRequest] = []

    def __repr__(self) -> str:
        return f"FakeChatModel({self.name!r}, calls={self.calls})"

    @property
    def calls(self) -> int:
        """How many requests the model received."""
        return len(self.requests)

    @property
    def last_request(self) -> ChatRequest:
        if not self.requests:
            raise AssertionError(f"FakeChatModel {self.name!r} was never called")
        return self.requests[-1]

    @property
    def prompts(self) -> list[list[Message]]:
        """The messages of every request, in order."""
        return [list(r.messages) for r in self.requests]

    def sampling_plan(self, sampling: Sampling) -> SamplingPlan:
        return plan_sampling(sampling, self.kind)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        item = await self._next(request)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ChatResponse):
            return item if item.model else item.model_copy(update={"model": self.name})
        text = item if isinstance(item, str) else json.dumps(item)
        n = request.sampling.n or 1
        return ChatResponse(
            text=text,
            choices=(text,) * n if n > 1 else (),
            model=self.name,
            usage=Usage(
                prompt_tokens=estimate_messages(request.messages),
                completion_tokens=estimate_tokens(text),
                estimated=True,
            ),
            finish_reason="stop",
        )

    async def _next(self, request: ChatRequest) -> Scripted:
        if self._responder is not None:
            result = self._responder(request)
            return await result if inspect.isawaitable(result) else result
        index = len(self.requests) - 1
        if index < len(self._script):
            return self._script[index]
        if self.repeat_last and self._script:
            return self._script[-1]
        raise ModelError(
            f"FakeChatModel {self.name!r} has no scripted response for call {index + 1} "
            f"(scripted: {len(self._script)}); add one or pass repeat_last=True"
        )


class FakeRouter(ModelRouter):
    """A :class:`ModelRouter` over given models, with instant retries.

    Values may be a chat model, a list of them (fallbacks), a script for a new
    :class:`FakeChatModel` (a list of replies or a function), or an embedder (anything with a
    ``name`` and an async ``embed``, such as :class:`~agentflow.testing.embedders.FakeEmbedder`),
    which serves ``router.embed(alias, texts)``. ``embedders`` adds more embedding aliases.
    """

    def __init__(
        self,
        models: Mapping[
            str, ChatModel | Sequence[ChatModel] | Sequence[Scripted] | Responder | Embedder
        ],
        *,
        embedders: Mapping[str, Embedder] | None = None,
        retries: RetryConfig | None = None,
        cache: ResponseCache | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        embedding = dict(embedders or {})
        built = {}
        for alias, given in models.items():
            if _is_embedder(given):
                embedding[alias] = given
            else:
                built[alias] = _as_models(alias, given)
        super().__init__(
            models=built,
            embedders=embedding,
            profile="fake",
            retries=retries or RetryConfig(initial_wait_s=0.0, max_wait_s=0.0),
            cache=cache,
            timeout_s=timeout_s,
        )

    def model(self, alias: str) -> Any:
        """The (first) model of ``alias``: the fake, for assertions (the embedder of an
        embedding alias)."""
        embedder = self._embedders.get(alias)
        return embedder if embedder is not None else self.chain(alias)[0].model


def _is_embedder(given: Any) -> bool:
    """An embedder, not a chat model: chat models may have a ``name`` but never an ``embed``."""
    return isinstance(given, Embedder) and not isinstance(given, ChatModel)


def _as_models(alias: str, given: Any) -> ChatModel | list[ChatModel]:
    if isinstance(given, str):
        return FakeChatModel([given], name=f"fake-{alias}", repeat_last=True)
    if isinstance(given, ChatModel):
        return given
    if callable(given):
        return FakeChatModel(given, name=f"fake-{alias}")
    items = list(given)
    if items and all(isinstance(i, ChatModel) for i in items):
        return items
    return FakeChatModel(items, name=f"fake-{alias}")
