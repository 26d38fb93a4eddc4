"""The ``queries`` node: write a few search queries for a question (multi-query retrieval).

.. code-block:: yaml

    plan: {type: queries, input: question, output: queries, n: 3, model: small}

With a language model, the small model writes ``n`` varied queries (structured output: a JSON
array of strings). The offline profile expands the question lexically instead: the question, its
content words, and each part of a compound question. The original question is always kept first,
so retrieval never does worse than searching for the question itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.sampling import Sampling
from agentflow.models.types import PromptInputs
from agentflow.nodes.llm import read_state


class QueriesConfig(NodeConfig):
    input: str = "question"
    """State field with the question."""
    output: str = "queries"
    """State field written with the list of queries (the question first)."""
    n: int = Field(3, ge=1, le=10)
    """How many queries to write besides the question itself."""
    model: str = "small"
    """Model alias."""
    prompt: str = "prompts/multi_query.j2"
    """Template of the request (variables: question, n)."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.3, max_tokens=256))


@node("queries", reads=lambda c: (c.input,), writes=lambda c: (c.output,))
async def queries(state: Any, cfg: QueriesConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Write search queries for the question; the question itself comes first."""
    question = " ".join(str(read_state(state, cfg.input, ctx.node)).split())
    messages = ctx.prompts.messages(cfg.prompt, {"question": question, "n": cfg.n})
    # bounded, so a small model held to the schema by its server cannot run on repeating itself
    schema = {"type": "array", "items": {"type": "string", "minLength": 3, "maxLength": 120},
              "minItems": 1, "maxItems": cfg.n + 1}
    response = await ctx.models.complete(
        cfg.model, messages, sampling=cfg.sampling, schema=schema, tracer=ctx.tracer,
        node=ctx.node, inputs=PromptInputs(task="queries", query=question, count=cfg.n + 1),
    )
    written = [" ".join(str(q).split()) for q in response.parsed or []]
    unique = list(dict.fromkeys(q for q in [question, *written] if q))
    return {cfg.output: unique[: cfg.n + 1]}
