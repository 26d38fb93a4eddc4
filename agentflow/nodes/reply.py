"""The ``reply`` node: a fixed answer, for cases that need no model (declining, say).

.. code-block:: yaml

    decline: {type: reply, text: "I can only answer questions about agentflow."}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentflow.nodes.context import RunContext
from agentflow.nodes.registry import NodeConfig, node


class ReplyConfig(NodeConfig):
    text: str = Field(min_length=1)
    """The reply."""
    output: str = "answer"
    """State field written with the reply."""


@node("reply", reads=(), writes=lambda c: (c.output,))
async def reply(state: Any, cfg: ReplyConfig, ctx: RunContext) -> dict[str, Any]:
    """Write the configured text."""
    return {cfg.output: cfg.text}
