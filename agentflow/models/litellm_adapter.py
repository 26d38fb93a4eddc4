"""The one module that imports LiteLLM: chat and embedding calls, token counts, model windows.

LiteLLM is imported on first use (it takes seconds), with its local price list so nothing is
fetched from the network. Its exceptions are translated here into :class:`ProviderError` with a
``reason`` the router's retry policy understands. LiteLLM's own retries are switched off: the
router retries, once, in one place.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from agentflow.models.profiles import ModelEntry
from agentflow.models.sampling import OPENAI_PARAMS, SamplingPlan, plan_sampling
from agentflow.models.sampling import Sampling as _Sampling
from agentflow.models.types import (
    LANGUAGE_MODEL,
    ChatRequest,
    ChatResponse,
    Message,
    ProviderError,
    ProviderFailure,
    Usage,
)

_NO_KEY = "not-needed"  # OpenAI-compatible servers without auth still want a bearer token

LITELLM_PROVIDERS = {"local": "hosted_vllm"}
"""agentflow's own provider prefixes and LiteLLM's name for each: ``local/NAME``, a model on agentflow's model
server on this machine, is to LiteLLM an OpenAI-compatible server, ``hosted_vllm/NAME``."""


def litellm_model(model: str) -> str:
    """``model`` as LiteLLM spells it. Everything else (traces, errors, cost records, the CLI) keeps the name the
    user wrote, ``local/smollm2-135m``; only the call to LiteLLM says ``hosted_vllm/smollm2-135m``."""
    provider, slash, name = model.partition("/")
    spelled = LITELLM_PROVIDERS.get(provider) if slash else None
    return f"{spelled}/{name}" if spelled else model


def litellm() -> Any:
    """The ``litellm`` module, imported on first use with the local price list."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm


class LiteLLMChatModel:
    """A chat model reached through ``litellm.acompletion``: every real provider goes here."""

    capabilities = LANGUAGE_MODEL
    """A language model behind an API: reads the messages, samples, is priced."""

    def __init__(self, entry: ModelEntry, *, timeout_s: float = 60.0) -> None:
        self.entry = entry
        self.name = entry.model
        self.kind = entry.provider_kind()
        self.timeout_s = entry.timeout_s or timeout_s
        self._plans: dict[str, SamplingPlan] = {}
        self._last: tuple[_Sampling | None, SamplingPlan] = (None, SamplingPlan())

    def __repr__(self) -> str:
        return f"LiteLLMChatModel({self.name!r}, kind={self.kind!r})"

    def sampling_plan(self, sampling: _Sampling) -> SamplingPlan:
        """Where each sampling parameter goes; what LiteLLM says this provider lacks is dropped."""
        if sampling is self._last[0]:  # the same node config again: the hot path
            return self._last[1]
        key = json.dumps(sampling.provided(), sort_keys=True)
        plan = self._plans.get(key)
        if plan is not None:
            self._last = (sampling, plan)
            return plan
        plan = plan_sampling(sampling, self.kind)
        supported = _supported_params(litellm_model(self.name), self.entry.api_base)
        if supported is not None:
            unsupported = [p for p in plan.params if p in OPENAI_PARAMS and p not in supported]
            if unsupported:
                params = {k: v for k, v in plan.params.items() if k not in unsupported}
                plan = SamplingPlan(params, plan.extra_body, (*plan.dropped, *unsupported))
        self._plans[key] = plan
        self._last = (sampling, plan)
        return plan

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments of ``litellm.acompletion`` for a request (no secrets logged)."""
        plan = self.sampling_plan(request.sampling)
        kwargs: dict[str, Any] = {
            "model": litellm_model(self.name),
            "messages": list(request.messages),
            "timeout": request.timeout_s or self.timeout_s,
            "num_retries": 0,
            "max_retries": 0,
            **plan.params,
        }
        extra_body = dict(plan.extra_body)
        if request.constraint is not None and self.entry.grammars:
            # vLLM's spelling, which agentflow's model server reads too; LiteLLM passes extra_body as is
            extra_body["structured_outputs"] = {request.constraint.kind: request.constraint.pattern}
        if extra_body:
            kwargs["extra_body"] = extra_body
        if request.response_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": dict(request.response_schema),
                    "strict": False,
                },
            }
        if self.entry.api_base:
            kwargs["api_base"] = self.entry.api_base
        key = api_key(self.entry)
        if key:
            kwargs["api_key"] = key
        elif self.kind == "openai-compatible":
            kwargs["api_key"] = _NO_KEY
        if self.entry.mock_response is not None:
            kwargs["mock_response"] = self.entry.mock_response
        return kwargs

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request; a provider failure raises :class:`ProviderError`."""
        lib = litellm()
        kwargs = self.request_kwargs(request)
        started = time.perf_counter()
        try:
            raw = await lib.acompletion(**kwargs)
        except Exception as exc:  # every LiteLLM/provider failure is translated here
            raise translate_error(exc, self.name) from exc
        return _response(raw, self.name, time.perf_counter() - started)


