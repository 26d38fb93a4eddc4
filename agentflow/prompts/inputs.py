"""The inputs of each built-in prompt, typed: what a template receives, one type per task.

A template's variables are checked when it renders (an undefined one is an error, never an empty
string); these types say the same before it runs, to a type checker and to a reader of the code
that fills them. ``BUILTIN_INPUTS`` maps each built-in template to its type, and the tests hold the
two together: a template that starts using a variable its type does not declare fails them.
(Optional keys are declared in ``total=False`` classes rather than with ``NotRequired``, which
Python 3.11 does not see under postponed annotations.)

>>> variables: QueriesInputs = {"question": "How do loops stop?", "n": 3}
>>> store.messages("prompts/multi_query.j2", variables)

A workflow's own templates (the ``llm`` node's) take free variables: whatever the node's config
maps from the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from agentflow.documents import Example


class DocumentInputs(TypedDict):
    """One retrieved passage as the answer template shows it: ``[DOC n]`` and where it is from."""

    n: int
    text: str
    source: str
    title: str
    heading: str


class _AnswerRequired(TypedDict):
    query: str
    documents: list[DocumentInputs]
    instructions: str
    """What to fix from the last pass (the failing checks' reasons), or nothing."""
    chain_of_thought: bool


class AnswerInputs(_AnswerRequired, total=False):
    """``prompts/rag_answer.j2`` (the ``generate`` node): the augmented prompt."""

    example: Example
    """The solved example being rendered, in the template's ``example_user`` and
    ``example_assistant`` blocks only."""


class LabelInputs(TypedDict):
    """One label a classification may choose (a :class:`~agentflow.models.types.Label` dumped)."""

    name: str
    description: str
    examples: tuple[str, ...]
    passages: tuple[str, ...]


class ClassifyInputs(TypedDict):
    """``prompts/classify.j2`` (the ``classify`` node)."""

    text: str
    labels: list[LabelInputs]
    out_of_scope: str | None
    """The label for what fits none of the others; ``None`` always picks one."""


class QueriesInputs(TypedDict):
    """``prompts/multi_query.j2`` (the ``queries`` node): search queries for a question."""

    question: str
    n: int


class ChatInputs(TypedDict):
    """``prompts/chit_chat.j2`` (the ``chat`` node): a reply without retrieval."""

    message: str
    purpose: str
    """What the assistant is for, so that a reply can point back to it."""


class SummarizeInputs(TypedDict):
    """``prompts/summarize.j2`` (the ``llm`` node of ``graphs/map_reduce_summary.yaml``): one
    passage summarised with respect to a topic."""

    question: str
    """The topic."""
    documents: list[Any]
    """The passage, as a list of one chunk (as the workflow's state holds it)."""


BUILTIN_INPUTS: dict[str, type] = {
    "prompts/rag_answer.j2": AnswerInputs,
    "prompts/classify.j2": ClassifyInputs,
    "prompts/multi_query.j2": QueriesInputs,
    "prompts/chit_chat.j2": ChatInputs,
    "prompts/summarize.j2": SummarizeInputs,
}
"""Built-in template -> the type of its inputs."""
