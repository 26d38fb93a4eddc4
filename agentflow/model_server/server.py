"""The server's OpenAI-compatible HTTP API (FastAPI).

``/v1/completions`` and ``/v1/chat/completions`` (JSON or SSE streams), ``/v1/models``, ``/health`` and
``/metrics`` (Prometheus text). ``/v1/completions`` with ``echo`` and ``logprobs`` also returns every prompt
token's log-probability (vLLM's convention; ``max_tokens: 0`` scores without generating), the prompts of one
request scored in batched passes that share their common prefix (:mod:`agentflow.model_server.scoring`). The
model name in requests is the model directory's name. With an API key set, every route needs
``Authorization: Bearer <key>`` (the API docs ``/docs``, ``/redoc`` and ``/openapi.json`` too) except
``/health`` and ``/metrics``, which stay open for probes and scrapers and show no prompts. A client that
disconnects, streaming or not, has its request aborted and its slots freed.

In front of the routes (:mod:`agentflow.model_server.guards`): the Host header must name this server (DNS
rebinding), then the key, then the body size (413 past ``max_request_bytes``, before parsing). Prompts are
tokenized on a worker thread, never on the event loop, and a prompt with more characters than the context
could ever hold is refused before it is tokenized, so one huge prompt cannot stall ``/health`` or others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentflow.model_server.engine import EngineRequest, StepOutput
from agentflow.model_server.guards import BodyLimit, HostGuard, KeyGuard, allowed_hosts, unchecked_warning
from agentflow.model_server.constrained import CompiledFormat, FormatError
from agentflow.model_server.protocol import (
    ChatRequest,
    CompletionRequest,
    InvalidFieldError,
    TokenizeRequest,
    error_body,
)
from agentflow.model_server.responses import Echo, Kind, ResponseBuilder
from agentflow.model_server.runtime import ServerRuntime
from agentflow.model_server.scheduler import EngineFailedError, QueueFullError, RequestHandle
from agentflow.model_server.scoring import score_prompts
from agentflow.model_server.tokenizer import NoChatTemplateError

log = logging.getLogger(__name__)
OPEN_PATHS = ("/health", "/metrics")
"""Routes that answer without the API key: probes and scrapers; neither shows a prompt."""


class HTTPError(Exception):
    """An error answered in OpenAI's envelope."""

    def __init__(self, status: int, message: str, *, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


def _invalid(param: str | None, message: str) -> HTTPError:
    if param and not message.startswith(param):
        message = f"{param}: {message}"
    return HTTPError(400, message, kind="invalid_request_error", param=param)


def create_app(runtime: ServerRuntime) -> FastAPI:
    """The FastAPI application serving ``runtime`` (starts and stops its scheduler with the app)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.scheduler.start(asyncio.get_running_loop())
        yield
        runtime.scheduler.stop()

    app = FastAPI(title="agentflow model server", lifespan=lifespan)
    settings = runtime.settings
    _add_guards(app, settings.host, settings.allow_hosts, settings.api_key, settings.max_request_bytes)

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse(error_body(exc.message, kind=exc.kind, param=exc.param), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), kind="invalid_request_error"), exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc.errors(), exc.body)
        return JSONResponse(error_body(message, kind="invalid_request_error", param=param), 400)

    def check_model(name: str) -> None:
        if name not in runtime.names:
            raise HTTPError(404, f"model {name!r} not found; this server serves {', '.join(map(repr, runtime.names))}",
                            kind="invalid_request_error", param="model")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": runtime.model_name}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "agentflow", "max_model_len": runtime.context_len,
             "parameters": runtime.spec.num_parameters, "max_position_embeddings": runtime.spec.max_position_embeddings,
             "weights": runtime.settings.weights}
            for name in runtime.names
        ]}

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> dict[str, Any]:
        """vLLM's ``/tokenize``: the prompt's token ids and count, the chat template applied to messages."""
        if body.model is not None:
            check_model(body.model)
        if body.prompt is not None:
            tokens = await _encode_prompt(runtime, body.prompt)
        else:
            try:
                messages = body.rendered_messages()
                _check_text(runtime, "messages", "".join(m["content"] for m in messages))
                tokens = await asyncio.to_thread(runtime.tokenizer.encode_chat, messages)
            except (NoChatTemplateError, ValueError) as exc:
                raise _invalid("messages", str(exc)) from exc
        return {"count": len(tokens), "max_model_len": runtime.context_len, "tokens": tokens}

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        check_model(body.model)
        given = body.prompts()
        prompts = [await _encode_prompt(runtime, p) for p in given]
        echo = None
        if body.echo:
            texts = [p if isinstance(p, str) else runtime.tokenizer.decode(p) for p in given]
            echo = await _score(runtime, prompts, texts, body.logprobs)
            if body.max_tokens == 0:
                return JSONResponse(echo_only(runtime, body, prompts, echo))
        return await _generate(runtime, request, body, prompts, "completion", body.logprobs, echo)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest, request: Request) -> Response:
        check_model(body.model)
        try:
            messages = body.rendered_messages()
            _check_text(runtime, "messages", "".join(m["content"] for m in messages))
            prompt = await asyncio.to_thread(runtime.tokenizer.encode_chat, messages)
        except (NoChatTemplateError, ValueError) as exc:
            raise _invalid("messages", str(exc)) from exc
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        return await _generate(runtime, request, body, [prompt], "chat", logprobs)

    return app


def _add_guards(app: FastAPI, host: str, allow: tuple[str, ...], api_key: str | None, max_bytes: int) -> None:
    """Host check outermost, then the key, then the body size (middlewares added last run first)."""
    def error(message: str) -> dict[str, Any]:
        return error_body(message, kind="invalid_request_error")

    def auth_error(message: str) -> dict[str, Any]:
        return error_body(message, kind="authentication_error")

    warning = unchecked_warning(host, allow, "--allow-host")
    if warning:
        log.warning("%s", warning)
    app.add_middleware(BodyLimit, max_bytes=max_bytes, error=error, option="--max-request-bytes")
    app.add_middleware(KeyGuard, api_key=api_key, open_paths=OPEN_PATHS, error=auth_error)
    app.add_middleware(HostGuard, allowed=allowed_hosts(host, allow), error=error, option="--allow-host")


def validation_message(errors: Sequence[Any], body: Any) -> tuple[str, str | None]:
    """An OpenAI-style message and ``param`` for Pydantic/FastAPI validation errors: the field's dotted path
    (union member tags left out), every reason given for it, and what was sent; bad JSON says where."""
    first = errors[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidFieldError):
        return str(cause), cause.field
    if first.get("type") == "json_invalid":
        where = ""
        pos = first.get("loc", ("body", None))[-1]
        if isinstance(pos, int) and isinstance(body, str):
            line, column = body.count("\n", 0, pos) + 1, pos - body.rfind("\n", 0, pos)
            where = f" at line {line} column {column}"
        return f"request body is not valid JSON: {cause or first.get('msg')}{where}", None
    param = _field_path(first.get("loc", ()))
    reasons = [str(e.get("msg", "invalid")).removeprefix("Value error, ") for e in errors
               if _field_path(e.get("loc", ())) == param]
    message = "; or ".join(dict.fromkeys(reasons)) if len(reasons) > 1 else reasons[0]
    if "input" in first and param:
        message = f"{message} (got {json.dumps(first['input'], default=str)[:200]})"
    return (f"{param}: {message}" if param else message), param


def _field_path(loc: Sequence[Any]) -> str | None:
    """``body.messages.0.role`` -> ``messages.0.role``; Pydantic's union tags (``str``, ``list[int]``) dropped."""
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p))]
    return ".".join(parts) or None


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "dict", "list", "none", "null"})


