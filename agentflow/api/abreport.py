"""``agentflow ab report``: the variants of an A/B test compared on thumbs up, latency, tokens and cost.

The unit is a rated run: a run whose thumbs up outnumber its thumbs down counts as *up*, the reverse as
*down*, a tie (or no rating) is not counted. Per variant: runs, failed runs, rated runs, the thumbs-up rate
with its 95% Wilson score interval, latency p50/p95, tokens and cost per run. Each variant is compared with
the control (the first variant of the experiment file) by a **two-proportion z-test** (two-sided, pooled
standard error), with a 95% interval of the difference (unpooled); with more than two variants the p-values
are Bonferroni-adjusted. The test's normal approximation needs enough ratings: below
:data:`MIN_RATED` rated runs per variant, or fewer than :data:`MIN_EACH` ups or downs in one, the report
says the sample is too small to decide, and how many rated runs per variant a difference of the size seen
would need (80% power, 5% two-sided).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MIN_RATED = 30
MIN_EACH = 5
ALPHA = 0.05
Z95 = 1.959963984540054
Z80 = 0.8416212335729143
METHOD = "two-proportion z-test (two-sided, pooled), Wilson 95% intervals per variant"


@dataclass(frozen=True)
class VariantStats:
    name: str
    runs: int
    failed: int
    rated: int
    up: int
    down: int
    rate: float | None
    rate_low: float | None
    rate_high: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_per_run: float | None
    cost_per_run: float | None
    cost_total: float


@dataclass(frozen=True)
class Comparison:
    variant: str
    control: str
    difference: float | None
    low: float | None
    high: float | None
    z: float | None
    p_value: float | None
    p_adjusted: float | None
    decision: str
    """``"better"``, ``"worse"``, ``"no significant difference"`` or ``"sample too small"``."""
    needed_per_variant: int | None = None
    """Rated runs per variant that the difference seen would need (80% power), when too small."""


@dataclass(frozen=True)
class Report:
    experiment: str
    workflow: str | None
    method: str
    variants: list[VariantStats]
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(up: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n == 0:
        return None, None
    p = up / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportions(up_a: int, n_a: int, up_b: int, n_b: int) -> tuple[float, float, float, float, float]:
    """``(difference b - a, low, high, z, two-sided p)``: the pooled z-test and the unpooled 95% interval."""
    pa, pb = up_a / n_a, up_b / n_b
    diff = pb - pa
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    pooled = (up_a + up_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = diff / se0 if se0 > 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2))
    return diff, diff - Z95 * se, diff + Z95 * se, z, p


def needed_per_variant(pa: float, pb: float) -> int | None:
    """Rated runs per variant to detect ``pb - pa`` with 80% power at 5% (two-sided); None for no difference."""
    if abs(pb - pa) < 1e-9:
        return None
    variance = pa * (1 - pa) + pb * (1 - pb)
    return max(MIN_RATED, math.ceil((Z95 + Z80) ** 2 * variance / (pb - pa) ** 2))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def variant_stats(name: str, runs: Sequence[Any]) -> VariantStats:
    """Statistics of one variant's runs (:class:`agentflow.tracing.query.RunSummary`)."""
    ups = sum(1 for r in runs if r.feedback_up > r.feedback_down)
    downs = sum(1 for r in runs if r.feedback_down > r.feedback_up)
    rated = ups + downs
    low, high = wilson(ups, rated)
    finished = [r for r in runs if r.duration_s is not None]
    latencies = [r.duration_s for r in finished]
    costs = [r.cost or 0.0 for r in runs]
    return VariantStats(
        name=name, runs=len(runs), failed=sum(1 for r in runs if r.status in ("error", "incomplete")),
        rated=rated, up=ups, down=downs, rate=ups / rated if rated else None, rate_low=low, rate_high=high,
        latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
        tokens_per_run=sum(r.tokens for r in runs) / len(runs) if runs else None,
        cost_per_run=sum(costs) / len(runs) if runs else None, cost_total=sum(costs))


