"""The augmented prompt of the course, assembled within the context budget.

Messages, in order: the system instructions (use only the retrieved documents, cite them as
``[DOC n]``, say when the information is missing; optionally reason in a scratchpad), the few-shot
examples as user/assistant pairs, the conversation history (reasoning stripped), and a last user
message with the retrieved documents as ``[DOC n] text`` plus ``Source:``, then the question.

``[DOC n]`` numbers follow the order of the documents given (``n`` is the position plus one) and
stay the same when the budget leaves some out, so a citation always points at the same chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentflow.documents import Chunk, Example
from agentflow.models.budget import BudgetReport, fit
from agentflow.models.sampling import Sampling
from agentflow.models.types import Message, PromptInputs
from agentflow.prompts.inputs import AnswerInputs, DocumentInputs
from agentflow.prompts.messages import strip_history
from agentflow.prompts.templates import PromptSource

DEFAULT_TEMPLATE = "prompts/rag_answer.j2"


class TokenRouter(Protocol):
    """What the budget needs of the model router: the limit and the token counts of an alias."""

    def prompt_limit(self, alias: str, sampling: Sampling | None = None) -> int: ...
    def context_window(self, alias: str) -> int: ...
    def count_tokens(self, alias: str, messages: Sequence[Message]) -> int: ...
    def count_text(self, alias: str, text: str) -> int: ...


@dataclass(frozen=True, slots=True)
class AugmentedPrompt:
    """What goes into an augmented prompt; :meth:`messages` renders it with a template."""

    query: str
    documents: Sequence[Chunk] = ()
    history: Sequence[Any] = ()
    """Earlier turns: message dicts, ``(role, content)`` pairs or langchain-core messages."""
    examples: Sequence[Example] = ()
    instructions: str = ""
    chain_of_thought: bool = False
    template: str = DEFAULT_TEMPLATE

    def variables(self, keep: Sequence[int] | None = None) -> AnswerInputs:
        """The template's inputs, with only the documents at indexes ``keep`` (all by default)."""
        indexes = range(len(self.documents)) if keep is None else keep
        docs: list[DocumentInputs] = [
            {
                "n": i + 1,
                "text": self.documents[i].text,
                "source": self.documents[i].source,
                "title": self.documents[i].title,
                "heading": self.documents[i].heading,
            }
            for i in indexes
        ]
        return {
            "query": self.query,
            "documents": docs,
            "instructions": self.instructions,
            "chain_of_thought": self.chain_of_thought,
        }

    def messages(
        self,
        store: PromptSource,
        *,
        history: Sequence[Message] | None = None,
        keep: Sequence[int] | None = None,
    ) -> list[Message]:
        """System, few-shot pairs, history, then the documents and the question."""
        variables = self.variables(keep)
        rendered = store.messages(self.template, variables)
        system = [m for m in rendered if m["role"] == "system"]
        user = [m for m in rendered if m["role"] != "system"]
        shots: list[Message] = []
        for example in self.examples:
            shots += self._example(store, example, variables)
        turns = list(history) if history is not None else strip_history(self.history)[0]
        return [*system, *shots, *turns, *user]

    def _example(self, store: PromptSource, example: Example,
                 variables: AnswerInputs) -> list[Message]:
        values: AnswerInputs = {**variables, "example": example}
        if store.has_block(self.template, "example_user"):
            question = store.render_block(self.template, "example_user", values)
            answer = store.render_block(self.template, "example_assistant", values)
        else:
            question, answer = example.question, example.answer
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    def inputs(self, keep: Sequence[int] | None = None) -> PromptInputs:
        """The structured fields of the prompt, for backends that answer from them."""
        indexes = list(range(len(self.documents))) if keep is None else list(keep)
        return PromptInputs(
            task="generate",
            query=self.query,
            documents=tuple(self.documents[i] for i in indexes),
            doc_numbers=tuple(i + 1 for i in indexes),
            examples=tuple(self.examples),
        )


def assemble(
    prompt: AugmentedPrompt,
    store: PromptSource,
    router: TokenRouter,
    alias: str,
    sampling: Sampling | None = None,
    *,
    history_share: float = 0.25,
) -> tuple[list[Message], PromptInputs, BudgetReport]:
    """Render ``prompt`` for ``alias`` within its context budget.

    Returns the messages, the structured inputs of what was kept, and the budget report (what
    was dropped: oldest turns, lowest-ranked chunks, reasoning stripped from history).
    """
    history, stripped = strip_history(prompt.history)

    def build(turns: list[Message], keep: list[int]) -> list[Message]:
        return prompt.messages(store, history=turns, keep=keep)

    messages, report = fit(
        build=build,
        history=history,
        documents=prompt.documents,
        count=lambda m: router.count_tokens(alias, m),
        count_text=lambda t: router.count_text(alias, t),
        window=router.context_window(alias),
        limit=router.prompt_limit(alias, sampling),
        history_share=history_share,
        stripped_reasoning=stripped,
    )
    return messages, prompt.inputs(report.kept_documents), report
