"""Whether a difference between two evaluations is more than noise, item by item.

Two evaluations of the same items are compared on their paired differences (B - A per item, for
every item both scored): the mean difference with a 95% bootstrap interval (percentile method,
resampling items), and a two-sided p-value from a paired sign-flip permutation test (under "no
difference", each item's difference is as likely to have either sign): exact up to
:data:`EXACT_UP_TO` items, from :data:`RESAMPLES` random sign flips above. Both are seeded, so a
comparison reads the same every time.

A difference is ``better`` or ``worse`` only when ``p < ALPHA`` and there are at least
:data:`MIN_ITEMS` pairs; otherwise it is ``within noise`` (or ``too few items``). Latency, tokens and
cost compare per-item values too (the latency of each item, not the p50 of each side).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

ALPHA = 0.05
MIN_ITEMS = 5
"""Fewer pairs than this and no test is run: with 4 items even a sign-flip test cannot reach
p < 0.05 (the smallest two-sided p-value is 2 / 2**n = 0.125)."""
EXACT_UP_TO = 14
RESAMPLES = 4000
SEED = 20240607

Verdict = Literal["better", "worse", "within noise", "too few items", "same", ""]


@dataclass(frozen=True, slots=True)
class Paired:
    """The paired comparison of one metric over the items both evaluations scored."""

    n: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    """Mean of B - A over the pairs."""
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA and self.n >= MIN_ITEMS

    def verdict(self, higher_is_better: bool) -> Verdict:
        """``better``/``worse`` by the metric's direction when significant, else why not."""
        if self.delta is None:
            return ""
        if abs(self.delta) < 1e-12 and (self.ci_low is None or self.ci_low == self.ci_high):
            return "same"
        if self.n < MIN_ITEMS:
            return "too few items"
        if not self.significant:
            return "within noise"
        return "better" if (self.delta > 0) == higher_is_better else "worse"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def paired(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES,
           seed: int = SEED) -> Paired:
    """Compare paired values ``a[i]`` and ``b[i]`` (the same item in evaluations A and B)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need as many of A ({len(a)}) as of B ({len(b)})")
    n = len(a)
    if n == 0:
        return Paired(0, None, None, None, None, None, None, "no items scored by both")
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = xb - xa
    mean = float(d.mean())
    base = dict(n=n, mean_a=float(xa.mean()), mean_b=float(xb.mean()), delta=mean)
    if n < MIN_ITEMS:
        return Paired(**base, ci_low=None, ci_high=None, p_value=None,
                      method=f"no test: {n} item(s) in both, {MIN_ITEMS} needed")
    rng = np.random.default_rng(seed)
    low, high = _bootstrap(d, rng, resamples)
    if not d.any():
        p, method = 1.0, "every item scored the same"
    elif n <= EXACT_UP_TO:
        p, method = _exact_sign_flip(d), f"exact paired sign-flip test over {n} items"
    else:
        p, method = _sign_flip(d, rng, resamples), (f"paired sign-flip test ({resamples} "
                                                    f"resamples) over {n} items")
    return Paired(**base, ci_low=low, ci_high=high, p_value=p,
                  method=method + "; 95% bootstrap interval of the mean difference")


def _bootstrap(d: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple[float, float]:
    n = len(d)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // n)  # at most ~16 MB of indices at once
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        means[start:start + count] = d[rng.integers(0, n, size=(count, n))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _sign_flip(d: np.ndarray, rng: np.random.Generator, resamples: int) -> float:
    n = len(d)
    observed = abs(d.mean())
    hits = 0
    step = max(1, 2_000_000 // n)
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        signs = rng.integers(0, 2, size=(count, n)) * 2 - 1
        hits += int((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum())
    return (hits + 1) / (resamples + 1)


def _exact_sign_flip(d: np.ndarray) -> float:
    observed = abs(d.mean())
    signs = np.array(list(itertools.product((-1, 1), repeat=len(d))))
    return float((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).mean())


PER_ITEM_FIELD = {"latency_p50_s": "latency_s", "latency_p95_s": "latency_s",
                  "latency_mean_s": "latency_s", "tokens_per_item": "tokens",
                  "cost_per_item": "cost", "cost_total": "cost"}
"""Summary metrics over items, and the per-item field their paired test compares."""
CACHE_SENSITIVE = {"latency_s": ("model", "embedding"), "tokens": ("model",), "cost": ("model",)}
"""Which per-item fields a cache changes: a cached model call is instant and free; a cached
embedding only saves time."""


def item_value(name: str, record: Mapping[str, Any]) -> float | None:
    """The per-item value a summary metric is made of (None when this item has none)."""
    if name == "error_rate":
        return float(record.get("status") != "ok")
    if record.get("status") != "ok":
        return None
    if name in PER_ITEM_FIELD:
        value = record.get(PER_ITEM_FIELD[name])
        if value is None and name.startswith("cost"):
            return None
        return float(value or 0.0) if isinstance(value, (int, float, type(None))) else None
    if name in ("unanswerable_abstained", "answerable_abstained"):
        answerable = (record.get("gold") or {}).get("answerable")
        if answerable is not (name == "answerable_abstained"):
            return None
        return float(bool(record.get("abstained")))
    value = (record.get("metrics") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def paired_metric(name: str, a: Mapping[str, Mapping[str, Any]],
                  b: Mapping[str, Mapping[str, Any]]) -> Paired:
    """The paired test of metric ``name`` over the item ids in both ``a`` and ``b``."""
    xs, ys = [], []
    for item_id, ra in a.items():
        rb = b.get(item_id)
        if rb is None:
            continue
        va, vb = item_value(name, ra), item_value(name, rb)
        if va is not None and vb is not None:
            xs.append(va)
            ys.append(vb)
    return paired(xs, ys)


@dataclass(frozen=True, slots=True)
class CacheUse:
    """How much of an evaluation was served from caches."""

    model_calls: int
    model_cache_hits: int | None
    """None when its results predate the count (an older agentflow)."""
    embedded: int | None
    """Texts embedded anew during the evaluation (None: not recorded)."""
    items_run: int

    @property
    def model_hit_rate(self) -> float | None:
        if self.model_cache_hits is None or not self.model_calls:
            return None
        return self.model_cache_hits / self.model_calls

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_hit_rate": self.model_hit_rate}


def cache_use(records: Iterable[Mapping[str, Any]], caches: Mapping[str, Any] | None) -> CacheUse:
    """An evaluation's cache use from its result lines and ``caches.json``."""
    calls = hits = 0
    known = True
    for r in records:
        calls += int(r.get("model_calls") or 0)
        if "cache_hits" in r:
            hits += int(r.get("cache_hits") or 0)
        else:
            known = False
    runs = (caches or {}).get("runs") or []
    embedded = [r.get("embedded") for r in runs if isinstance(r, Mapping)]
    total = None if not embedded or any(e is None for e in embedded) else sum(embedded)
    return CacheUse(calls, hits if known else None, total,
                    sum(int(r.get("items") or 0) for r in runs if isinstance(r, Mapping)))


