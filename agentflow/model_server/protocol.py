"""OpenAI-compatible request bodies, validated (Pydantic), and their translation to :class:`SamplingParams`.

Besides OpenAI's fields the server accepts vLLM's sampling extensions (``top_k``, ``min_p``,
``repetition_penalty``, ``ignore_eos``, ``stop_token_ids``, ``return_token_ids``) and its structured-output
fields (``structured_outputs``, and the older ``guided_json``/``guided_regex``/``guided_choice``/
``guided_grammar``), so the same client code works against either server. Fields OpenAI defines that do not
change the output here (``user``, ``metadata``, ...) are accepted and ignored; anything else unknown is
refused by name.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentflow.model_server.constrained import ResponseFormat
from agentflow.model_server.sampling import SamplingParams

IGNORED_FIELDS = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options",
                            "modalities", "reasoning_effort", "prompt_cache_key", "safety_identifier"})


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    return_token_ids: bool = False
    response_format: dict[str, Any] | None = None
    structured_outputs: dict[str, Any] | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None

    @model_validator(mode="after")
    def _no_unknown_fields(self) -> _Body:
        unknown = sorted(set(self.model_extra or {}) - IGNORED_FIELDS)
        if unknown:
            raise InvalidFieldError(unknown[0], f"unknown field(s) {unknown}; see the OpenAI API reference")
        return self

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop strings")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            if not key.lstrip("-").isdigit():
                raise ValueError(f"keys must be token ids, got {key!r}")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"bias for token {key} must be within [-100, 100], got {bias}")
        return value

    @field_validator("response_format")
    @classmethod
    def _format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("type")
        if kind not in _FORMAT_KINDS:
            raise ValueError(f"type must be one of {', '.join(map(repr, _FORMAT_KINDS))}, got {kind!r}")
        if kind == "json_schema":
            spec = value.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
                raise ValueError("json_schema must be an object with a 'schema' object")
        if kind in ("regex", "grammar") and not isinstance(value.get(kind), str):
            raise ValueError(f"type {kind!r} needs a {kind!r} string beside it, e.g. {{'type': {kind!r}, {kind!r}: "
                             + ("'(yes|no)'}" if kind == "regex" else "'start: \"yes\" | \"no\"'}"))
        return value

    @field_validator("structured_outputs")
    @classmethod
    def _structured(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        given = [k for k in _STRUCTURED_KEYS if (value or {}).get(k) is not None]
        if value is not None and len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_STRUCTURED_KEYS)}; got {given or 'none'}")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        """``stop`` as a tuple."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def output_format(self) -> ResponseFormat | None:
        """The format the output must match, from whichever field gave one (at most one may)."""
        found: list[ResponseFormat] = []
        fmt = self.response_format or {}
        kind = fmt.get("type")
        if kind == "json_object":
            found.append(ResponseFormat("json_object", None, "response_format"))
        elif kind == "json_schema":
            schema = fmt.get("json_schema", {}).get("schema") or None
            found.append(ResponseFormat("json_schema", schema, "response_format.json_schema.schema"))
        elif kind in ("regex", "grammar"):
            found.append(ResponseFormat(kind, fmt[kind], f"response_format.{kind}"))
        so = self.structured_outputs or {}
        given = {
            "structured_outputs": _vllm_format(so, "structured_outputs") if so else None,
            "guided_json": _vllm_format({"json": self.guided_json}, "guided_json"),
            "guided_regex": _vllm_format({"regex": self.guided_regex}, "guided_regex"),
            "guided_choice": _vllm_format({"choice": self.guided_choice}, "guided_choice"),
            "guided_grammar": _vllm_format({"grammar": self.guided_grammar}, "guided_grammar"),
        }
        found += [f for f in given.values() if f is not None]
        if len(found) > 1:
            raise InvalidFieldError(found[1].field.split(".")[0], "give one output format, not several (got "
                                    f"{', '.join(f.field.split('.')[0] for f in found)})")
        return found[0] if found else None

    def sampling(self, *, max_tokens: int, logprobs: int | None, vocab_size: int) -> SamplingParams:
        """The engine's sampling parameters for this body."""
        bias = tuple((int(k), float(v)) for k, v in (self.logit_bias or {}).items())
        for token, _ in bias:
            if not 0 <= token < vocab_size:
                raise InvalidFieldError("logit_bias", f"token id {token} is outside the vocabulary [0, {vocab_size})")
        return SamplingParams(
            temperature=self.temperature, top_k=max(self.top_k, 0), top_p=self.top_p, min_p=self.min_p,
            repetition_penalty=self.repetition_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, logit_bias=bias, seed=self.seed, max_tokens=max_tokens,
            stop=self.stop_strings(), stop_token_ids=tuple(self.stop_token_ids or ()), ignore_eos=self.ignore_eos,
            logprobs=logprobs,
        )


