"""The ``generate`` node type: answer from retrieved documents, citing them as ``[DOC n]``.

.. code-block:: yaml

    - name: answer
      type: generate
      query: question
      documents: chunks
      history: messages
      output: answer
      model: large
      chain_of_thought: true
      few_shot_k: 2            # examples retrieved from the example store by similarity
      sampling: {temperature: 0.2, max_tokens: 512}

The node assembles the augmented prompt (:mod:`agentflow.prompts.augmented`) within the model's
context budget, sends it, and writes the answer with any scratchpad removed. ``[DOC n]`` refers to
the n-th chunk of the ``documents`` field, whatever the budget dropped. With ``history_output`` the
node also writes the new turn (the question, and the answer without reasoning) as langchain-core
messages, for a history field with LangGraph's ``add_messages`` reducer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from agentflow.checks import sample_answers
from agentflow.documents import Example, chunks_of
from agentflow.errors import ModelError
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.models.sampling import Sampling
from agentflow.models.structured import citation_grammar
from agentflow.models.types import OutputConstraint, PromptInputs
from agentflow.nodes.llm import read_state
from agentflow.prompts.augmented import DEFAULT_TEMPLATE, AugmentedPrompt, assemble
from agentflow.prompts.examples import select_examples
from agentflow.prompts.messages import split_reasoning


class GenerateConfig(NodeConfig):
    query: str = "question"
    """State field holding the user's question."""
    documents: str | None = "chunks"
    """State field holding the retrieved chunks, best first; ``null`` for none."""
    history: str | None = None
    """State field holding the conversation so far (messages); ``null`` for none."""
    output: str = "answer"
    """State field written with the answer."""
    model: str = "large"
    """Model alias."""
    sampling: Sampling = Field(default_factory=Sampling)
    """Sampling controls; ``max_tokens`` is also what the context budget keeps free."""
    prompt: str = DEFAULT_TEMPLATE
    """Template of the augmented prompt (blocks ``system``, ``user``, ``example_*``)."""
    instructions: str = ""
    """Extra system instructions, appended to the template's."""
    instructions_from: str | None = None
    """State field with more instructions for this call, when set: a loop's feedback, for
    example (the failing checks' reasons, so that a retry knows what to fix)."""
    examples: list[Example] = Field(default_factory=list)
    """Fixed few-shot examples."""
    few_shot_k: int = Field(0, ge=0, le=20)
    """How many more examples to retrieve from the example store by similarity to the query."""
    chain_of_thought: bool = False
    """Ask for reasoning in a scratchpad first; it is kept out of the answer and the history."""
    history_share: float = Field(0.25, ge=0.0, le=1.0)
    """Share of the free context that recent history may take before documents are placed."""
    history_output: str | None = None
    """State field that receives the new turn (question, answer) as messages."""
    samples_output: str | None = None
    """With ``sampling.n > 1``: state field that receives every sampled answer."""
    citation_grammar: bool = False
    """Hold the answer to one to three pieces of text each followed by ``[DOC n]`` citations of
    the documents in the prompt, or the abstention sentence alone: a grammar the model's server
    enforces while decoding, for models whose entry accepts one (``grammars: true``, as small
    local models need); other models get the prompt's instructions alone."""


def answer_constraint(cfg: GenerateConfig, inputs: PromptInputs) -> OutputConstraint | None:
    """The citation grammar of the documents kept in the prompt, when the node asks for one."""
    if not cfg.citation_grammar or not inputs.documents or cfg.chain_of_thought:
        return None  # nothing to cite; a scratchpad is free text the grammar would refuse
    return citation_grammar([n for n, _ in inputs.numbered_documents()])


def _writes(cfg: GenerateConfig) -> tuple[str, ...]:
    extra = tuple(f for f in (cfg.history_output, cfg.samples_output) if f)
    return (cfg.output, *extra)


def _reads(cfg: GenerateConfig) -> tuple[str, ...]:
    return tuple(f for f in (cfg.query, cfg.documents, cfg.history, cfg.instructions_from) if f)


