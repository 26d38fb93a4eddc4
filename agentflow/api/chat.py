"""The OpenAI-compatible endpoint: ``POST /v1/chat/completions`` where ``model`` names a served workflow.

Any OpenAI client or chat UI talks to a workflow this way: the last user message is the workflow's question
input, the messages before it its ``history`` (system messages are left out: the workflow's prompts say
what the assistant is), and the workflow's answer is the reply. ``user`` is recorded with the run and keeps
a user on one A/B variant. Sampling parameters (``temperature``, ``max_tokens``, ...) are accepted and not
used: the workflow's nodes set their own.

The answer's citations travel three ways: in the text (the answer's ``[DOC n]`` markers, and a "Sources"
list under it), as ``citations`` (the cited sources, as Perplexity's API gives them) and, in full, under
``agentflow`` with the run id (for feedback), thread, variant and the workflow's other outputs. A streamed
reply sends the role at once, a comment line while the workflow runs (proxies keep the stream open), the
text, and a last chunk with ``finish_reason``, the citations and the run id; ``stream_options.include_usage``
adds the usage chunk. Errors are OpenAI's ``{"error": {...}}``, in a stream too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agentflow.api.app import SSE_HEADERS, ApiError, served_workflow, with_heartbeat
from agentflow.api.runs import Outcome, Runner, message_dict
from agentflow.api.settings import ServeSettings
from agentflow.api.workflows import ServedWorkflow


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What OpenAI clients send; fields a workflow has no use for are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=200)
    n: int = Field(1, ge=1, le=1)


def add_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "agentflow",
             "description": w.spec.description.strip()}
            for name, w in request.app.state.served.items()]}

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(request: Request, body: ChatCompletionRequest) -> Any:
        try:
            served = served_workflow(request, body.model)
        except ApiError as exc:
            raise ApiError(404, "invalid_request_error", str(exc), param="model", code="model_not_found") from None
        inputs = chat_inputs(served, body.messages)
        runner: Runner = request.app.state.runner
        created = int(time.time())
        if not body.stream:
            async with runner.plan(served, inputs, user_id=body.user) as plan:
                outcome = await runner.run(plan)
            if outcome.status != "ok":
                return JSONResponse(_error(outcome), outcome.http_status)
            return completion(served, outcome, created)
        await runner.check(served, inputs)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        ident = f"chatcmpl-{uuid.uuid4().hex}"

        async def chunks() -> AsyncIterator[str]:
            yield _data(_chunk(served.name, ident, created, {"role": "assistant", "content": ""}))
            async with runner.plan(served, inputs, user_id=body.user) as plan:
                async for item in with_heartbeat(runner.stream(plan), settings.stream_heartbeat_s):
                    if isinstance(item, Outcome):
                        for text in _stream_end(served, item, ident, created, include_usage):
                            yield text
                    elif item is None or item.kind.endswith("_finished"):
                        yield ": running\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream", headers=SSE_HEADERS)


def chat_inputs(served: ServedWorkflow, messages: list[ChatMessage]) -> dict[str, Any]:
    """The workflow's inputs from a chat: the last user message, and the conversation before it."""
    if served.question is None:
        raise ApiError(400, "invalid_request_error", f"workflow {served.name!r} has no text input to put a "
                       "chat message in; call POST /workflows/{name}/runs with its inputs instead", param="model")
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise ApiError(400, "invalid_request_error", "messages hold no user message to answer", param="messages")
    inputs: dict[str, Any] = {served.question: messages[last].text()}
    if served.history:
        inputs[served.history] = [message_dict({"role": m.role, "content": m.text()})
                                  for m in messages[:last] if m.role in ("user", "assistant")]
    return inputs


def reply(served: ServedWorkflow, outcome: Outcome) -> tuple[str, list[dict[str, Any]]]:
    """The reply's text (the answer and its sources) and the cited sources."""
    answer = outcome.outputs.get(served.answer or "", "")
    text = answer if isinstance(answer, str) else str(answer)
    citations = outcome.outputs.get("citations") or []
    cited = [c for c in citations if isinstance(c, dict)]
    if cited:
        lines = [f"[DOC {c.get('doc')}] {c.get('source')}" for c in cited]
        text += "\n\nSources:\n" + "\n".join(dict.fromkeys(lines))
    return text, cited


def _agentflow(outcome: Outcome, cited: list[dict[str, Any]]) -> dict[str, Any]:
    return {"run_id": outcome.run_id, "thread_id": outcome.thread_id, "variant": outcome.variant,
            "citations": cited, "outputs": outcome.outputs}


def _sources(cited: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(c.get("source")) for c in cited if c.get("source")))


def _usage(outcome: Outcome) -> dict[str, int]:
    u = outcome.usage
    return {"prompt_tokens": u.get("prompt_tokens", 0), "completion_tokens": u.get("completion_tokens", 0),
            "total_tokens": u.get("total_tokens", 0)}


def completion(served: ServedWorkflow, outcome: Outcome, created: int) -> dict[str, Any]:
    text, cited = reply(served, outcome)
    return {"id": f"chatcmpl-{outcome.run_id}", "object": "chat.completion", "created": created,
            "model": served.name, "system_fingerprint": outcome.variant,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(outcome), "citations": _sources(cited), "agentflow": _agentflow(outcome, cited)}


def _chunk(model: str, ident: str, created: int, delta: dict[str, Any], finish: str | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}


def _stream_end(served: ServedWorkflow, outcome: Outcome, ident: str, created: int,
                include_usage: bool) -> list[str]:
    if outcome.status != "ok":
        return [_data(_error(outcome)), "data: [DONE]\n\n"]
    text, cited = reply(served, outcome)
    out = [_data(_chunk(served.name, ident, created, {"content": text})),
           _data(_chunk(served.name, ident, created, {}, "stop", citations=_sources(cited),
                        agentflow=_agentflow(outcome, cited)))]
    if include_usage:
        out.append(_data({"id": ident, "object": "chat.completion.chunk", "created": created,
                          "model": served.name, "choices": [], "usage": _usage(outcome)}))
    return [*out, "data: [DONE]\n\n"]


def _error(outcome: Outcome) -> dict[str, Any]:
    return {"error": {"message": outcome.error, "type": outcome.error_type, "code": outcome.error_type,
                      "param": None, "run_id": outcome.run_id}}


def _data(payload: dict[str, Any]) -> str:
    import json

    return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n"
