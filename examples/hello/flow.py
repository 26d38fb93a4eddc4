"""A first flow: classify a message, then route it; knowledge questions loop until answered well.

Run it:  agentflow run examples.hello.flow:flow -i message="What is a loop?"
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from pydantic import BaseModel

import agentflow as af


class Chat(BaseModel):
    message: str
    kind: str = ""
    topics: list[str] = []
    topic: str = ""
    notes: Annotated[list[str], operator.add] = []
    reply: str = ""
    drafts: int = 0


GLOSSARY = {
    "loop": "a loop repeats its body until a check passes, at most max_iterations times",
    "route": "a route runs one case, chosen by a label",
    "map": "a map runs a node once per item of a list, at most K at a time",
    "parallel": "parallel runs branches concurrently and waits for all of them",
}


@af.node("hello_classify", reads=("message",), writes=("kind", "topics"))
async def classify(state: Chat, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Knowledge question when it names a shape; greeting otherwise."""
    words = {w.strip("?.!,").lower() for w in state.message.split()}
    topics = sorted(words & GLOSSARY.keys())
    return {"kind": "question" if topics else "greeting", "topics": topics}


@af.node("hello_lookup", reads=("topic",), writes=("notes",))
async def lookup(state: Chat, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Look one topic up in the glossary."""
    return {"notes": [f"{state.topic}: {GLOSSARY[state.topic]}"]}


@af.node("hello_answer", reads=("notes", "drafts"), writes=("reply", "drafts"))
async def answer(state: Chat, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Write the reply from the notes; each draft is one loop pass."""
    return {"reply": "; ".join(state.notes), "drafts": state.drafts + 1}


@af.node("hello_greet", reads=("message",), writes=("reply",))
async def greet(state: Chat, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Answer a greeting."""
    return {"reply": "Hello! Ask me about a loop, a route, a map or parallel branches."}


flow = af.Flow(
    "hello",
    state=Chat,
    steps=[
        classify,
        af.route(
            on="kind",
            cases={
                "question": af.sequence(
                    af.map(over="topics", item="topic", node=lookup, max_concurrency=4),
                    af.loop(answer, until=lambda s: bool(s.reply), max_iterations=2),
                ),
            },
            default=greet,
        ),
    ],
)