def instructions_of(state: Any, cfg: GenerateConfig, node_name: str) -> str:
    """The configured instructions plus those the state holds in ``instructions_from``."""
    extra = read_state(state, cfg.instructions_from, node_name) if cfg.instructions_from else None
    if hasattr(extra, "feedback"):
        extra = extra.feedback()
    parts = [cfg.instructions.strip(), str(extra).strip() if extra else ""]
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Drawn:
    """What the answer step drew: the question it answered and the answers, scratchpads removed."""

    query: str
    answers: list[str]
    sampled_by: str
    """``one``: a single request (with the sampling's ``n`` as the provider takes it); ``n``,
    ``concurrent`` or ``n+concurrent``: how :func:`~agentflow.checks.sample_answers` drew
    several."""
    model: str
    """The model that answered the single request (empty when several were drawn)."""


async def answer_step(state: Any, cfg: GenerateConfig, ctx: RunContext[Any], *, n: int | None = None,
                      max_concurrency: int = 16) -> Drawn:
    """The answer step that ``generate`` and ``self_consistency`` share: assemble the augmented
    prompt within the context budget, send it, and return the answers without their scratchpads.

    With ``n`` (self-consistency), ``n`` answers are drawn by
    :func:`~agentflow.checks.sample_answers`: one request with ``n`` where the provider accepts
    it, otherwise ``n`` concurrent requests with their own seeds. Without it, one request.
    """
    query = str(read_state(state, cfg.query, ctx.node))
    documents = chunks_of(read_state(state, cfg.documents, ctx.node), ctx.node) if cfg.documents else []
    history = (read_state(state, cfg.history, ctx.node) or []) if cfg.history else []
    store = ctx.examples if cfg.few_shot_k else None
    examples = await select_examples(cfg.examples, store, query, cfg.few_shot_k)
    prompt = AugmentedPrompt(
        query=query, documents=documents, history=history, examples=examples,
        instructions=instructions_of(state, cfg, ctx.node), chain_of_thought=cfg.chain_of_thought,
        template=cfg.prompt,
    )
    await ctx.models.ready(cfg.model)  # a model server started now counts the prompt's tokens
    messages, inputs, report = assemble(
        prompt, ctx.prompts, ctx.models, cfg.model, cfg.sampling, history_share=cfg.history_share
    )
    constraint = answer_constraint(cfg, inputs)
    if n is not None:
        raw, how = await sample_answers(ctx.models, cfg.model, messages, n=n, sampling=cfg.sampling,
                                        inputs=inputs, tracer=ctx.tracer, node=ctx.node,
                                        max_concurrency=max_concurrency, constraint=constraint)
        model = ""
    else:
        response = await ctx.models.complete(
            cfg.model, messages, sampling=cfg.sampling, inputs=inputs, constraint=constraint,
            tracer=ctx.tracer, node=ctx.node,
            trace_data={"context_budget": report.as_dict(), "few_shot": len(examples)},
        )
        raw, how, model = list(response.all_choices()), "one", response.model
    return Drawn(query, [split_reasoning(text)[0] for text in raw], how, model)


def new_turn(query: str, answer: str) -> list[Any]:
    """The turn a ``history_output`` field receives: the question and the answer, as messages."""
    # the history's message types, imported when a node writes a turn
    from langchain_core.messages import AIMessage, HumanMessage

    return [HumanMessage(content=query), AIMessage(content=answer)]


@node("generate", reads=_reads, writes=_writes)
async def generate(state: Any, cfg: GenerateConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Answer the question from the documents with [DOC n] citations, within the context budget."""
    drawn = await answer_step(state, cfg, ctx)
    answers = drawn.answers
    if not answers[0]:
        raise ModelError(
            f"node {ctx.node!r}: model alias {cfg.model!r} ({drawn.model}) returned no answer "
            "outside its scratchpad; raise max_tokens or turn chain_of_thought off"
        )
    out: dict[str, Any] = {cfg.output: answers[0]}
    if cfg.samples_output:
        out[cfg.samples_output] = answers
    if cfg.history_output:
        out[cfg.history_output] = new_turn(drawn.query, answers[0])
    return out
