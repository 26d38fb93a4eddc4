"""From result lines to ``metrics.json``: each metric's mean over the items it scored, latency
percentiles, tokens, cost and the error rate.

Quality metrics average over the finished items that have a value (``counts`` says how many); an
item that failed has no value, and the failures show as ``error_rate``. Latency, tokens and cost
are over the items that finished without error. ``metrics`` is one flat mapping, which is what
``agentflow eval compare`` reads; ``DIRECTION`` says which way each one is better.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from agentflow.eval import metrics as m

Direction = Literal["higher", "lower"]

ORDER = ("exact_match", "token_f1", "answer_contains", "recall@", "ndcg@10",
         "citation_precision", "citation_recall", "faithfulness", "relevancy",
         "abstention_accuracy", "unanswerable_abstained", "answerable_abstained",
         "abstention_judgement", "routing_accuracy", "hallucination_detection")
"""Quality metrics in the order reports show them (``recall@`` stands for every k, in order of k;
others follow, sorted)."""

COST_METRICS: dict[str, Direction] = {
    "latency_p50_s": "lower", "latency_p95_s": "lower", "latency_mean_s": "lower",
    "tokens_per_item": "lower", "cost_per_item": "lower", "cost_total": "lower",
    "error_rate": "lower",
}

LABELS = {
    "exact_match": "exact match", "token_f1": "token F1", "answer_contains": "answer contains",
    "ndcg@10": "nDCG@10", "citation_precision": "citation precision",
    "citation_recall": "citation recall", "relevancy": "response relevancy",
    "abstention_accuracy": "abstention accuracy",
    "unanswerable_abstained": "abstained when unanswerable",
    "answerable_abstained": "abstained when answerable",
    "abstention_judgement": "abstention judged right",
    "routing_accuracy": "routing accuracy", "hallucination_detection": "hallucination detection",
    "latency_p50_s": "latency p50 (s)", "latency_p95_s": "latency p95 (s)",
    "latency_mean_s": "latency mean (s)", "tokens_per_item": "tokens per item",
    "cost_per_item": "cost per item ($)", "cost_total": "cost total ($)",
    "error_rate": "error rate",
}


def direction(name: str) -> Direction:
    """Which way a metric is better."""
    if name in COST_METRICS:
        return COST_METRICS[name]
    return "lower" if name == "answerable_abstained" else "higher"


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


def quality_names(names: Iterable[str]) -> list[str]:
    """Quality metric names in display order."""
    present = set(names) - set(COST_METRICS)
    recalls = sorted((n for n in present if n.startswith("recall@") and n[7:].isdigit()),
                     key=lambda n: int(n[7:]))
    ordered = [m for n in ORDER for m in (recalls if n == "recall@" else [n]) if m in present]
    return ordered + sorted(present - set(ordered))


def select(records: Iterable[Mapping[str, Any]], ids: Sequence[str]) -> list[Mapping[str, Any]]:
    """The latest record of each of ``ids``, in that order (ids not run yet are left out)."""
    latest = {str(r.get("id")): r for r in records}
    return [latest[i] for i in ids if i in latest]


def summarize(records: Sequence[Mapping[str, Any]], *, planned: int,
              manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``metrics.json`` for these records (one per item, in dataset order)."""
    ok = [r for r in records if r.get("status") == "ok"]
    values: dict[str, list[float]] = {}
    for r in ok:
        for name, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)):
                values.setdefault(name, []).append(float(value))
    for name, gold in (("unanswerable_abstained", False), ("answerable_abstained", True)):
        flags = [float(bool(r.get("abstained"))) for r in ok
                 if (r.get("gold") or {}).get("answerable") is gold]
        if flags and "abstention_accuracy" in values:
            values[name] = flags
    out: dict[str, float | None] = {n: round(m.mean(values[n]), 4)
                                    for n in quality_names(values)}
    out.update(_costs(ok, len(records)))
    return {
        **{k: manifest.get(k) for k in ("workflow", "format", "dataset", "split", "profile",
                                        "overrides", "applied", "notes", "description")},
        "items": {"planned": planned, "finished": len(records), "ok": len(ok),
                  "errors": len(records) - len(ok)},
        "metrics": out,
        "counts": {n: len(values[n]) for n in quality_names(values)},
    }


def _costs(ok: Sequence[Mapping[str, Any]], finished: int) -> dict[str, float | None]:
    latencies = [float(r["latency_s"]) for r in ok if isinstance(r.get("latency_s"), (int, float))]
    tokens = [float(r.get("tokens") or 0) for r in ok]
    costs = [r.get("cost") for r in ok]
    known_costs = [float(c) for c in costs if isinstance(c, (int, float))]
    out: dict[str, float | None] = {
        "latency_p50_s": round(m.percentile(latencies, 50), 4) if latencies else None,
        "latency_p95_s": round(m.percentile(latencies, 95), 4) if latencies else None,
        "latency_mean_s": round(m.mean(latencies), 4) if latencies else None,
        "tokens_per_item": round(m.mean(tokens), 1) if tokens else None,
        "cost_per_item": round(sum(known_costs) / len(ok), 6) if known_costs else None,
        "cost_total": round(sum(known_costs), 6) if known_costs else None,
        "error_rate": round((finished - len(ok)) / finished, 4) if finished else None,
    }
    return out
