"""The model catalogue: what each alias's models are (size, price, context, cutoff, family) and how they did.

Facts come from three places, in this order of precedence, and each value says where it came from:

1. ``model_info:`` in ``agentflow.yaml`` (your overrides), keyed by the model as the profile names it::

       model_info:
         local/smollm2-135m: {training_cutoff: "2024-06", family: huggingface}
         openai/gpt-4.1-mini: {parameters: null, training_cutoff: "2024-06"}

2. the model server's ``/v1/models`` (agentflow's model server reports its parameter count and context; only
   asked when one already answers at the entry's ``api_base``: the catalogue never starts one);
3. LiteLLM's model list (context window, maximum output, price per token), and the entry's own
   ``context_window`` and ``price``.

What none of them says is ``None`` (``unknown`` in the table), never guessed. The provider family is the
LiteLLM provider of an API model, or the model family its name names (``llama`` is Meta's, ``smollm`` Hugging
Face's), which the judge's family-bias warning compares.

Measured columns come from the trace store's ``model_call`` spans: calls, p50 latency, completion tokens per
second (completion tokens over the call's latency), time to first token where a span recorded one
(``ttft_s``), and cost per run. ``agentflow models bench`` measures time to first token and tokens per second
live, streaming (:func:`bench`).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentflow.models.backends import capabilities
from agentflow.models.profiles import ModelEntry

FIELDS = ("parameters", "context_window", "max_output_tokens", "input_per_million", "output_per_million",
          "training_cutoff", "family")
"""The catalogue's facts, named as ``agentflow models --output json`` names them."""
FAMILIES: tuple[tuple[str, str], ...] = (
    ("smollm", "huggingface"), ("llama", "meta"), ("qwen", "alibaba"), ("mixtral", "mistral"),
    ("mistral", "mistral"), ("gemma", "google"), ("gemini", "google"), ("phi", "microsoft"),
    ("deepseek", "deepseek"), ("claude", "anthropic"), ("gpt", "openai"), ("o1", "openai"), ("o3", "openai"),
    ("o4", "openai"), ("command", "cohere"), ("stories", "karpathy"),
)
"""Model-name patterns and the family that makes the model (the first match wins)."""
API_PROVIDERS = frozenset({"openai", "anthropic", "gemini", "vertex_ai", "mistral", "cohere", "deepseek",
                           "groq", "together_ai", "bedrock", "azure"})
"""LiteLLM providers that name a model's maker, not only where it runs (hosted_vllm, ollama do not)."""


@dataclass
class CatalogEntry:
    """One model behind an alias: its facts, where each came from, and what the traces measured."""

    alias: str
    model: str
    kind: str
    position: int
    """0 for the alias's first model, 1 and on for its fallbacks."""
    parameters: int | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_per_million: float | None = None
    output_per_million: float | None = None
    training_cutoff: str | None = None
    family: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def family_of(model: str, provider: str | None = None) -> str | None:
    """The maker of ``model``: its LiteLLM provider when that is a maker, else the family its name names."""
    prefix, _, name = model.partition("/")
    if provider in API_PROVIDERS:
        return provider
    if prefix in API_PROVIDERS and name:
        return prefix
    lowered = (name or model).lower()
    for pattern, family in FAMILIES:
        if re.search(rf"(^|[^a-z]){re.escape(pattern)}", lowered):
            return family
    return None


def litellm_info(model: str) -> dict[str, Any]:
    """LiteLLM's model information (empty when the model is not in its list)."""
    from agentflow.models.litellm_adapter import litellm, litellm_model

    try:
        info = litellm().get_model_info(litellm_model(model))
    except Exception:  # noqa: BLE001 - not mapped: nothing known from this source
        return {}
    return dict(info or {})


def server_info(api_base: str | None, model: str, *, timeout_s: float = 1.0) -> dict[str, Any]:
    """What a model server already serving at ``api_base`` says about ``model`` in ``/v1/models`` (empty when none
    answers: the catalogue never starts one)."""
    if not api_base:
        return {}
    import httpx

    name = model.partition("/")[2] or model
    try:
        response = httpx.get(api_base.rstrip("/") + "/models", timeout=timeout_s)
        data = response.json().get("data") or []
    except (httpx.HTTPError, ValueError, AttributeError):
        return {}
    return next((m for m in data if isinstance(m, dict) and m.get("id") == name), {})


