"""Token and cost accounting across the calls of a router.

The cost of a call comes from, first match wins: the model entry's configured :class:`Price`
(self-hosted models: per token or per GPU-second, so they are not free), the provider's price list as
LiteLLM knows it, or nothing (``cost_source == "none"``, cost 0). A backend that declares itself free
(``Capabilities.free``: the offline backends) costs nothing, with the source ``offline``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentflow.models.profiles import Price
from agentflow.models.types import Usage

CostSource = Literal["price", "provider", "offline", "cache", "none"]


def call_cost(
    *,
    price: Price | None,
    usage: Usage,
    latency_s: float,
    provider_cost: float | None,
    free: bool = False,
) -> tuple[float, CostSource]:
    """The cost of one answered call, and where the number came from (``free``: the backend
    declares calls free, whatever price the entry has)."""
    if free:
        return 0.0, "offline"
    if price is not None:
        return price.cost(usage.prompt_tokens, usage.completion_tokens, latency_s), "price"
    if provider_cost is not None:
        return float(provider_cost), "provider"
    return 0.0, "none"


@dataclass(slots=True)
class UsageTotals:
    """Running totals for one alias/model pair (or for everything)."""

    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: UsageTotals) -> None:
        self.calls += other.calls
        self.cache_hits += other.cache_hits
        self.failures += other.failures
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.latency_s += other.latency_s


@dataclass(slots=True)
class UsageLedger:
    """Totals per ``(alias, model)`` for every call a router made; ``total()`` sums them."""

    by_model: dict[tuple[str, str], UsageTotals] = field(default_factory=dict)

    def record(
        self,
        alias: str,
        model: str,
        *,
        usage: Usage | None = None,
        cost: float = 0.0,
        latency_s: float = 0.0,
        retries: int = 0,
        cache_hit: bool = False,
        failed: bool = False,
    ) -> None:
        """Add one call (answered, served from the cache, or failed) to the totals."""
        totals = self.by_model.setdefault((alias, model), UsageTotals())
        totals.calls += 1
        totals.retries += retries
        totals.latency_s += latency_s
        if failed:
            totals.failures += 1
            return
        if cache_hit:
            totals.cache_hits += 1
        if usage is not None:
            totals.prompt_tokens += usage.prompt_tokens
            totals.completion_tokens += usage.completion_tokens
        totals.cost += cost

    def total(self) -> UsageTotals:
        out = UsageTotals()
        for totals in self.by_model.values():
            out.add(totals)
        return out

    def of_alias(self, alias: str) -> UsageTotals:
        out = UsageTotals()
        for (a, _), totals in self.by_model.items():
            if a == alias:
                out.add(totals)
        return out

    def reset(self) -> None:
        self.by_model.clear()