class CompletionRequest(_Body):
    """Body of ``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    """Return the prompt before the completion; with ``logprobs``, every prompt token's log-probability too
    (the first token's is ``null``), vLLM's convention. ``max_tokens: 0`` then only scores the prompts."""
    max_tokens: int | None = Field(None, ge=0)
    suffix: None = None
    best_of: int | None = None

    @model_validator(mode="after")
    def _best_of(self) -> CompletionRequest:
        if self.best_of is not None and self.best_of != self.n:
            raise InvalidFieldError("best_of", "best_of other than n is not supported")
        if self.max_tokens == 0 and not self.echo:
            raise InvalidFieldError("max_tokens", "max_tokens=0 only scores a prompt, which needs echo: true "
                                                  "(with logprobs for its log-probabilities)")
        if self.echo and self.stream:
            raise InvalidFieldError("echo", "echo is not supported with stream: true; send stream: false")
        if isinstance(self.prompt, list) and not self.prompt:
            raise InvalidFieldError("prompt", "the prompt list is empty; send a string, a list of strings, or token "
                                              "ids")
        return self

    def prompts(self) -> list[str | list[int]]:
        """The prompt(s) as a list: text, or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


class ChatMessage(BaseModel):
    """One chat message; ``content`` is text or a list of text parts."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            parts = []
            for part in self.content:
                if part.get("type") != "text":
                    raise ValueError(f"content part type {part.get('type')!r} is not supported; valid: 'text'")
                parts.append(str(part.get("text", "")))
            return "".join(parts)
        return self.content or ""


class ChatRequest(_Body):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None

    @model_validator(mode="after")
    def _checks(self) -> ChatRequest:
        if self.tools:
            raise InvalidFieldError("tools", "tools are not supported by the server; use response_format instead")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidFieldError("top_logprobs", "top_logprobs requires logprobs: true")
        return self

    def rendered_messages(self) -> list[dict[str, str]]:
        """Messages as the chat template expects them."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class TokenizeRequest(BaseModel):
    """Body of ``POST /tokenize`` (vLLM's): the tokens of a completion prompt, or of chat messages as the chat
    template renders them for generation: what a client counts to fit a prompt in the context."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidFieldError("prompt", "give either prompt (a string) or messages (a chat), not both or none")
        return self

    def rendered_messages(self) -> list[dict[str, str]]:
        """Messages as the chat template expects them."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in self.messages or ()]


_FORMAT_KINDS = ("text", "json_object", "json_schema", "regex", "grammar")
_STRUCTURED_KEYS = ("json", "regex", "choice", "grammar")


def _vllm_format(spec: dict[str, Any], field: str) -> ResponseFormat | None:
    """vLLM's ``structured_outputs`` (or one ``guided_*`` field) as a format; ``choice`` becomes a Lark grammar."""
    if spec.get("json") is not None:
        schema = spec["json"]
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as exc:
                raise InvalidFieldError(field, f"the JSON schema is not valid JSON: {exc}") from exc
        if not isinstance(schema, dict):
            raise InvalidFieldError(field, "the JSON schema must be an object")
        return ResponseFormat("json_schema", schema, f"{field}.json" if field == "structured_outputs" else field)
    for key in ("regex", "grammar", "choice"):
        value = spec.get(key)
        if value is None:
            continue
        where = f"{field}.{key}" if field == "structured_outputs" else field
        if key == "choice":
            if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
                raise InvalidFieldError(where, "choice must be a non-empty list of strings")
            return ResponseFormat("grammar", "start: " + " | ".join(json.dumps(c) for c in value), where)
        if not isinstance(value, str):
            raise InvalidFieldError(where, f"{key} must be a string")
        return ResponseFormat("regex" if key == "regex" else "grammar", value, where)
    return None


class InvalidFieldError(ValueError):
    """A request field is invalid; ``field`` names it for the 400 response."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def error_body(message: str, *, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