def describe(alias: str, position: int, entry: ModelEntry, overrides: Mapping[str, Any], *,
             ask_servers: bool = True) -> CatalogEntry:
    """The catalogue entry of one model (see the module docstring for the precedence)."""
    row = CatalogEntry(alias, entry.model, entry.provider_kind(), position)
    can = capabilities(entry)
    if not can.language_model:  # an agentflow backend: what it is, not what a provider's list says
        row.family, row.sources["family"] = f"{row.kind} (not an LLM)", "agentflow"
        if can.free:
            row.input_per_million = row.output_per_million = 0.0
            row.sources.update(input_per_million="agentflow", output_per_million="agentflow")
        return row
    facts: dict[str, tuple[Any, str]] = {}
    info = litellm_info(entry.model)
    if info:
        for key, value in (("context_window", info.get("max_input_tokens") or info.get("max_tokens")),
                           ("max_output_tokens", info.get("max_output_tokens")),
                           ("input_per_million", _per_million(info.get("input_cost_per_token"))),
                           ("output_per_million", _per_million(info.get("output_cost_per_token")))):
            if value is not None:
                facts[key] = (value, "litellm")
    family = family_of(entry.model, info.get("litellm_provider"))
    if family:
        facts["family"] = (family, "litellm" if info.get("litellm_provider") in API_PROVIDERS else "name")
    if entry.context_window:
        facts["context_window"] = (entry.context_window, "agentflow.yaml" if entry.serve is None else "profile")
    if entry.price is not None:
        facts["input_per_million"] = (entry.price.input_per_million, "profile price")
        facts["output_per_million"] = (entry.price.output_per_million, "profile price")
    served = server_info(entry.api_base, entry.model) if ask_servers and entry.provider_kind() == "openai-compatible" \
        else {}
    if served.get("parameters"):
        facts["parameters"] = (int(served["parameters"]), "model server")
    if served.get("max_model_len"):
        facts["context_window"] = (int(served["max_model_len"]), "model server")
        facts.setdefault("max_output_tokens", (int(served["max_model_len"]), "model server"))
    for key, value in (overrides.get(entry.model) or {}).items():
        if key in FIELDS:
            facts[key] = (value, "model_info")
    for key, (value, source) in facts.items():
        setattr(row, key, value)
        row.sources[key] = source
    for key in FIELDS:
        row.sources.setdefault(key, "unknown")
    return row


def _per_million(per_token: Any) -> float | None:
    return None if per_token is None else round(float(per_token) * 1e6, 6)


