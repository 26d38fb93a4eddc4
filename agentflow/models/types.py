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

from agentflow.documents import Chunk, Example, chunks_of
from agentflow.errors import ModelError
from agentflow.models.embeddings.base import (
    Embedder as Embedder,  # re-exported: the one protocol
)
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


PROMPT_QUERY: tuple[str, ...] = ("query", "question")
"""Template variables that hold a free-form prompt's query, first found wins."""
PROMPT_DOCUMENTS: tuple[str, ...] = ("documents", "chunks")
"""Template variables that hold a free-form prompt's documents, first found wins."""


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

    @classmethod
    def of_prompt(cls, variables: Mapping[str, Any], *, node: str) -> PromptInputs:
        """The structured fields of a free-form prompt (the ``llm`` node), from its template
        variables: the documents are the variable in :data:`PROMPT_DOCUMENTS` (``documents`` or
        ``chunks``), the query the one in :data:`PROMPT_QUERY` (``query`` or ``question``), and
        every plain value is kept in ``variables``.

        The query is set only beside documents: a free-form prompt is a question to answer from
        them or nothing a backend that reads structured fields can do, and that backend says so
        (it has no language model) rather than answer something else. ``node`` names the node in
        the error for documents that are not chunks.
        """
        query = next((variables[k] for k in PROMPT_QUERY if k in variables), "")
        docs = next((variables[k] for k in PROMPT_DOCUMENTS if k in variables), None)
        has_docs = isinstance(docs, list | tuple | Chunk | Mapping)
        return cls(
            task="prompt",
            query=query if isinstance(query, str) and has_docs else "",
            documents=tuple(chunks_of(docs, node)) if has_docs else (),
            variables={k: v for k, v in variables.items()
                       if isinstance(v, str | int | float | bool | type(None))},
        )

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
    """Seconds to the first token as the server measured it, where it says (agentflow's model server, as
    llama.cpp's server, reports ``timings``); ``None`` otherwise."""

    def all_choices(self) -> tuple[str, ...]:
        """Every sampled completion (just ``text`` when one was asked for)."""
        return self.choices or (self.text,)


class OutputConstraint(BaseModel):
    """A format free text must match, held by the server while it decodes (constrained decoding).

    Sent to models whose entry says they accept one (``grammars: true``: agentflow's model server, vLLM)
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


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a chat backend can and cannot do, declared by the backend and read by shared code.

    Shared code (the router, the judge, the checks, nodes) asks these instead of a backend's name
    or kind, so a new backend says what it is once, here, and every caller follows. The defaults
    describe a language model behind an API: it reads the messages, samples, and is paid for.
    """

    structured_fields: bool = False
    """It answers from the request's :class:`PromptInputs` alone, never from the prompt text: the
    inputs are part of the cache key, and a judge gives it one structured request per claim (the
    answer's sentences as claims) rather than instructions to follow."""
    language_model: bool = True
    """It writes tokens from a prompt: it can follow a free-form instruction (write questions,
    extract statements), score a prompt's log-probabilities where its server can, and be
    benchmarked by streaming. ``False`` for the offline backends, which quote and score."""
    sampling: bool = True
    """Sampling controls reach it and ``n`` samples can differ; ``False``: every control but ``n``
    is ignored (not dropped: nothing is lost) and ``n`` samples are ``n`` copies of one answer."""
    deterministic: bool = False
    """The same request always gets the same answer (samples always agree)."""
    free: bool = False
    """A call costs nothing: no price list or configured price applies (cost source ``offline``)."""
    prepares_passages: bool = False
    """It has ``prepare(passages, *, progress) -> int``, which scores retrieved passages ahead of
    questions; the router calls it after an ingestion writes new passages."""
    in_process: bool = False
    """It runs in this process, reached at no address: a profile's ``api_base``, ``api_key_env``,
    ``price`` and ``serve`` do not apply to its entries."""


LANGUAGE_MODEL = Capabilities()
"""The capabilities of a backend that declares none: a language model behind an API."""


def capabilities_of(model: object) -> Capabilities:
    """What ``model`` can do: its ``capabilities`` attribute, or, for a backend written before
    capabilities existed (they are optional in :class:`ChatModel`), a language model that reads
    structured fields only if it says so with ``reads_inputs``."""
    declared = getattr(model, "capabilities", None)
    if isinstance(declared, Capabilities):
        return declared
    if getattr(model, "reads_inputs", False):
        return Capabilities(structured_fields=True)
    return LANGUAGE_MODEL


@runtime_checkable
class ChatModel(Protocol):
    """A backend that answers chat requests: LiteLLM for real providers, or an offline backend.

    ``name`` is the concrete model string shown in traces. ``kind`` says how sampling reaches it
    (see :mod:`agentflow.models.sampling`); ``sampling_plan`` says what a request's sampling becomes.
    A backend may declare what it can do as a class attribute ``capabilities``
    (:class:`Capabilities`); one that does not is taken for a language model behind an API
    (:func:`capabilities_of`), so test doubles and older backends need nothing more.
    """

    name: str
    kind: str

    def sampling_plan(self, sampling: Sampling) -> SamplingPlan:
        """How this backend receives ``sampling``: what is sent where, and what is dropped."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


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
