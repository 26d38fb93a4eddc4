"""Prompts: Jinja2 templates under ``prompts/``, the augmented prompt, few-shot, chain-of-thought.

Names are loaded on first use.
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see
    from agentflow.prompts.augmented import AugmentedPrompt, DEFAULT_TEMPLATE, assemble
    from agentflow.prompts.examples import ExampleStore, StaticExampleStore, select_examples
    from agentflow.prompts.inputs import (
        BUILTIN_INPUTS,
        AnswerInputs,
        ChatInputs,
        ClassifyInputs,
        QueriesInputs,
    )
    from agentflow.prompts.messages import (
        has_reasoning,
        split_reasoning,
        strip_history,
        to_message,
        to_messages,
    )
    from agentflow.prompts.templates import (
        PromptSource,
        PromptStore,
        template_variables,
        unknown_variables,
    )

_EXPORTS: dict[str, str] = {
    "DEFAULT_TEMPLATE": "agentflow.prompts.augmented",
    "AnswerInputs": "agentflow.prompts.inputs",
    "AugmentedPrompt": "agentflow.prompts.augmented",
    "BUILTIN_INPUTS": "agentflow.prompts.inputs",
    "ChatInputs": "agentflow.prompts.inputs",
    "ClassifyInputs": "agentflow.prompts.inputs",
    "ExampleStore": "agentflow.prompts.examples",
    "PromptSource": "agentflow.prompts.templates",
    "PromptStore": "agentflow.prompts.templates",
    "QueriesInputs": "agentflow.prompts.inputs",
    "StaticExampleStore": "agentflow.prompts.examples",
    "assemble": "agentflow.prompts.augmented",
    "has_reasoning": "agentflow.prompts.messages",
    "select_examples": "agentflow.prompts.examples",
    "split_reasoning": "agentflow.prompts.messages",
    "strip_history": "agentflow.prompts.messages",
    "template_variables": "agentflow.prompts.templates",
    "to_message": "agentflow.prompts.messages",
    "to_messages": "agentflow.prompts.messages",
    "unknown_variables": "agentflow.prompts.templates",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


