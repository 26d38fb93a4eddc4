"""What a node receives besides its state and config: the services of the run and its identity.

Nodes never build clients or read environment variables. The model router, the retrievers, the
prompt store and the tracer come from :class:`Services`, handed to each node through a
:class:`RunContext`. Services that are not configured raise a :class:`ConfigError` that says how to
configure them, on first use rather than at import.

Each service is typed by the protocol of what nodes use of it, so a test can hand a run any object
that has those methods: :class:`AliasRouter` (the model router), :class:`~agentflow.retrieval.retriever.Retriever`,
:class:`~agentflow.prompts.templates.PromptSource` and
:class:`~agentflow.prompts.examples.ExampleStore`. ``RunContext[S]`` names the state type its node
runs on (``ctx: RunContext[RagState]``), as the node's ``state: RagState`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from agentflow.errors import ConfigError
from agentflow.tracing.events import Event, EventKind, TraceHook
from agentflow.tracing.payloads import Payload

if TYPE_CHECKING:  # the services' own modules are imported by whoever builds them, not by runs
    from agentflow.models.types import ChatResponse, Message, Sampling
    from agentflow.prompts.examples import ExampleStore
    from agentflow.prompts.templates import PromptSource
    from agentflow.retrieval.retriever import Retriever

StateT = TypeVar("StateT")
"""The state type of the workflow a node runs in (``Any`` for node types that serve any workflow:
they read the fields their config names)."""


class AliasRouter(Protocol):
    """What nodes and checks use of the model router: calls by alias, token counts and limits.

    :class:`~agentflow.models.router.ModelRouter` is the implementation; the test kit's
    ``FakeRouter`` is another.
    """

    async def ready(self, alias: str) -> None: ...

    async def complete(self, alias: str, messages: Sequence[Message], **options: Any
                       ) -> ChatResponse: ...

    async def embed(self, alias: str, texts: Sequence[str]) -> list[list[float]]: ...

    def capabilities(self, alias: str, **options: Any) -> Any: ...

    def prompt_limit(self, alias: str, sampling: Sampling | None = None) -> int: ...

    def context_window(self, alias: str) -> int: ...

    def count_tokens(self, alias: str, messages: Sequence[Message]) -> int: ...

    def count_text(self, alias: str, text: str) -> int: ...


class Unconfigured:
    """Placeholder for a service nobody configured; any use raises a helpful ConfigError."""

    def __init__(self, service: str, how: str) -> None:
        self._service = service
        self._how = how

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ConfigError(f"no {self._service} is configured for this run; {self._how}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(f"no {self._service} is configured for this run; {self._how}")

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<unconfigured {self._service}>"


def _no_models() -> Any:
    return Unconfigured("model router", "pass Services(models=...) to the run")


def _no_retrievers() -> Any:
    return Unconfigured("retriever", "pass Services(retrievers=...) to the run")


def _no_prompts() -> Any:
    return Unconfigured("prompt store", "pass Services(prompts=...) to the run")


@dataclass(slots=True)
class Services:
    """The shared services of a run.

    ``retrievers`` maps a collection name to a retriever, or is a callable that returns one.
    ``examples`` is the store of solved examples for few-shot prompts, where one is configured.
    ``hooks`` receive every trace event.
    """

    models: AliasRouter = field(default_factory=_no_models)
    retrievers: Mapping[str, Retriever] | Callable[[str], Retriever] = field(
        default_factory=_no_retrievers)
    prompts: PromptSource = field(default_factory=_no_prompts)
    examples: ExampleStore | None = None
    hooks: Sequence[TraceHook] = ()

    def retriever(self, collection: str) -> Retriever:
        source = self.retrievers
        if isinstance(source, Mapping):
            try:
                return source[collection]
            except KeyError:
                raise ConfigError(
                    f"no retriever for collection {collection!r}; configured: "
                    f"{', '.join(map(repr, source)) or 'none'}"
                ) from None
        return source(collection)


Emit = Callable[[Event], None]


@dataclass(slots=True)
class NodeTracer:
    """Emits events inside the current node's span (model calls, retrievals, checks, custom)."""

    run_id: str
    parent_id: str
    node: str
    emit_event: Emit
    _count: int = 0

    def record(
        self,
        kind: EventKind,
        name: str,
        *,
        data: Payload | Mapping[str, Any] | None = None,
        started: float | None = None,
        status: str | None = "ok",
        error: str | None = None,
    ) -> Event:
        """Record a finished child span (or a point event) of the node; returns the event.

        ``data`` is the event's typed payload (:mod:`agentflow.tracing.payloads`), or its wire
        mapping as hooks receive it; ``started`` adds the span's ``duration_s``.
        """
        self._count += 1
        now = time.time()
        payload = data.to_data() if isinstance(data, Payload) else dict(data or {})
        if started is not None:
            payload.setdefault("duration_s", now - started)
        event = Event(
            kind=kind,
            run_id=self.run_id,
            span_id=f"{self.parent_id}/{kind}:{self._count}",
            parent_id=self.parent_id,
            name=name,
            time=started if started is not None else now,
            status=status,  # type: ignore[arg-type]
            error=error,
            data=payload,
        )
        self.emit_event(event)
        return event


@dataclass(slots=True)
class RunContext(Generic[StateT]):
    """Handed to every node: the services of the run and where in the run the node is.

    Generic over the workflow's state type, which only type checkers read: a node declared
    ``async def answer(state: RagState, cfg: AnswerConfig, ctx: RunContext[RagState])`` says in
    its signature what it runs on; the engine hands every node the same kind of context.
    """

    run_id: str
    thread_id: str
    node: str
    services: Services
    tracer: NodeTracer
    pass_index: int | None = None
    item_index: int | None = None

    @property
    def models(self) -> AliasRouter:
        """The model router (aliases -> models)."""
        return self.services.models

    @property
    def prompts(self) -> PromptSource:
        """The prompt store (Jinja2 templates)."""
        return self.services.prompts

    @property
    def examples(self) -> ExampleStore | None:
        """The example store for few-shot prompts, when one is configured."""
        return self.services.examples

    def retriever(self, collection: str) -> Retriever:
        """The retriever of a collection."""
        return self.services.retriever(collection)

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Emit a custom event; it shows in ``astream`` and in the trace under this node. Its
        payload is free (:class:`~agentflow.tracing.payloads.Payload` keeps it as it comes)."""
        self.tracer.record("custom", name, data=data)
