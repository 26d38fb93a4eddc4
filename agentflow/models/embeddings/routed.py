"""An embedder bound to a router alias: what retrieval embeds with, so a profile switches
retrieval's embeddings as it switches the judge's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from agentflow.models.router import CallTracer, ModelRouter


_TRACER: ContextVar[CallTracer | None] = ContextVar("agentflow_embedding_tracer", default=None)


@contextmanager
def tracing_embeddings(tracer: CallTracer | None) -> Iterator[None]:
    """Within the block (and the tasks it starts), a :class:`RoutedEmbedder` built without a
    tracer records its calls with ``tracer``: a retriever built once per run embeds a node's
    queries into that node's trace."""
    token = _TRACER.set(tracer)
    try:
        yield
    finally:
        _TRACER.reset(token)


class RoutedEmbedder:
    """Embeds through ``router.embed(alias, texts)``: the alias resolves through the profile in
    force, and every call gets the router's retries, accounting and (with ``tracer``, or inside
    :func:`tracing_embeddings`) a ``model_call`` span, one per call (callers embed in batches).

    ``name`` is the concrete embedder the alias resolves to (``offline/minilm``,
    ``litellm:openai/text-embedding-3-small``), not the alias: a collection records it, so
    switching the profile's embedding model re-embeds the collection.
    """

    def __init__(self, router: ModelRouter, alias: str = "embed", *,
                 tracer: CallTracer | None = None) -> None:
        self.router = router
        self.alias = alias
        self.tracer = tracer

    def __repr__(self) -> str:
        return f"RoutedEmbedder({self.alias!r} -> {self.name!r}, profile={self.router.profile!r})"

    @property
    def name(self) -> str:
        """The name of the embedder that serves the alias (built on first use)."""
        return self.router.embedder_of(self.alias).name

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` through the router (float32, one row per text)."""
        return await self.router.embed(self.alias, texts, tracer=self.tracer or _TRACER.get())
