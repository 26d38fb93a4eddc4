"""What a node receives besides its state and config: the services of the run and its identity.

Nodes never build clients or read environment variables. The model router, the retrievers, the
prompt store and the tracer come from :class:`Services`, handed to each node through a
:class:`RunContext`. Services that are not configured raise a :class:`ConfigError` that says how to
configure them, on first use rather than at import.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentflow.errors import ConfigError
from agentflow.tracing.events import Event, EventKind, TraceHook
from agentflow.tracing.payloads import Payload


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
    ``hooks`` receive every trace event. ``settings`` holds free configuration for node types that
    need it (documented by each node type).
    """

    models: Any = field(default_factory=_no_models)
    retrievers: Any = field(default_factory=_no_retrievers)
    prompts: Any = field(default_factory=_no_prompts)
    examples: Any = None
    hooks: Sequence[TraceHook] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)

    def retriever(self, collection: str) -> Any:
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
class RunContext:
    """Handed to every node: the services of the run and where in the run the node is."""

    run_id: str
    thread_id: str
    node: str
    services: Services
    tracer: NodeTracer
    pass_index: int | None = None
    item_index: int | None = None

    @property
    def models(self) -> Any:
        """The model router (aliases -> models)."""
        return self.services.models

    @property
    def prompts(self) -> Any:
        """The prompt store (Jinja2 templates)."""
        return self.services.prompts

    @property
    def examples(self) -> Any:
        """The example store for few-shot prompts, when one is configured."""
        return self.services.examples

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.services.settings

    def retriever(self, collection: str) -> Any:
        """The retriever of a collection."""
        return self.services.retriever(collection)

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Emit a custom event; it shows in ``astream`` and in the trace under this node. Its
        payload is free (:class:`~agentflow.tracing.payloads.Payload` keeps it as it comes)."""
        self.tracer.record("custom", name, data=data)