def read_overrides(config_path: str | Path | None) -> dict[str, dict[str, Any]]:
    """``model_info:`` of ``agentflow.yaml`` (model string -> facts); a misspelt field is an error."""
    from agentflow.errors import ConfigError

    if config_path is None or not Path(config_path).is_file():
        return {}
    from agentflow.yamlsafe import safe_load

    data = safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    section = data.get("model_info") or {} if isinstance(data, Mapping) else {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{config_path} (model_info): expected a mapping of model -> facts")
    out: dict[str, dict[str, Any]] = {}
    for model, facts in section.items():
        if not isinstance(facts, Mapping):
            raise ConfigError(f"{config_path} (model_info.{model}): expected a mapping of facts")
        unknown = sorted(set(facts) - set(FIELDS))
        if unknown:
            raise ConfigError(f"{config_path} (model_info.{model}): unknown field(s) {unknown}; valid: "
                              f"{', '.join(FIELDS)}")
        out[str(model)] = dict(facts)
    return out


def measured(traces: str | Path) -> dict[str, dict[str, Any]]:
    """Per model (as the trace names the one that answered): calls, p50 latency, tokens/s, TTFT, cost per run."""
    path = Path(traces)
    if not path.is_file():
        return {}
    from agentflow.tracing.query import open_readonly

    conn = open_readonly(path)
    try:
        rows = conn.execute("SELECT run_id, data FROM spans WHERE kind = 'model_call' AND data IS NOT NULL")
        calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for run_id, raw in rows:
            try:
                data = json.loads(raw)
            except (TypeError, ValueError):
                continue
            model = data.get("model") or (data.get("models") or [None])[0]
            if model and data.get("latency_s") is not None:
                calls.setdefault(str(model), []).append((run_id, data))
    finally:
        conn.close()
    return {model: _stats(items) for model, items in calls.items()}


def _stats(items: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    latencies = [float(d["latency_s"]) for _, d in items]
    speeds = [d["tokens"]["completion"] / d["latency_s"] for _, d in items
              if (d.get("tokens") or {}).get("completion") and d["latency_s"] > 0]
    ttfts = [float(d["ttft_s"]) for _, d in items if d.get("ttft_s") is not None]
    costs: dict[str, float] = {}
    priced = [d for _, d in items if d.get("cost") is not None]
    for run_id, d in items:
        if d.get("cost") is not None:
            costs[run_id] = costs.get(run_id, 0.0) + float(d["cost"])
    return {
        "calls": len(items), "runs": len({r for r, _ in items}),
        "p50_latency_s": round(statistics.median(latencies), 4),
        "tokens_per_s": round(statistics.median(speeds), 2) if speeds else None,
        "ttft_s": round(statistics.median(ttfts), 4) if ttfts else None,
        "cost_per_run": round(sum(costs.values()) / len(costs), 8) if priced else None,
    }


def catalogue(config: Any, profile: str, *, config_path: str | Path | None = "agentflow.yaml",
              traces: str | Path | None = ".agentflow/traces.db", ask_servers: bool = True) -> list[CatalogEntry]:
    """Every model of every alias of ``profile``, described and measured."""
    overrides = read_overrides(config_path)
    stats = measured(traces) if traces else {}
    rows = []
    for alias, entries in sorted(config.aliases_of(profile).items()):
        for position, entry in enumerate(entries):
            row = describe(alias, position, entry, overrides, ask_servers=ask_servers)
            row.measured = stats.get(entry.model, {})
            rows.append(row)
    return rows


@dataclass
class BenchResult:
    """One alias measured live: time to first token and decode speed over streamed requests."""

    alias: str
    model: str
    runs: int
    ttft_s: float
    tokens_per_s: float
    latency_s: float
    completion_tokens: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


BENCH_PROMPT = "Write three sentences about rivers."


async def bench(router: Any, alias: str, *, runs: int = 3, max_tokens: int = 64) -> BenchResult:
    """Stream ``runs`` greedy requests to ``alias``'s first model: p50 time to first token, tokens per second
    after it (completion tokens minus one over the time from first to last), p50 latency. A managed model server is
    found or started first (its start is not timed)."""
    from agentflow.errors import ModelError
    from agentflow.models.litellm_adapter import litellm, translate_error
    from agentflow.models.managed_server import start_server

    routed = router.chain(alias)[0]
    if not router.capabilities(alias).language_model:
        raise ModelError(f"alias {alias!r} is the {routed.model.name} backend, not a language model: nothing to "
                         "benchmark")
    if routed.entry.serve is not None:
        await start_server(routed.model)
    client = getattr(routed.model, "_model", routed.model)
    kwargs = client.request_kwargs(_bench_request(max_tokens))
    kwargs.update(stream=True, stream_options={"include_usage": True})
    ttfts, speeds, latencies, tokens = [], [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        first = last = None
        count = 0
        try:
            stream = await litellm().acompletion(**kwargs)
            async for chunk in stream:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    last = time.perf_counter()
                    first = first or last
                    count += 1
                usage = getattr(chunk, "usage", None)
                if usage is not None and getattr(usage, "completion_tokens", None):
                    count = int(usage.completion_tokens)
        except Exception as exc:  # every LiteLLM/provider failure is translated here
            raise translate_error(exc, routed.entry.model) from exc
        end = time.perf_counter()
        if first is None:
            raise ModelError(f"{routed.entry.model}: the streamed reply was empty")
        ttfts.append(first - started)
        latencies.append(end - started)
        tokens.append(count)
        if last is not None and last > first and count > 1:
            speeds.append((count - 1) / (last - first))
    return BenchResult(alias, routed.entry.model, runs, statistics.median(ttfts),
                       statistics.median(speeds) if speeds else 0.0, statistics.median(latencies),
                       float(statistics.median(tokens)))


def _bench_request(max_tokens: int) -> Any:
    from agentflow.models.sampling import Sampling
    from agentflow.models.types import ChatRequest

    return ChatRequest(messages=[{"role": "user", "content": BENCH_PROMPT}],
                       sampling=Sampling(temperature=0.0, max_tokens=max_tokens))


async def bench_all(router: Any, aliases: Sequence[str], *, runs: int = 3) -> list[BenchResult]:
    """:func:`bench` each alias in turn (one at a time, so they do not slow each other)."""
    results = []
    for alias in aliases:
        results.append(await bench(router, alias, runs=runs))
    await asyncio.sleep(0)
    return results