def api_key(entry: ModelEntry) -> str | None:
    """The API key of ``entry``: the value of its ``api_key_env`` variable, if any."""
    return os.environ.get(entry.api_key_env) if entry.api_key_env else None


def _response(raw: Any, model: str, latency_s: float) -> ChatResponse:
    texts = tuple((c.message.content or "") for c in raw.choices)
    usage = getattr(raw, "usage", None)
    hidden = getattr(raw, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    return ChatResponse(
        text=texts[0] if texts else "",
        choices=texts if len(texts) > 1 else (),
        model=model,
        usage=Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        ),
        cost=float(cost) if isinstance(cost, int | float) else None,
        finish_reason=raw.choices[0].finish_reason if raw.choices else None,
        latency_s=latency_s,
        ttft_s=_ttft(raw),
    )


def _ttft(raw: Any) -> float | None:
    """The server's own time to first token, from a ``timings`` field beside the choices."""
    timings = getattr(raw, "timings", None)
    value = timings.get("ttft_s") if isinstance(timings, dict) else None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


_BY_CLASS: tuple[tuple[str, ProviderFailure], ...] = (
    # most specific first: several of these subclass BadRequestError
    ("ContextWindowExceededError", "context_window"),
    ("ContentPolicyViolationError", "content_filter"),
    ("UnsupportedParamsError", "unsupported"),
    ("RateLimitError", "rate_limit"),
    ("Timeout", "timeout"),
    ("APIConnectionError", "connection"),
    ("ServiceUnavailableError", "server"),
    ("BadGatewayError", "server"),
    ("InternalServerError", "server"),
    ("AuthenticationError", "auth"),
    ("PermissionDeniedError", "auth"),
    ("NotFoundError", "not_found"),
    ("BadRequestError", "bad_request"),
    ("UnprocessableEntityError", "bad_request"),
)


_MISSING_KEY = re.compile(r"missing credentials|api[_ ]key (?:is )?(?:not set|missing|required)", re.I)


def translate_error(exc: BaseException, model: str) -> ProviderError:
    """A :class:`ProviderError` for any exception LiteLLM raised while calling ``model``."""
    lib = litellm()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    reason: ProviderFailure = "other"
    for cls_name, cls_reason in _BY_CLASS:
        cls = getattr(lib, cls_name, None) or getattr(lib.exceptions, cls_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            reason = cls_reason
            break
    else:
        if status == 429:
            reason = "rate_limit"
        elif status == 408:
            reason = "timeout"
        elif status is not None and status >= 500:
            reason = "server"
    detail = " ".join(str(exc).split())[:300]
    if reason in ("server", "other") and _MISSING_KEY.search(detail):
        reason = "auth"  # LiteLLM reports a missing API key as a 500

    return ProviderError(
        f"{model}: {reason.replace('_', ' ')} ({type(exc).__name__}"
        f"{f', HTTP {status}' if status else ''}): {detail}",
        reason=reason,
        model=model,
        status_code=status,
        retry_after=retry_after(exc),
    )


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``, seconds or an HTTP date)."""
    for headers in _headers(exc):
        value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(str(value))
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


def _headers(exc: BaseException) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for source in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None)):
        if isinstance(source, Mapping) or hasattr(source, "items"):
            found.append(source)  # type: ignore[arg-type]
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "headers", None) is not None:
        found.append(response.headers)
    return found


@lru_cache(maxsize=256)
def _supported_params(model: str, api_base: str | None) -> frozenset[str] | None:
    lib = litellm()
    try:
        _, provider, _, _ = lib.get_llm_provider(model=model, api_base=api_base)
        params = lib.get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:  # an unmapped model: trust the static table
        return None
    return frozenset(params) if params else None


def count_tokens(model: str, messages: Sequence[Message]) -> int | None:
    """Prompt tokens of ``messages`` by the model's tokenizer as LiteLLM knows it, or ``None``."""
    try:
        return int(litellm().token_counter(model=litellm_model(model), messages=list(messages)))
    except Exception:  # no tokenizer for this model: the caller falls back to an estimate
        return None


@lru_cache(maxsize=256)
def context_window(model: str) -> int | None:
    """The model's input window from LiteLLM's model list, or ``None`` when it is not listed."""
    try:
        info = litellm().get_model_info(litellm_model(model))
    except Exception:  # not in LiteLLM's list
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None