def _check_text(runtime: ServerRuntime, field: str, text: str) -> None:
    """Refuse, before tokenizing, text that cannot fit in the context or cannot be encoded."""
    limit = runtime.context_len * runtime.tokenizer.max_token_chars
    if len(text) > limit:
        raise _invalid(field, f"the prompt has {len(text)} characters, more than the {limit} that could fit in the "
                              f"model's context of {runtime.context_len} tokens (no token here is longer than "
                              f"{runtime.tokenizer.max_token_chars} characters); shorten it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(field, f"the text has a lone surrogate ({text[exc.start]!r}) at character {exc.start}; "
                              "send valid Unicode") from None


async def _encode_prompt(runtime: ServerRuntime, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, str):
        _check_text(runtime, "prompt", prompt)
        return await asyncio.to_thread(runtime.tokenizer.encode, prompt)
    bad = [t for t in prompt if not 0 <= t < runtime.spec.vocab_size]
    if bad:
        raise _invalid("prompt", f"token ids {bad[:5]} are outside the vocabulary [0, {runtime.spec.vocab_size})")
    return list(prompt)


async def _compile_format(runtime: ServerRuntime, body: CompletionRequest | ChatRequest) -> CompiledFormat | None:
    """The request's output format, validated against the model's tokenizer on a worker thread (a grammar
    can take a while to build); a 400 names the field it came from."""
    try:
        fmt = body.output_format()
    except InvalidFieldError as exc:
        raise _invalid(exc.field, str(exc)) from exc
    if fmt is None:
        return None
    try:
        return await asyncio.to_thread(runtime.engine.grammars().compile, fmt)
    except FormatError as exc:
        raise _invalid(fmt.field.split(".")[0], str(exc)) from exc


