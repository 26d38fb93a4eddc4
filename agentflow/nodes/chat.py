"""The ``chat`` node: answer conversation (greetings, thanks, small talk) without retrieval.

.. code-block:: yaml

    chit_chat: {type: chat, input: question, output: answer, model: small}

The small model replies briefly and steers back to what the workflow is for (``purpose``). The
offline profile has no language model: it replies with a fixed message that says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentflow.models.sampling import Sampling
from agentflow.models.types import PromptInputs
from agentflow.nodes.context import RunContext
from agentflow.nodes.llm import read_state
from agentflow.nodes.registry import NodeConfig, node
from agentflow.prompts.messages import split_reasoning


class ChatConfig(NodeConfig):
    input: str = "question"
    """State field with the user's message."""
    output: str = "answer"
    """State field written with the reply."""
    history: str | None = None
    """State field with the conversation so far (messages), if any."""
    purpose: str = "answering questions from its documents"
    """What the assistant is for, so that small talk ends with an offer to help with it."""
    model: str = "small"
    """Model alias."""
    prompt: str = "prompts/chit_chat.j2"
    """Template (variables: message, purpose)."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.7, max_tokens=128))


def _reads(cfg: ChatConfig) -> tuple[str, ...]:
    return (cfg.input, cfg.history) if cfg.history else (cfg.input,)


@node("chat", reads=_reads, writes=lambda c: (c.output,))
async def chat(state: Any, cfg: ChatConfig, ctx: RunContext) -> dict[str, Any]:
    """Reply to a conversational message, without retrieval."""
    message = str(read_state(state, cfg.input, ctx.node))
    messages = ctx.prompts.messages(cfg.prompt, {"message": message, "purpose": cfg.purpose})
    if cfg.history:
        from agentflow.prompts.messages import to_messages

        history = to_messages(read_state(state, cfg.history, ctx.node) or [])
        messages = [messages[0], *history, *messages[1:]]
    response = await ctx.models.complete(
        cfg.model, messages, sampling=cfg.sampling, tracer=ctx.tracer, node=ctx.node,
        inputs=PromptInputs(task="chat", query=message),
    )
    return {cfg.output: split_reasoning(response.text)[0]}
