"""The shapes every model call shares: messages, requests, responses and the two protocols.

A node never talks to a backend directly: it hands the router a list of messages plus the
structured fields the prompt was rendered from (:class:`PromptInputs`). LiteLLM-backed models send
the messages; the offline backends read only the structured fields, so they never parse prompt text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentflow.documents import Chunk, Example
from agentflow.errors import ModelError
from agentflow.models.sampling import Sampling, SamplingPlan

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat message, in the OpenAI shape that LiteLLM accepts for every provider."""

    role: Role
    content: str


Task = Literal["classify", "generate", "judge", "answerable", "prompt", "queries", "chat"]
"""What a request asks for; the offline backends dispatch on it."""


class Label(BaseModel):
    """A class a ``classify`` request may answer with, described for LLMs and offline backends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    examples: tuple[str, ...] = ()
    """Example inputs of this class; the offline classifier learns from them."""
    passages: tuple[str, ...] = ()
    """Document text nearest the input, for a label that takes its meaning from a collection
    (``from_collection``): the offline classifier compares the input with it, an LLM reads it."""


class PromptInputs(BaseModel):
    """The structured fields a prompt was rendered from, handed to the model with the messages.

    Offline backends answer from these fields alone. LLM backends ignore them (the rendered
    messages already say everything), so they never change what is sent to a provider.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Task = "prompt"
    query: str = ""
    """The user's question (generate), the text to classify (classify)."""
    documents: tuple[Chunk, ...] = ()
    """Retrieved passages, in the order they appear as ``[DOC 1]``, ``[DOC 2]``, ..."""
    doc_numbers: tuple[int, ...] = ()
    """The ``n`` of each document's ``[DOC n]`` marker, when not simply 1, 2, 3, ..."""
    labels: tuple[Label, ...] = ()
    out_of_scope: str | None = None
    """Label for inputs that fit no class (classify); ``None`` always picks a class."""
    threshold: float | None = None
    """Similarity below which the offline classifier answers ``out_of_scope``."""
    claim: str = ""
    """The statement whose support is scored (judge)."""
    count: int = 0
    """How many items to produce (queries)."""
    examples: tuple[Example, ...] = ()
    variables: dict[str, Any] = Field(default_factory=dict)
    """Template variables of a free-form prompt (the ``llm`` node)."""

    def numbered_documents(self) -> list[tuple[int, Chunk]]:
        """Each document with the ``n`` of its ``[DOC n]`` marker."""
        numbers = self.doc_numbers or tuple(range(1, len(self.documents) + 1))
        if len(numbers) != len(self.documents):
            raise ModelError(
                f"PromptInputs has {len(self.documents)} documents but {len(numbers)} doc_numbers"
            )
        return list(zip(numbers, self.documents, strict=True))


class Usage(BaseModel):
    """Tokens of one call. ``estimated`` is true when no provider tokenizer counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatResponse(BaseModel):
    """What a chat model returns. ``choices`` holds every sample when ``n > 1``."""

    text: str
    choices: tuple[str, ...] = ()
    parsed: Any = None
    """The validated object of a structured-output call (a Pydantic instance or plain JSON)."""
    model: str = ""
    """The concrete model (or offline backend) that answered."""
    usage: Usage = Field(default_factory=Usage)
    cost: float | None = None
    """Cost in USD as the provider's price list gives it; ``None`` when unknown."""
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    """Seconds to the first token as the server measured it, where it says (agentflow's node, as
    llama.cpp's server, reports ``timings``); ``None`` otherwise."""

    def all_choices(self) -> tuple[str, ...]:
        """Every sampled completion (just ``text`` when one was asked for)."""
        return self.choices or (self.text,)


class OutputConstraint(BaseModel):
    """A format free text must match, held by the server while it decodes (constrained decoding).

    Sent to models whose entry says they accept one (``grammars: true``: agentflow's node, vLLM)
    as vLLM's ``structured_outputs``; other models get the prompt alone, which asks for the same.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["regex", "grammar"]
    """``regex``: a whole match of the pattern; ``grammar``: a sentence of a Lark grammar
    (llguidance's dialect)."""
    pattern: str
    """The regex or the grammar's text."""
    name: str = "output"
    """What the format is, for traces (``citations``)."""


@dataclass(slots=True)
class ChatRequest:
    """Everything a backend needs for one call; built by the router, never by nodes."""

    messages: Sequence[Message]
    sampling: Sampling = field(default_factory=Sampling)
    inputs: PromptInputs | None = None
    response_schema: Mapping[str, Any] | None = None
    """JSON Schema the reply must match (structured output), or ``None`` for free text."""
    schema_name: str = "output"
    timeout_s: float | None = None
    constraint: OutputConstraint | None = None
    """A regex or grammar the free-text reply must match, for models that accept one."""


ProviderFailure = Literal[
    "rate_limit", "timeout", "server", "connection", "auth", "not_found", "bad_request",
    "context_window", "content_filter", "unsupported", "other",
]
RETRYABLE: frozenset[str] = frozenset({"rate_limit", "timeout", "server", "connection"})
"""Failures worth another try: everything else fails the attempt at once."""


class ProviderError(ModelError):
    """A backend failed to answer. ``reason`` classifies it; only transient reasons are retried."""

    def __init__(
        self,
        message: str,
        *,
        reason: ProviderFailure,
        model: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.reason in RETRYABLE


@runtime_checkable
class ChatModel(Protocol):
    """A backend that answers chat requests: LiteLLM for real providers, or an offline backend.

    ``name`` is the concrete model string shown in traces. ``kind`` says how sampling reaches it
    (see :mod:`agentflow.models.sampling`); ``sampling_plan`` says what a request's sampling becomes.
    ``reads_inputs`` is true for backends that answer from :class:`PromptInputs` rather than from
    the messages, which makes the inputs part of the cache key.
    """

    name: str
    kind: str
    reads_inputs: bool

    def sampling_plan(self, sampling: Sampling) -> SamplingPlan:
        """How this backend receives ``sampling``: what is sent where, and what is dropped."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors (unit length for the built-in ones)."""

    name: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Classification(BaseModel):
    """What the offline classifier returns as the parsed object of a ``classify`` request."""

    label: str
    score: float
    """Similarity of the input to the chosen label, in [-1, 1]."""
    scores: dict[str, float] = Field(default_factory=dict)
    """The best few labels and their scores."""
    threshold: float | None = None
    """The score under which the input was out of scope, when there is an out-of-scope label."""
    nearest: dict[str, str] = Field(default_factory=dict)
    """Label -> the example, description or passage sentence the input came closest to."""


class JudgeVerdict(BaseModel):
    """How well passages support a claim: what the offline judge returns for ``judge`` requests."""

    score: float = Field(ge=0.0, le=1.0)
    supported: bool
    reason: str = ""
    sentence_scores: list[float] = Field(default_factory=list)
    """Support of each sentence of the claim, in claim order."""
