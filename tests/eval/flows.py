"""Workflows and python-node functions the evaluation tests run (allowed as `tests.eval.flows`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

ALLOWED = "tests.eval.flows"

CORPUS = {
    "cats.md": "Cats sleep for about fifteen hours a day. A group of cats is called a clowder.",
    "dogs.md": "Dogs were domesticated from wolves. A young dog is called a puppy.",
    "owls.md": "Owls hunt at night. An owl can turn its head about 270 degrees.",
}

ITEMS = [
    {"id": "cats", "question": "How many hours do cats sleep a day?", "answers": ["fifteen hours"],
     "gold_doc_ids": ["cats.md"], "answerable": True, "route": "knowledge"},
    {"id": "owls", "question": "How far can an owl turn its head?", "answers": ["270 degrees"],
     "gold_doc_ids": ["owls.md"], "answerable": True, "route": "knowledge"},
    {"id": "crash", "question": "crash the workflow please", "answers": ["nothing"],
     "route": "knowledge"},
    {"id": "whales", "question": "How long do whales live?", "answerable": False,
     "route": "knowledge"},
    {"id": "hello", "question": "hello there, good morning!", "route": "chitchat"},
]

WORKFLOW = """
version: 1
name: tiny_rag
inputs:
  question: {type: string}
state:
  chunks: {type: list}
  checks: {type: object, reducer: merge}
nodes:
  gate: {type: python, function: "tests.eval.flows:gate", reads: [question], writes: []}
  classify:
    type: classify
    input: question
    output: route
    model: small
    threshold: 0.05
    labels:
      knowledge:
        description: a question about animals such as cats, dogs, owls and whales
        examples: ["How many hours do dogs sleep?", "How far can a cat jump?", "How long do owls live?"]
      chitchat:
        description: greetings and small talk
        examples: ["hello there", "good morning", "hi!", "thanks a lot"]
  search: {type: retrieve, collection: knowledge, input: question, output: chunks, top_k: 3}
  answer: {type: generate, query: question, documents: chunks, output: answer, model: large}
  faithful: {type: check, kind: faithfulness, documents: chunks}
  chat: {type: reply, text: "Hello! Ask me about animals."}
flow:
  - gate
  - classify
  - route:
      on: route
      cases:
        knowledge: [search, answer, faithful]
      default: chat
"""

SLOW: dict[str, asyncio.Event] = {}
"""Questions whose gate waits on an event (a test sets it, or cancels the evaluation)."""


async def gate(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail the run for a question that says crash; wait for a test's event for a slow one."""
    question = str(inputs["question"])
    if "crash" in question:
        raise RuntimeError(f"cannot answer {question!r}")
    event = SLOW.get(question)
    if event is not None:
        await event.wait()
    return {}


def quote(inputs: dict[str, Any]) -> dict[str, Any]:
    """Answer with the first sentence of the best chunk, cited (no model needed)."""
    chunks = inputs.get("chunks") or []
    if "crash" in str(inputs.get("question")):
        raise RuntimeError("cannot answer a crash")
    if not chunks:
        return {"answer": "I don't know."}
    first = chunks[0]
    text = first["text"] if isinstance(first, dict) else first.text
    return {"answer": text.split(". ")[0].rstrip(".") + ". [DOC 1]"}


CLI_WORKFLOW = """
version: 1
name: quote_rag
inputs:
  question: {type: string}
state:
  chunks: {type: list}
collections:
  knowledge:
    source: corpus.jsonl
    embedder: hash
    field_map: {text: text, id: doc_id}
nodes:
  search: {type: retrieve, collection: knowledge, input: question, output: chunks, top_k: 3}
  answer: {type: python, function: "tests.eval.flows:quote", reads: [question, chunks], writes: [answer]}
flow: [search, answer]
"""


def write_project(folder: Path) -> Path:
    """A project for the CLI tests: the workflow, its corpus (.jsonl) and a dataset; returns the
    dataset file."""
    (folder / "quote_rag.yaml").write_text(CLI_WORKFLOW, encoding="utf-8")
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for name, text in CORPUS.items():
            handle.write(json.dumps({"doc_id": name, "text": text}) + "\n")
    data = folder / "questions.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for row in ITEMS:
            handle.write(json.dumps({k: v for k, v in row.items() if k != "route"}) + "\n")
    return data
