"""Each built-in prompt's inputs are typed, and the type names exactly what its template uses."""

from __future__ import annotations

import pytest

from agentflow.documents import Chunk
from agentflow.models.types import Label
from agentflow.prompts import (
    BUILTIN_INPUTS,
    AnswerInputs,
    AugmentedPrompt,
    ClassifyInputs,
    PromptStore,
    QueriesInputs,
)
from agentflow.prompts.inputs import LabelInputs


@pytest.mark.parametrize("template", sorted(BUILTIN_INPUTS))
def test_a_builtin_templates_input_type_declares_exactly_the_variables_it_uses(
        template: str) -> None:
    typed = BUILTIN_INPUTS[template]
    declared = set(typed.__required_keys__) | set(typed.__optional_keys__)  # type: ignore[attr-defined]
    assert declared == PromptStore().variables(template), template


def test_every_builtin_template_has_its_input_type() -> None:
    store = PromptStore()
    builtin = {name for name in store.names() if name.startswith("prompts/")}
    assert builtin <= set(BUILTIN_INPUTS), builtin - set(BUILTIN_INPUTS)


def test_the_augmented_prompt_fills_the_answer_inputs() -> None:
    prompt = AugmentedPrompt(query="Which?", documents=[Chunk(id="a", text="Alpha.", source="a.md")])
    variables: AnswerInputs = prompt.variables()
    assert set(variables) == AnswerInputs.__required_keys__
    assert variables["documents"] == [
        {"n": 1, "text": "Alpha.", "source": "a.md", "title": "", "heading": ""}]


def test_typed_inputs_render_their_templates() -> None:
    store = PromptStore()
    queries: QueriesInputs = {"question": "How do loops stop?", "n": 2}
    assert "How do loops stop?" in store.messages("prompts/multi_query.j2", queries)[-1]["content"]
    label = Label(name="knowledge", description="docs questions", examples=("how?",))
    assert set(label.model_dump()) == LabelInputs.__required_keys__  # what the node sends
    classify: ClassifyInputs = {"text": "hi there", "out_of_scope": None, "labels": [
        {"name": "knowledge", "description": "docs questions", "examples": ("how?",),
         "passages": ()}]}
    system, user = store.messages("prompts/classify.j2", classify)
    assert "- knowledge: docs questions" in system["content"] and user["content"] == "hi there"
