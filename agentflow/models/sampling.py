"""Typed sampling controls, and how each provider receives them.

Every node carries a :class:`Sampling`. The standard OpenAI parameters go to LiteLLM as keyword
arguments; the two that OpenAI lacks (``top_k``, ``repetition_penalty``) travel in the request body's
extra fields for OpenAI-compatible servers (vLLM, agentflow's model server), as provider options where a
provider has them natively (Anthropic ``top_k``; Ollama ``top_k`` and ``repeat_penalty``), and are
dropped, with a warning once per node, where a provider has no equivalent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ProviderKind = Literal["openai", "anthropic", "ollama", "openai-compatible", "offline"]
"""How a model receives sampling: the real OpenAI API, Anthropic, Ollama, any OpenAI-compatible
server (vLLM, agentflow's model server, LiteLLM's ``hosted_vllm``), or an offline backend."""

SamplingParam = Literal[
    "temperature", "top_p", "top_k", "repetition_penalty", "logit_bias", "seed", "n",
    "max_tokens", "stop",
]

OPENAI_PARAMS: tuple[SamplingParam, ...] = (
    "temperature", "top_p", "logit_bias", "seed", "n", "max_tokens", "stop",
)
EXTRA_PARAMS: tuple[SamplingParam, ...] = ("top_k", "repetition_penalty")


class Sampling(BaseModel):
    """Sampling controls of one node; ``None`` leaves the provider's default.

    ``Sampling.greedy()`` is temperature 0. Combine with :meth:`merged` (the argument wins).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    """0 is greedy decoding; higher is more random."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int | None = Field(None, ge=1)
    """Keep only the k most likely tokens (not an OpenAI parameter)."""
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)
    """Divide the logits of tokens already generated (1.0 = off; not an OpenAI parameter)."""
    logit_bias: dict[int, float] | None = None
    """Token id -> bias added to its logit, in [-100, 100]."""
    seed: int | None = None
    """Seed for providers that sample reproducibly."""
    n: int | None = Field(None, ge=1, le=128)
    """How many completions to sample."""
    max_tokens: int | None = Field(None, ge=1)
    """Upper bound on generated tokens; the context budget reserves this much."""
    stop: tuple[str, ...] | None = None
    """Stop sequences (generation ends before any of them)."""

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        for token, bias in (value or {}).items():
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"logit_bias for token {token} is {bias}; must be in [-100, 100]")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @classmethod
    def greedy(cls, **overrides: Any) -> Sampling:
        """Temperature 0, plus any overrides."""
        return cls(temperature=0.0, **overrides)

    def provided(self) -> dict[str, Any]:
        """The parameters that are set, in a JSON-ready form (logit_bias keys as strings)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "logit_bias":
                value = {str(k): v for k, v in sorted(value.items())}
            elif name == "stop":
                value = list(value)
            out[name] = value
        return out

    def merged(self, override: Sampling | None) -> Sampling:
        """A copy where every parameter set in ``override`` replaces this one's."""
        if override is None:
            return self
        values = {k: getattr(self, k) for k in type(self).model_fields}
        values.update({k: getattr(override, k) for k in override.provided()})
        return Sampling(**values)


class SamplingWarning(UserWarning):
    """A sampling parameter a node set will not reach its provider (warned once per node)."""


Route = Literal["param", "extra_body", "option", "drop"]

# (how it travels, the provider's own name for it)
_NATIVE_OPENAI: dict[str, tuple[Route, str]] = {p: ("param", p) for p in OPENAI_PARAMS}
_ROUTES: dict[str, dict[str, tuple[Route, str]]] = {
    "openai": {**_NATIVE_OPENAI, "top_k": ("drop", ""), "repetition_penalty": ("drop", "")},
    "openai-compatible": {
        **_NATIVE_OPENAI,
        "top_k": ("extra_body", "top_k"),
        "repetition_penalty": ("extra_body", "repetition_penalty"),
    },
    "anthropic": {
        "temperature": ("param", "temperature"),
        "top_p": ("param", "top_p"),
        "max_tokens": ("param", "max_tokens"),
        "stop": ("param", "stop"),
        "top_k": ("option", "top_k"),
        "logit_bias": ("drop", ""),
        "seed": ("drop", ""),
        "n": ("drop", ""),
        "repetition_penalty": ("drop", ""),
    },
    "ollama": {
        "temperature": ("param", "temperature"),
        "top_p": ("param", "top_p"),
        "seed": ("param", "seed"),
        "max_tokens": ("param", "max_tokens"),
        "stop": ("param", "stop"),
        "top_k": ("option", "top_k"),
        "repetition_penalty": ("option", "repeat_penalty"),
        "logit_bias": ("drop", ""),
        "n": ("drop", ""),
    },
}


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """How one request carries its sampling: LiteLLM keyword arguments, extra body fields, drops."""

    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``litellm.acompletion`` (standard and provider-specific ones)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Fields merged into the JSON body of an OpenAI-compatible request."""
    dropped: tuple[str, ...] = ()
    """Parameters this provider has no way to receive."""
    ignored: tuple[str, ...] = ()
    """Parameters a backend that does not sample leaves unused (not a provider drop)."""


def unsampled_plan(sampling: Sampling) -> SamplingPlan:
    """The plan of a backend that does not sample (``Capabilities(sampling=False)``): it ignores
    every set parameter but ``n``, which it answers with copies; nothing is dropped."""
    return SamplingPlan(ignored=tuple(p for p in sampling.provided() if p != "n"))


UNSAMPLED_KINDS: frozenset[ProviderKind] = frozenset({"offline"})
"""Kinds whose backends do not sample: they have no route table, their plan is
:func:`unsampled_plan`."""


def plan_sampling(sampling: Sampling, kind: ProviderKind) -> SamplingPlan:
    """Decide where each set parameter of ``sampling`` goes for a provider of ``kind``."""
    if kind in UNSAMPLED_KINDS:
        return unsampled_plan(sampling)
    provided = sampling.provided()
    routes = _ROUTES[kind]
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in provided.items():
        route, target = routes[name]
        if route == "param" or route == "option":
            params[target] = value
        elif route == "extra_body":
            extra[target] = value
        else:
            dropped.append(name)
    return SamplingPlan(params=params, extra_body=extra, dropped=tuple(dropped))


def dropped_params(sampling: Sampling, kind: ProviderKind) -> tuple[str, ...]:
    """The set parameters a provider of ``kind`` would drop."""
    return plan_sampling(sampling, kind).dropped
