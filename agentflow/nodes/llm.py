"""The ``llm`` node type: a free-form prompt template, filled from the state, sent to a model.

.. code-block:: yaml

    - name: rewrite
      type: llm
      prompt: prompts/multi_query.j2
      variables: {question: question}      # template variable: state field
      output: queries
      output_schema: {type: array, items: {type: string}, minItems: 1}
      model: small

Without ``output_schema`` the output is the reply's text (any scratchpad removed); with one, it is
the validated JSON value. The model also gets the prompt's structured fields
(:meth:`~agentflow.models.types.PromptInputs.of_prompt`): a backend that answers from them rather
than from prompt text (the offline profile's, which has no language model) answers a free-form
prompt only when the template variables include a ``query`` (or ``question``) and, to quote from,
``documents`` (or ``chunks``), by extractive answering; otherwise it raises a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from agentflow.errors import ConfigError, ModelError, known
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.budget import check_fits
from agentflow.models.sampling import Sampling
from agentflow.models.types import PromptInputs
from agentflow.prompts.messages import split_reasoning


class LlmConfig(NodeConfig):
    prompt: str
    """Path of the Jinja2 template from the project root, e.g. ``prompts/summary.j2``."""
    variables: dict[str, str] = Field(default_factory=dict)
    """Template variable -> the state field that fills it."""
    output: str = "output"
    """State field written with the reply (text, or the validated JSON with ``output_schema``)."""
    model: str = "large"
    """Model alias."""
    sampling: Sampling = Field(default_factory=Sampling)
    """Sampling controls (temperature, top_p, top_k, ..., max_tokens, stop)."""
    output_schema: dict[str, Any] | None = None
    """JSON Schema the reply must match (one repair request, then an error)."""


def read_state(state: Any, name: str, node_name: str) -> Any:
    """The value of field ``name`` of a state that is a dict or a Pydantic model instance."""
    if isinstance(state, Mapping):
        if name in state:
            return state[name]
        fields = list(state)
    else:
        if hasattr(state, name):
            return getattr(state, name)
        fields = list(getattr(type(state), "model_fields", {}) or vars(state))
    raise ConfigError(
        f"node {node_name!r} reads the state field {name!r}, which the state does not have; "
        f"fields: {known(fields)}"
    )


@node(
    "llm",
    reads=lambda c: tuple(dict.fromkeys(c.variables.values())),
    writes=lambda c: (c.output,),
)
async def llm(state: Any, cfg: LlmConfig, ctx: RunContext) -> dict[str, Any]:
    """Render a prompt template from state fields and write the model's reply to ``output``."""
    values = {var: read_state(state, field, ctx.node) for var, field in cfg.variables.items()}
    messages = ctx.prompts.messages(cfg.prompt, values)
    await ctx.models.ready(cfg.model)  # a model server started now counts the prompt's tokens
    check_fits(
        ctx.models.count_tokens(cfg.model, messages),
        ctx.models.prompt_limit(cfg.model, cfg.sampling),
        what=f"the prompt of node {ctx.node!r} ({cfg.prompt})",
    )
    response = await ctx.models.complete(
        cfg.model,
        messages,
        sampling=cfg.sampling,
        inputs=PromptInputs.of_prompt(values, node=ctx.node),
        schema=cfg.output_schema,
        tracer=ctx.tracer,
        node=ctx.node,
        trace_data={"prompt": cfg.prompt},
    )
    if cfg.output_schema is not None:
        return {cfg.output: response.parsed}
    answer, _ = split_reasoning(response.text)
    if not answer:
        raise ModelError(
            f"node {ctx.node!r}: model alias {cfg.model!r} ({response.model}) returned no text "
            "outside its reasoning"
        )
    return {cfg.output: answer}