def cache_notes(a: CacheUse, b: CacheUse) -> dict[str, str]:
    """Which caches differ between A and B, as ``{"model"|"embedding": why}``; a speed or cost
    difference on the fields a differing cache changes is not the workflow's doing."""
    notes: dict[str, str] = {}
    ra, rb = a.model_hit_rate, b.model_hit_rate
    if ra is not None and rb is not None and abs(ra - rb) >= 0.1:
        notes["model"] = (f"model calls answered from the model cache: A {ra:.0%}, B {rb:.0%} "
                          "(a cached call is instant and free)")
    ea, eb = a.embedded, b.embedded
    if ea is not None and eb is not None:
        cold, warm = max(ea, eb), min(ea, eb)
        if cold >= 5 and warm <= cold * 0.25:
            which = ("A", "B") if ea > eb else ("B", "A")
            notes["embedding"] = (
                f"{which[0]} embedded {cold:,} texts anew (a cold embedding cache), {which[1]} "
                f"only {warm:,}: {which[1]} found them in the warm embedding cache")
    elif (ea is None) != (eb is None):
        side = "A" if ea is None else "B"
        notes["embedding"] = (f"the embedding cache's state was not recorded for {side} "
                              "(evaluated by an older agentflow): a latency difference may come "
                              "from a warm cache")
    return notes


def cache_affected(name: str, notes: Mapping[str, str]) -> list[str]:
    """The notes that explain a difference in metric ``name``."""
    field = PER_ITEM_FIELD.get(name)
    return [notes[c] for c in CACHE_SENSITIVE.get(field or "", ()) if c in notes]
