"""The ``classify`` node type: pick one label for a piece of the state, with a small model.

.. code-block:: yaml

    - name: route_question
      type: classify
      input: question
      output: route
      labels:
        knowledge: {description: a question about the documentation, examples: [how do I ingest PDFs?]}
        chit_chat: {description: greetings and small talk, examples: [hi there!, thanks]}
      out_of_scope: out_of_scope

An LLM gets the labels, their descriptions and examples in ``prompts/classify.j2`` and must answer
``{"label": ...}`` with one of them (validated; one repair; then an error). The offline profile's
embedding classifier gets the same labels as structured fields and answers by similarity, choosing
``out_of_scope`` below its threshold.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from agentflow.models.budget import check_fits
from agentflow.models.sampling import Sampling
from agentflow.models.types import Label, PromptInputs
from agentflow.nodes.context import RunContext
from agentflow.nodes.llm import read_state
from agentflow.nodes.registry import NodeConfig, node


class LabelSpec(BaseModel):
    """A label's meaning, for the model: a description and example inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    description: str = ""
    """What inputs with this label are about."""
    examples: list[str] = Field(default_factory=list)
    """Example inputs with this label (the offline classifier embeds them)."""


class ClassifyConfig(NodeConfig):
    input: str = "question"
    """State field holding the text to classify."""
    output: str = "route"
    """State field written with the label."""
    labels: dict[str, LabelSpec | str] | list[str]
    """Label name -> description and examples (or just a description), or a list of names."""
    model: str = "small"
    """Model alias."""
    out_of_scope: str | None = "out_of_scope"
    """Label for inputs that fit no label; ``null`` always picks one of ``labels``."""
    threshold: float | None = None
    """Offline classifier: similarity under which the input is out of scope (default 0.35)."""
    prompt: str = "prompts/classify.j2"
    """Template of the prompt an LLM gets (variables: text, labels, out_of_scope)."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.0))
    """Greedy by default: a classifier should not sample."""

    @model_validator(mode="after")
    def _check_labels(self) -> ClassifyConfig:
        if not self.labels:
            raise ValueError("labels: give at least one label")
        if self.out_of_scope is not None and self.out_of_scope in self.specs():
            raise ValueError(
                f"out_of_scope {self.out_of_scope!r} is also a label; rename one of them"
            )
        return self

    def specs(self) -> dict[str, LabelSpec]:
        """Every label with its description and examples."""
        if isinstance(self.labels, list):
            return {name: LabelSpec() for name in self.labels}
        return {
            name: LabelSpec(description=spec) if isinstance(spec, str) else spec
            for name, spec in self.labels.items()
        }

    def label_list(self) -> tuple[Label, ...]:
        """The labels as the models see them."""
        return tuple(
            Label(name=name, description=spec.description, examples=tuple(spec.examples))
            for name, spec in self.specs().items()
        )

    def names(self) -> tuple[str, ...]:
        """Every label the node can write, the out-of-scope one last."""
        extra = (self.out_of_scope,) if self.out_of_scope is not None else ()
        return (*self.specs(), *extra)


@lru_cache(maxsize=128)
def label_schema(names: tuple[str, ...]) -> type[BaseModel]:
    """The output model ``{"label": one of names}`` of a classify node."""
    return create_model("Label", label=(Literal[names], ...))  # type: ignore[call-overload,valid-type]


@node("classify", reads=lambda c: (c.input,), writes=lambda c: (c.output,))
async def classify(state: Any, cfg: ClassifyConfig, ctx: RunContext) -> dict[str, Any]:
    """Write one of the configured labels (or the out-of-scope label) for the input text."""
    text = str(read_state(state, cfg.input, ctx.node))
    labels = cfg.label_list()
    messages = ctx.prompts.messages(
        cfg.prompt,
        {
            "text": text,
            "labels": [label.model_dump() for label in labels],
            "out_of_scope": cfg.out_of_scope,
        },
    )
    check_fits(
        ctx.models.count_tokens(cfg.model, messages),
        ctx.models.prompt_limit(cfg.model, cfg.sampling),
        what=f"the prompt of node {ctx.node!r}",
    )
    response = await ctx.models.complete(
        cfg.model,
        messages,
        sampling=cfg.sampling,
        inputs=PromptInputs(
            task="classify", query=text, labels=labels,
            out_of_scope=cfg.out_of_scope, threshold=cfg.threshold,
        ),
        schema=label_schema(cfg.names()),
        tracer=ctx.tracer,
        node=ctx.node,
    )
    return {cfg.output: response.parsed.label}
