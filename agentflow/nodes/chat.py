"""The ``chat`` node: answer conversation (greetings, thanks, small talk) without retrieval.

.. code-block:: yaml

    chit_chat:
      type: chat
      purpose: "answering questions about {{ collections.knowledge.description }}"

The small model replies briefly and steers back to what the workflow is for (``purpose``, a
template like a ``reply`` node's text). The offline profile has no language model: it answers
greetings, thanks and goodbyes with a fixed sentence that offers help with the purpose.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.sampling import Sampling
from agentflow.models.types import PromptInputs
from agentflow.nodes.llm import read_state
from agentflow.nodes.reply import check_text_template, render_text
from agentflow.prompts.messages import split_reasoning


class ChatConfig(NodeConfig):
    input: str = "question"
    """State field with the user's message."""
    output: str = "answer"
    """State field written with the reply."""
    history: str | None = None
    """State field with the conversation so far (messages), if any."""
    purpose: str = "answering questions from its documents"
    """What the assistant is for, so that small talk ends with an offer to help with it; a
    template may use ``{{ collections.NAME.description }}``."""
    model: str = "small"
    """Model alias."""
    prompt: str = "prompts/chit_chat.j2"
    """Template (variables: message, purpose)."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.7, max_tokens=128))

    @field_validator("purpose")
    @classmethod
    def _valid_template(cls, purpose: str) -> str:
        return check_text_template(purpose)


def _reads(cfg: ChatConfig) -> tuple[str, ...]:
    return (cfg.input, cfg.history) if cfg.history else (cfg.input,)


@node("chat", reads=_reads, writes=lambda c: (c.output,))
async def chat(state: Any, cfg: ChatConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Reply to a conversational message, without retrieval."""
    message = str(read_state(state, cfg.input, ctx.node))
    purpose = render_text(cfg.purpose, ctx)
    messages = ctx.prompts.messages(cfg.prompt, {"message": message, "purpose": purpose})
    if cfg.history:
        from agentflow.prompts.messages import to_messages

        history = to_messages(read_state(state, cfg.history, ctx.node) or [])
        messages = [messages[0], *history, *messages[1:]]
    response = await ctx.models.complete(
        cfg.model, messages, sampling=cfg.sampling, tracer=ctx.tracer, node=ctx.node,
        inputs=PromptInputs(task="chat", query=message, variables={"purpose": purpose}),
    )
    return {cfg.output: split_reasoning(response.text)[0]}