def _engine_requests(
    runtime: ServerRuntime, body: CompletionRequest | ChatRequest, prompts: list[list[int]], kind: Kind,
    logprobs: int | None, compiled: CompiledFormat | None,
) -> list[EngineRequest]:
    field = "messages" if kind == "chat" else "prompt"
    context = runtime.context_len
    if body.n > runtime.settings.max_batch:
        raise _invalid("n", f"n={body.n} exceeds this server's max batch of {runtime.settings.max_batch}")
    # The closing path is in single-byte tokens, so it bounds the tokens that close the output; JSON's is
    # the shortest document, and a budget below it is refused (a regex's or grammar's greedy path may be
    # longer than the shortest, so there it only sets the default).
    shortest = (compiled.shortest or 0) if compiled is not None else 0
    floor = shortest if compiled is not None and compiled.format.is_json else 0
    explicit = body.max_completion_tokens if isinstance(body, ChatRequest) else None
    explicit = explicit or body.max_tokens
    requests = []
    for prompt in prompts:
        if not prompt:
            raise _invalid(field, "the prompt is empty")
        if len(prompt) >= context:
            raise _invalid(field, f"the prompt has {len(prompt)} tokens but the model's context is {context} tokens; "
                                  "shorten it")
        room = context - len(prompt)
        if explicit is not None and explicit > room:
            raise _invalid("max_tokens", f"max_tokens={explicit} plus the prompt's {len(prompt)} tokens exceeds the "
                                         f"model's context of {context} tokens")
        max_tokens = explicit or (room if kind == "chat" else min(max(16, shortest), room))
        if max_tokens < floor:
            # One token per character is the worst case; below this the JSON could be cut off unclosed.
            raise _invalid("max_tokens", f"max_tokens={max_tokens} is below {shortest}, the length of the shortest "
                                         "JSON that matches response_format; raise it so the output always parses")
        try:
            params = body.sampling(max_tokens=max_tokens, logprobs=logprobs, vocab_size=runtime.spec.vocab_size)
        except InvalidFieldError as exc:
            raise _invalid(exc.field, str(exc)) from exc
        requests.append(EngineRequest(request_id=f"{uuid.uuid4().hex}", prompt_ids=prompt, params=params, n=body.n,
                                      constraint=compiled))
    return requests


async def _score(runtime: ServerRuntime, prompts: list[list[int]], texts: list[str], logprobs: int | None) -> Echo:
    """Score the prompts on the engine thread (one batched pass over their shared prefix, see
    :mod:`agentflow.model_server.scoring`) for ``echo``; their log-probabilities only when ``logprobs`` was asked."""
    for prompt in prompts:
        if not prompt:
            raise _invalid("prompt", "the prompt is empty")
        if len(prompt) > runtime.context_len:
            raise _invalid("prompt", f"the prompt has {len(prompt)} tokens but the model's context is "
                                     f"{runtime.context_len} tokens; shorten it")
    if logprobs is None:
        return Echo(texts, None, 0)
    model, budget = runtime.engine.model, runtime.engine.config.max_prefill_tokens
    try:
        result = await runtime.scheduler.run_on_engine(lambda: score_prompts(model, prompts, top=logprobs,
                                                                          max_tokens=budget))
    except (RuntimeError, ValueError) as exc:
        raise HTTPError(500, f"scoring the prompt failed: {exc}", kind="server_error") from exc
    runtime.metrics.record_scored(len(prompts), result.forward_passes)
    return Echo(texts, result.prompts, result.shared_tokens)