def compare(control: VariantStats, other: VariantStats, tests: int) -> Comparison:
    """``other`` against ``control``; ``tests`` comparisons in the report (Bonferroni)."""
    small = [v for v in (control, other) if v.rated < MIN_RATED or min(v.up, v.down) < MIN_EACH]
    if control.rated == 0 or other.rated == 0:
        return Comparison(other.name, control.name, None, None, None, None, None, None, "sample too small")
    diff, low, high, z, p = two_proportions(control.up, control.rated, other.up, other.rated)
    adjusted = min(1.0, p * tests)
    if small:
        return Comparison(other.name, control.name, diff, low, high, z, p, adjusted, "sample too small",
                          needed_per_variant(control.up / control.rated, other.up / other.rated))
    decision = ("no significant difference" if adjusted >= ALPHA else "better" if diff > 0 else "worse")
    return Comparison(other.name, control.name, diff, low, high, z, p, adjusted, decision)


def build_report(experiment: str, runs: Sequence[Any], order: Sequence[str] = ()) -> Report:
    """The report of an experiment's runs (each tagged ``variant``); ``order`` puts the control first."""
    by_variant: dict[str, list[Any]] = {name: [] for name in order}
    for run in runs:
        by_variant.setdefault(run.tags.get("variant", "?"), []).append(run)
    stats = [variant_stats(name, rs) for name, rs in by_variant.items()]
    workflows = sorted({r.workflow for r in runs})
    notes = []
    if len(workflows) > 1:
        notes.append(f"runs of several workflows carry this experiment's name: {', '.join(workflows)}")
    comparisons = [compare(stats[0], s, max(1, len(stats) - 1)) for s in stats[1:]] if stats else []
    if any(c.decision == "sample too small" for c in comparisons):
        notes.append(f"sample too small to decide: each variant needs at least {MIN_RATED} rated runs, with at "
                     f"least {MIN_EACH} thumbs up and {MIN_EACH} thumbs down, before the test's normal "
                     "approximation holds")
    return Report(experiment, workflows[0] if len(workflows) == 1 else None, METHOD, stats, comparisons, notes)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(report: Report) -> str:
    """The report as text for a terminal."""
    lines = [f"experiment {report.experiment}" + (f" (workflow {report.workflow})" if report.workflow else ""),
             f"method: {report.method}", ""]
    header = (f"{'variant':<16}{'runs':>6}{'failed':>7}{'rated':>7}{'thumbs up':>11}{'95% interval':>17}"
              f"{'p50 s':>8}{'p95 s':>8}{'tokens/run':>12}{'cost/run $':>12}")
    lines.append(header)
    for v in report.variants:
        interval = "-" if v.rate_low is None else f"{_pct(v.rate_low)}-{_pct(v.rate_high)}"
        lines.append(f"{v.name:<16}{v.runs:>6}{v.failed:>7}{v.rated:>7}{_pct(v.rate):>11}{interval:>17}"
                     f"{_num(v.latency_p50_s, '.3f'):>8}{_num(v.latency_p95_s, '.3f'):>8}"
                     f"{_num(v.tokens_per_run, '.0f'):>12}{_num(v.cost_per_run, '.5f'):>12}")
    lines.append("")
    for c in report.comparisons:
        if c.difference is None:
            lines.append(f"{c.variant} vs {c.control}: no rated runs to compare; sample too small")
            continue
        text = (f"{c.variant} vs {c.control}: thumbs-up rate {100 * c.difference:+.1f} points "
                f"(95% interval {100 * c.low:+.1f} to {100 * c.high:+.1f}), z = {c.z:.2f}, p = {c.p_value:.4f}")
        if len(report.comparisons) > 1:
            text += f" (Bonferroni-adjusted {c.p_adjusted:.4f})"
        text += f": {c.decision}"
        if c.needed_per_variant:
            text += f"; a difference this size needs about {c.needed_per_variant} rated runs per variant"
        lines.append(text)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
