"""A project of small workflows for the server's tests, and a server on a free port of 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STEPS = '''
import asyncio, json, os
from pathlib import Path


def echo(inputs):
    history = inputs.get("history") or []
    turn = len(history) // 2 + 1
    said = [getattr(m, "content", None) or (m.get("content") if isinstance(m, dict) else str(m)) for m in history]
    return {"answer": f"turn {turn}: {inputs['question']} (n={inputs.get('n')}) [DOC 1]",
            "citations": [{"doc": 1, "source": "docs/echo.md", "quote": "echo"}],
            "said": said}


async def first(inputs):
    Path("first.log").open("a").write("x")
    return {"step": "first"}


async def wait(inputs):
    await asyncio.sleep(float(os.environ.get("AF_TEST_WAIT_S", "30")))
    return {"answer": "waited"}


def second(inputs):
    if Path("fail.flag").exists():
        raise RuntimeError("the second step failed (fail.flag is there)")
    return {"answer": f"done after {inputs['step']}"}
'''

ECHO = """
version: 1
name: echo
description: Echoes the question with its turn number.
inputs:
  question: {type: string, description: The user's question.}
  history: {type: list, default: [], reducer: messages, description: The conversation so far.}
  n: {type: integer, default: 1, description: A number.}
outputs: [answer, citations, said]
nodes:
  reply: {type: python, function: af_api_steps:echo, reads: [question, history, n], writes: [answer, citations, said]}
flow: [reply]
"""

SLOW = """
version: 1
name: slow
inputs:
  question: {type: string}
outputs: [answer]
nodes:
  first: {type: python, function: af_api_steps:first, reads: [question], writes: [step]}
  wait: {type: python, function: af_api_steps:wait, reads: [step], writes: [answer]}
flow: [first, wait]
"""

FLAKY = """
version: 1
name: flaky
inputs:
  question: {type: string}
outputs: [answer]
nodes:
  first: {type: python, function: af_api_steps:first, reads: [question], writes: [step]}
  second: {type: python, function: af_api_steps:second, reads: [step], writes: [answer]}
flow: [first, second]
"""

TIMEOUT = """
version: 1
name: timeout
inputs:
  question: {type: string}
outputs: [answer]
nodes:
  chat: {type: chat, input: question, output: answer, model: stuck}
flow: [chat]
"""


def project(root: Path, *, hanging_port: int | None = None) -> Path:
    """Write the test project into ``root``: the workflows, their python steps, agentflow.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "af_api_steps.py").write_text(STEPS)
    config: dict[str, Any] = {"python": {"allow": ["af_api_steps"]}}
    if hanging_port is not None:
        config["models"] = {"retries": {"max_attempts": 1}, "profiles": {"offline": {"aliases": {
            "stuck": {"model": "openai/stuck-model", "api_base": f"http://127.0.0.1:{hanging_port}/v1",
                      "api_key_env": "AF_TEST_NO_KEY", "timeout_s": 0.5}}}}}
    (root / "agentflow.yaml").write_text(json.dumps(config))
    for name, text in {"echo": ECHO, "slow": SLOW, "flaky": FLAKY, "timeout": TIMEOUT}.items():
        (root / f"{name}.yaml").write_text(text)
    return root


class HangingServer:
    """A TCP server that accepts connections and never answers: a model that times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` pairs of a Server-Sent Events stream, read line by line."""
    kind, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