def echo_only(runtime: ServerRuntime, body: CompletionRequest, prompts: list[list[int]], echo: Echo) -> dict[str, Any]:
    """The body of a ``max_tokens: 0`` request: each prompt echoed (with its log-probabilities), nothing generated."""
    builder = ResponseBuilder("completion", request_id=f"cmpl-{uuid.uuid4().hex}", model=body.model,
                              tokenizer=runtime.tokenizer, n=body.n, prompts=prompts, logprobs=body.logprobs,
                              return_token_ids=body.return_token_ids, echo=echo)
    for choice in builder.choices:
        choice.finish_reason = "length"
    return builder.final()


async def _generate(
    runtime: ServerRuntime, request: Request, body: CompletionRequest | ChatRequest, prompts: list[list[int]],
    kind: Kind, logprobs: int | None, echo: Echo | None = None,
) -> Response:
    compiled = await _compile_format(runtime, body)
    engine_requests = _engine_requests(runtime, body, prompts, kind, logprobs, compiled)
    handles: list[RequestHandle] = []
    try:
        for er in engine_requests:
            handles.append(runtime.scheduler.submit(er))
    except QueueFullError as exc:
        for h in handles:
            h.abort()
        raise HTTPError(503, str(exc), kind="server_overloaded") from exc
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
    builder = ResponseBuilder(kind, request_id=prefix + engine_requests[0].request_id, model=body.model,
                              tokenizer=runtime.tokenizer, n=body.n, prompts=prompts, logprobs=logprobs,
                              return_token_ids=body.return_token_ids, echo=echo)
    if body.stream:
        usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(builder, handles, usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    collect = asyncio.ensure_future(_collect(builder, handles))
    try:
        while True:
            done, _ = await asyncio.wait({collect}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():
                collect.cancel()
                return Response(status_code=499)
        return JSONResponse({**collect.result(), "timings": _timings(handles)})
    except EngineFailedError as exc:
        raise HTTPError(500, f"generation failed: {exc}", kind="server_error") from exc
    finally:
        for h in handles:
            h.abort()


async def _merged(handles: list[RequestHandle]) -> AsyncIterator[tuple[int, StepOutput]]:
    if len(handles) == 1:
        async for out in handles[0].outputs():
            yield 0, out
        return
    queue: asyncio.Queue[tuple[int, StepOutput] | BaseException | None] = asyncio.Queue()

    async def pump(i: int, h: RequestHandle) -> None:
        try:
            async for out in h.outputs():
                await queue.put((i, out))
            await queue.put(None)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            await queue.put(exc)

    tasks = [asyncio.ensure_future(pump(i, h)) for i, h in enumerate(handles)]
    try:
        live = len(tasks)
        while live:
            item = await queue.get()
            if item is None:
                live -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()


def _timings(handles: list[RequestHandle]) -> dict[str, float]:
    """When the first token came (from arrival, queueing and prefill included), as llama.cpp's server
    reports ``timings``: a client that does not stream gets its time to first token too."""
    firsts = [h.first_token_s for h in handles if h.first_token_s is not None]
    return {"ttft_s": round(min(firsts), 6)} if firsts else {}


async def _collect(builder: ResponseBuilder, handles: list[RequestHandle]) -> dict[str, Any]:
    async for i, out in _merged(handles):
        builder.add(i, out)
    return builder.final()


async def _sse(builder: ResponseBuilder, handles: list[RequestHandle], usage: bool) -> AsyncIterator[str]:
    try:
        async for i, out in _merged(handles):
            chunk = builder.chunk(builder.add(i, out), out)
            if chunk is not None:
                yield f"data: {json.dumps(chunk)}\n\n"
        if usage:
            yield f"data: {json.dumps(builder.usage_chunk())}\n\n"
        yield "data: [DONE]\n\n"
    except EngineFailedError as exc:
        err = error_body(f"generation failed: {exc}", kind="server_error")
        yield f"data: {json.dumps(err)}\n\n"
    finally:
        for h in handles:
            h.abort()
