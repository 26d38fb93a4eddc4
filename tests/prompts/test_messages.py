"""History normalisation and chain-of-thought stripping."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agentflow.errors import ConfigError
from agentflow.prompts import has_reasoning, split_reasoning, strip_history, to_messages


def test_every_accepted_shape_becomes_a_plain_message() -> None:
    history = [SystemMessage(content="sys"), HumanMessage(content="hi"), ("assistant", "hello"),
               {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image_url"}]},
               ToolMessage(content="tool output", tool_call_id="1")]
    assert to_messages(history) == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "part one"}]
    with pytest.raises(ConfigError, match="unknown message role 'robot'"):
        to_messages([("robot", "beep")])


@pytest.mark.parametrize(
    ("reply", "answer", "scratchpad"),
    [
        ("<scratchpad>DOC 2 says so.</scratchpad>\nParis [DOC 2].", "Paris [DOC 2].", "DOC 2 says so."),
        ("<think>hmm</think>Yes.<thinking>more</thinking>", "Yes.", "hmm\nmore"),
        ("Plain answer.", "Plain answer.", ""),
        ("Answer first. <scratchpad>cut off mid-thought", "Answer first.", "cut off mid-thought"),
        ("<scratchpad>x</scratchpad><answer>Tagged [DOC 1].</answer>", "Tagged [DOC 1].", "x"),
    ],
)
def test_the_scratchpad_is_split_from_the_answer(reply: str, answer: str, scratchpad: str) -> None:
    assert split_reasoning(reply) == (answer, scratchpad)


def test_reasoning_is_stripped_from_history_and_counted() -> None:
    history = [
        HumanMessage(content="q1"),
        AIMessage(content="<scratchpad>secret</scratchpad>a1"),
        HumanMessage(content="q2"),
        AIMessage(content="a2", additional_kwargs={"reasoning_content": "provider reasoning"}),
        {"role": "assistant", "content": "<think>t</think>a3"},
    ]
    cleaned, stripped = strip_history(history)
    assert [m["content"] for m in cleaned] == ["q1", "a1", "q2", "a2", "a3"]
    assert stripped == 3
    assert not has_reasoning({"role": "assistant", "content": "a1"})
