"""The ``widen`` node: how many chunks to retrieve on this loop pass.

.. code-block:: yaml

    widen: {type: widen, output: retrieval_k, base: 6, step: 6}

Inside a loop, pass 1 retrieves ``base`` chunks per query, and every retry ``step`` more, so an
answer that failed its checks gets more evidence next time. A ``retrieve`` node reads the number
through ``top_k_from``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentflow.nodes.context import RunContext
from agentflow.nodes.registry import NodeConfig, node


class WidenConfig(NodeConfig):
    output: str = "retrieval_k"
    """State field written with the number of chunks to retrieve."""
    base: int = Field(6, ge=1, le=100)
    """Chunks per query on the first pass."""
    step: int = Field(6, ge=0, le=100)
    """More chunks per query on each later pass."""
    limit: int = Field(50, ge=1, le=100)
    """Never more than this many."""


@node("widen", reads=(), writes=lambda c: (c.output,))
async def widen(state: Any, cfg: WidenConfig, ctx: RunContext) -> dict[str, Any]:
    """Write ``base + step * (pass - 1)`` (capped at ``limit``); ``base`` outside a loop."""
    passes = (ctx.pass_index or 1) - 1
    return {cfg.output: min(cfg.limit, cfg.base + cfg.step * passes)}
