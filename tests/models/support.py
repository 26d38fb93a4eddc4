"""Test support: a local HTTP server that records what LiteLLM sends, and a tracer double."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any



@dataclass
class Captured:
    """One HTTP request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def openai_reply(text: str = "hello", *, n: int = 1, prompt_tokens: int = 11, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i in range(n)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def anthropic_reply(text: str = "hello") -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }


def ollama_reply(text: str = "hello") -> dict[str, Any]:
    return {
        "model": "llama3.2", "created_at": "2026-11-26T00:00:00Z",
        "message": {"role": "assistant", "content": text}, "done": True,
        "prompt_eval_count": 9, "eval_count": 2,
    }


class RecordingServer:
    """An HTTP server on 127.0.0.1 that answers from a script and records every request.

    Replies are taken in order from ``script``; when it is empty, ``default(path)`` answers
    (a successful reply in the dialect the path implies).
    """

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.script: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                with server._lock:
                    server.requests.append(
                        Captured("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    reply = server.script.pop(0) if server.script else server.default(self.path)
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                payload = json.dumps(reply.body if reply.body is not None else {}).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def default(self, path: str) -> Reply:
        if path.endswith("/messages"):
            return Reply(body=anthropic_reply())
        if path.startswith("/api/chat"):
            return Reply(body=ollama_reply())
        return Reply(body=openai_reply())

    def reply(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def chat_requests(self) -> list[Captured]:
        return [r for r in self.requests if not r.path.startswith("/api/show")]


class Recorder:
    """A tracer double: keeps what the router records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, kind: str, name: str, **kwargs: Any) -> None:
        self.records.append({"kind": kind, "name": name, **kwargs})

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1]
