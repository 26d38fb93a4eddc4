"""The ``fuse`` node: merge ranked chunk lists (one per query) by reciprocal rank fusion.

.. code-block:: yaml

    fuse: {type: fuse, input: ranked, output: chunks, top_k: 6}

A chunk that several queries found rises above one that a single query ranked first. Duplicates
(the same chunk id) are merged; the fused score replaces the retrieval score.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentflow.documents import chunks_of
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.nodes.llm import read_state


class FuseConfig(NodeConfig):
    input: str = "ranked"
    """State field with a list of ranked chunk lists (a map's ``into``)."""
    output: str = "chunks"
    """State field written with the fused chunks, best first."""
    top_k: int = Field(6, ge=1, le=200)
    """How many fused chunks to keep."""
    top_k_from: str | None = None
    """Optional state field with an integer that overrides ``top_k`` (a wider context on retry,
    like the retrieve node's)."""
    rrf_k: int = Field(60, ge=1)
    """The k of reciprocal rank fusion (higher flattens the rank weights)."""


@node("fuse", reads=lambda c: (c.input, c.top_k_from) if c.top_k_from else (c.input,),
      writes=lambda c: (c.output,))
async def fuse(state: Any, cfg: FuseConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Fuse the ranked lists by reciprocal rank fusion and keep the best ``top_k``."""
    from agentflow.nodes.retrieve import top_k_of
    from agentflow.retrieval.retriever import rrf_fuse

    lists = read_state(state, cfg.input, ctx.node) or []
    rankings = [chunks_of(ranking, ctx.node) for ranking in lists]
    top_k = top_k_of(state, cfg.top_k, cfg.top_k_from, f"fuse node {ctx.node!r}")
    return {cfg.output: rrf_fuse(rankings, k=cfg.rrf_k, top_k=top_k)}
