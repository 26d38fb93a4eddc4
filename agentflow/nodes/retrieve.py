"""The ``retrieve`` node: search a collection for one query, or for several and fuse them.

.. code-block:: yaml

    - retrieve:
        name: search
        collection: docs
        input: queries        # a string field, or a list of strings (multi-query)
        output: chunks
        top_k: 8
        mode: hybrid          # hybrid | dense | sparse
        filter: {lang: en, position: {lt: 5}}
        mmr: 0.3              # optional diversity

With a list of queries, each is searched and the result lists are fused by reciprocal rank
fusion, so a chunk found by several queries rises. The node records a ``retrieval`` trace event
with the queries, the chunk ids and their scores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentflow.documents import Chunk
from agentflow.errors import RetrievalError
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.embeddings.routed import tracing_embeddings


class FieldMatch(BaseModel):
    """Conditions on one payload field; all given ones must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    eq: str | int | bool | None = None
    """Equal to this value."""
    ne: str | int | bool | None = None
    """Not equal to this value."""
    any: list[str | int] | None = None
    """Equal to one of these values."""
    none: list[str | int] | None = None
    """Equal to none of these values."""
    gt: float | None = None
    """Greater than."""
    gte: float | None = None
    """Greater than or equal to."""
    lt: float | None = None
    """Less than."""
    lte: float | None = None
    """Less than or equal to."""


FilterValue = str | int | bool | list[str | int] | FieldMatch


class RetrieveConfig(NodeConfig):
    """Config of the ``retrieve`` node."""

    collection: str
    """The collection to search (declared by the workflow, or ingested with `agentflow ingest`)."""
    top_k: int = Field(8, ge=1, le=100)
    """How many chunks to return."""
    input: str = "query"
    """State field with the query: a string, or a list of strings whose results are fused by
    reciprocal rank fusion."""
    output: str = "chunks"
    """State field the chunks are written to."""
    mode: Literal["hybrid", "dense", "sparse"] | None = None
    """Search mode; by default the collection's (hybrid)."""
    filter: dict[str, FilterValue] | None = None
    """Payload conditions, e.g. ``{source: docs/a.md}`` or ``{lang: {any: [en, de]}}``; keys other
    than the chunk fields (source, title, heading, position, ...) refer to chunk metadata."""
    mmr: float | None = Field(None, ge=0.0, le=1.0)
    """Maximal marginal relevance diversity (0 = pure relevance); off by default."""
    top_k_from: str | None = None
    """Optional state field with an integer that overrides ``top_k`` (wider retrieval on retry)."""
    rrf_k: int = Field(60, ge=1)
    """The k of the fusion across several queries."""

    @field_validator("filter", mode="before")
    @classmethod
    def _check_filter(cls, value: Any) -> Any:
        from agentflow.retrieval.store import parse_filter

        if isinstance(value, dict):
            try:
                parse_filter(filter_spec(value))
            except RetrievalError as exc:
                raise ValueError(str(exc)) from None
        return value


def filter_spec(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The filter of a config in the store's mapping form."""
    if value is None:
        return None
    return {
        k: v.model_dump(exclude_none=True) if isinstance(v, FieldMatch) else v
        for k, v in value.items()
    }


def _reads(cfg: RetrieveConfig) -> tuple[str, ...]:
    return (cfg.input, cfg.top_k_from) if cfg.top_k_from else (cfg.input,)


def _writes(cfg: RetrieveConfig) -> tuple[str, ...]:
    return (cfg.output,)


def _field(state: Any, name: str) -> Any:
    return state.get(name) if isinstance(state, dict) else getattr(state, name, None)


def top_k_of(state: Any, top_k: int, top_k_from: str | None, where: str) -> int:
    """``top_k``, or the integer in the state field ``top_k_from`` when it holds one (a loop's
    verdict widens retrieval on each retry that way)."""
    if not top_k_from:
        return top_k
    override = _field(state, top_k_from)
    if override is None:
        return top_k
    if not isinstance(override, int) or isinstance(override, bool) or override < 1:
        raise RetrievalError(
            f"{where}: state field {top_k_from!r} must be a positive integer, got {override!r}"
        )
    return override


def _queries(value: Any, cfg: RetrieveConfig, node_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(q, str) for q in value):
        raise RetrievalError(
            f"retrieve node {node_name!r}: state field {cfg.input!r} must hold a string or a "
            f"list of strings, got {type(value).__name__}"
        )
    return list(dict.fromkeys(q.strip() for q in value if q.strip()))


async def _search_all(
    retriever: Any, queries: list[str], top_k: int, options: dict[str, Any]
) -> list[list[Chunk]]:
    if len(queries) > 1 and hasattr(retriever, "search_many"):
        return list(await retriever.search_many(queries, top_k, **options))
    return list(await asyncio.gather(*(retriever.search(q, top_k, **options) for q in queries)))


@node("retrieve", reads=_reads, writes=_writes)
async def retrieve(state: Any, cfg: RetrieveConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Search a collection for the query (or queries, fused) and write the top chunks."""
    from agentflow.retrieval.retriever import rrf_fuse

    queries = _queries(_field(state, cfg.input), cfg, ctx.node)
    top_k = top_k_of(state, cfg.top_k, cfg.top_k_from, f"retrieve node {ctx.node!r}")
    options: dict[str, Any] = {}
    if cfg.mode is not None:
        options["mode"] = cfg.mode
    if cfg.filter is not None:
        options["filter"] = filter_spec(cfg.filter)
    if cfg.mmr is not None:
        options["mmr"] = cfg.mmr

    started = time.time()
    chunks: list[Chunk] = []
    if queries:
        retriever = ctx.retriever(cfg.collection)
        with tracing_embeddings(ctx.tracer):  # the queries' embedding calls join this node's trace
            results = await _search_all(retriever, queries, top_k, options)
        chunks = (
            results[0][:top_k] if len(results) == 1 else rrf_fuse(results, k=cfg.rrf_k, top_k=top_k)
        )
    ctx.tracer.record(
        "retrieval",
        cfg.collection,
        data={
            "queries": queries,
            "hits": [c.id for c in chunks],
            "scores": [round(c.score, 6) for c in chunks],
            "sources": [c.source for c in chunks],
            "top_k": top_k,
            **options,
        },
        started=started,
    )
    return {cfg.output: chunks}
