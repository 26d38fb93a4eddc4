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

A label can take its meaning from a collection (``from_collection: knowledge``): the node searches
it for the input and hands the label the nearest passages, so "a question about the documents" is
whatever those documents hold, and pointing a workflow at other documents needs no new examples.

An LLM gets the labels, their descriptions, examples and passages in ``prompts/classify.j2`` and
must answer ``{"label": ...}`` with one of them (held to it by constrained decoding where the
server offers it; validated; one repair; then an error); a model too small to route declares
``offline_tasks: [classify]`` on its entry and the router leaves the request to the offline
classifier (the ``local`` profile's SmolLM2-135M routes at chance: benchmarks/routing_llm.py).
The offline profile's embedding classifier gets the same labels as structured fields and answers
by similarity, choosing ``out_of_scope`` below its threshold. The choice, its scores, the threshold
and what the input was compared with are recorded as the node's ``classification`` event.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from agentflow.documents import Chunk
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.budget import check_fits
from agentflow.models.sampling import Sampling
from agentflow.models.types import Label, PromptInputs
from agentflow.nodes.llm import read_state


class LabelSpec(BaseModel):
    """A label's meaning, for the model: a description and example inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    description: str = ""
    """What inputs with this label are about."""
    examples: list[str] = Field(default_factory=list)
    """Example inputs with this label (the offline classifier embeds them)."""
    from_collection: str | None = None
    """A collection whose content this label is about: the passages nearest the input are the
    label's prototypes too (a question the documents answer, or one on their topic)."""


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
    """Offline classifier: similarity under which the input is out of scope (default 0.35,
    measured on a dev split for labels ``from_collection``)."""
    passages: int = Field(4, ge=1, le=20)
    """How many chunks of a label's ``from_collection`` are searched for the input."""
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

    def label_list(self, passages: dict[str, list[Chunk]] | None = None) -> tuple[Label, ...]:
        """The labels as the models see them, with the passages found for ``from_collection``."""
        found = passages or {}
        return tuple(
            Label(
                name=name, description=spec.description, examples=tuple(spec.examples),
                passages=tuple(_passage_text(c) for c in found.get(name, ())),
            )
            for name, spec in self.specs().items()
        )

    def collections(self) -> dict[str, str]:
        """Label -> the collection it takes its meaning from."""
        return {
            name: spec.from_collection
            for name, spec in self.specs().items() if spec.from_collection
        }

    def names(self) -> tuple[str, ...]:
        """Every label the node can write, the out-of-scope one last."""
        extra = (self.out_of_scope,) if self.out_of_scope is not None else ()
        return (*self.specs(), *extra)


@lru_cache(maxsize=128)
def label_schema(names: tuple[str, ...]) -> type[BaseModel]:
    """The output model ``{"label": one of names}`` of a classify node."""
    return create_model("Label", label=(Literal[names], ...))  # type: ignore[call-overload,valid-type]


@node("classify", reads=lambda c: (c.input,), writes=lambda c: (c.output,))
async def classify(state: Any, cfg: ClassifyConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Write one of the configured labels (or the out-of-scope label) for the input text."""
    text = str(read_state(state, cfg.input, ctx.node))
    found = await _nearest_passages(text, cfg, ctx)
    labels = cfg.label_list(found)
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
    label = response.parsed.label
    ctx.emit("classification", _trace_data(label, response.text, found))
    return {cfg.output: label}


async def _nearest_passages(
    text: str, cfg: ClassifyConfig, ctx: RunContext[Any]
) -> dict[str, list[Chunk]]:
    """Label -> the chunks of its ``from_collection`` that best match the input (hybrid search)."""
    found: dict[str, list[Chunk]] = {}
    if not text.strip():
        return {name: [] for name in cfg.collections()}
    for name, collection in cfg.collections().items():
        found[name] = await ctx.retriever(collection).search(text, cfg.passages)
    return found


def _passage_text(chunk: Chunk) -> str:
    """A chunk as a label prototype: its heading (a line of its own) and its text."""
    heading = chunk.heading.strip()
    return f"{heading}\n{chunk.text}" if heading and heading not in chunk.text else chunk.text


def _trace_data(label: str, reply: str, found: dict[str, list[Chunk]]) -> dict[str, Any]:
    """What the trace shows of a classification: the label, the scores a scoring classifier
    sent with it, and the passages each collection label was compared with."""
    data: dict[str, Any] = {"label": label}
    try:
        sent = json.loads(reply)
    except ValueError:
        sent = None
    if isinstance(sent, dict):
        data.update({k: sent[k] for k in ("score", "scores", "threshold", "nearest") if k in sent})
    if found:
        data["compared_with"] = {
            name: [{"id": c.id, "source": c.source, "heading": c.heading} for c in chunks]
            for name, chunks in found.items()
        }
    return data
