"""The augmented prompt's structure, few-shot selection, and its structured inputs."""

from __future__ import annotations

from agentflow.documents import Chunk, Example
from agentflow.prompts import AugmentedPrompt, PromptStore, StaticExampleStore, select_examples

DOCS = [Chunk(id="a", text="Alpha text.", source="a.md", title="Alpha"),
        Chunk(id="b", text="Beta text.", source="")]


def test_messages_come_in_the_course_order() -> None:
    prompt = AugmentedPrompt(
        query="Which?", documents=DOCS, history=[("user", "earlier"), ("assistant", "reply")],
        examples=[Example(question="Ex?", answer="Ex [DOC 1].", reasoning="because")],
        instructions="Answer in one sentence.", chain_of_thought=True,
    )
    messages = prompt.messages(PromptStore())
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "Answer in one sentence." in system and "<scratchpad>" in system
    assert messages[2]["content"] == "<scratchpad>because</scratchpad>\nEx [DOC 1]."
    last = messages[-1]["content"]
    assert last.index("[DOC 1] Alpha text.") < last.index("[DOC 2] Beta text.") < last.index("Question: Which?")
    assert "Source: a.md (Alpha)" in last and "Source: unknown" in last


def test_without_chain_of_thought_examples_show_no_reasoning() -> None:
    prompt = AugmentedPrompt(query="q", examples=[Example(question="E?", answer="A.", reasoning="r")])
    messages = prompt.messages(PromptStore())
    assert messages[2]["content"] == "A." and "scratchpad" not in messages[0]["content"]
    assert "(no documents were retrieved)" in messages[-1]["content"]


def test_kept_documents_keep_their_numbers_and_inputs_follow() -> None:
    prompt = AugmentedPrompt(query="q", documents=DOCS)
    last = prompt.messages(PromptStore(), keep=[1])[-1]["content"]
    assert "[DOC 2] Beta text." in last and "[DOC 1]" not in last
    inputs = prompt.inputs([1])
    assert inputs.documents == (DOCS[1],) and inputs.doc_numbers == (2,)
    assert inputs.numbered_documents() == [(2, DOCS[1])]


async def test_examples_fixed_then_retrieved_without_duplicates() -> None:
    store = StaticExampleStore([Example(question="How to ingest PDFs?", answer="1"),
                                Example(question="What is BM25?", answer="2"),
                                Example(question="How to ingest markdown files?", answer="3")])
    assert [e.answer for e in await store.similar("ingest markdown", 2)] == ["3", "1"]
    fixed = [Example(question="How to ingest markdown files?", answer="3")]
    chosen = await select_examples(fixed, store, "ingest markdown", 2)
    assert [e.answer for e in chosen] == ["3", "1"]
    assert await select_examples(fixed, None, "x", 5) == fixed
