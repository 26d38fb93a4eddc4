"""Evaluations in the trace viewer: the folders ``agentflow eval`` wrote, read as they are.

- :func:`listing`: each evaluation with what it evaluated and its headline metrics;
- :func:`detail`: one evaluation's summary and every item (question, expected, answer, scores,
  checks, its run's id for the link to its trace);
- :func:`comparison`: two evaluations side by side, each metric with its paired test (see
  :mod:`agentflow.eval.significance`) and the caches that make a speed difference meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentflow.eval.compare import Evaluation, load, primary_metric, tested_rows
from agentflow.eval.formats import DatasetError
from agentflow.eval.report import gold_text
from agentflow.eval.results import CACHES, MANIFEST, read_manifest
from agentflow.eval.significance import cache_use
from agentflow.eval.summary import COST_METRICS, direction, label, quality_names

HEADLINE = ("token_f1", "exact_match", "answer_contains", "recall@5", "routing_accuracy",
            "faithfulness", "abstention_accuracy", "hallucination_detection")
MAX_TEXT = 2_000


def _caches(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / CACHES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def card(folder: Path, eval_id: str) -> dict[str, Any]:
    """One evaluation as the list shows it."""
    try:
        e = load(folder)
    except DatasetError as exc:
        return {"id": eval_id, "name": folder.name, "folder": str(folder), "error": str(exc)}
    s = e.summary
    metrics = s.get("metrics") or {}
    headline = [n for n in HEADLINE if metrics.get(n) is not None][:3]
    manifest = read_manifest(folder) or {}
    return {"id": eval_id, "name": e.name, "folder": str(folder),
            "workflow": s.get("workflow"), "format": s.get("format"), "split": s.get("split"),
            "profile": s.get("profile"), "overrides": s.get("overrides") or [],
            "items": s.get("items") or {}, "started": manifest.get("started"),
            "written": (folder / "metrics.json").stat().st_mtime,
            "metrics": {n: metrics.get(n) for n in [*headline, "latency_p50_s", "cost_total",
                                                    "error_rate"]},
            "labels": {n: label(n) for n in [*headline, "latency_p50_s", "cost_total", "error_rate"]}}


def detail(folder: Path, eval_id: str) -> dict[str, Any]:
    """One evaluation: its summary, metric table and every item."""
    e = load(folder)
    s = e.summary
    names = quality_names(s.get("counts") or {})
    items = [_item(r) for r in sorted(e.records.values(), key=lambda r: r.get("index") or 0)]
    item_metrics = quality_names({n for i in items for n in i["metrics"]})
    return {**card(folder, eval_id), "summary": s,
            "metric_rows": [{"name": n, "label": label(n), "value": (s.get("metrics") or {}).get(n),
                             "count": (s.get("counts") or {}).get(n), "direction": direction(n)}
                            for n in [*names, *COST_METRICS]],
            "item_metrics": [{"name": n, "label": label(n), "direction": direction(n)}
                             for n in item_metrics],
            "items": items, "manifest": read_manifest(folder) or {},
            "has_manifest": (folder / MANIFEST).is_file()}


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 1] + "…"
    return value


def _item(r: Mapping[str, Any]) -> dict[str, Any]:
    inputs = r.get("inputs") or {}
    question = inputs.get("question") or next((v for v in inputs.values() if isinstance(v, str)), "")
    checks = r.get("checks") or {}
    failing = sorted(k for k, c in checks.items() if isinstance(c, Mapping) and c.get("passed") is False)
    return {"id": r.get("id"), "index": r.get("index"), "status": r.get("status"),
            "error": _cut(r.get("error")), "question": _cut(question),
            "expected": gold_text(r.get("gold") or {}, limit=None), "gold": r.get("gold") or {},
            "answer": _cut(r.get("prediction")), "route": r.get("route"),
            "answer_status": r.get("answer_status"), "abstained": r.get("abstained"),
            "metrics": {k: v for k, v in (r.get("metrics") or {}).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "checks": {k: {"passed": c.get("passed"), "score": c.get("score"),
                           "reason": c.get("reason"), "computed": c.get("computed")}
                       for k, c in checks.items() if isinstance(c, Mapping)},
            "failing_checks": failing, "run_id": r.get("run_id"), "latency_s": r.get("latency_s"),
            "tokens": r.get("tokens"), "cost": r.get("cost"), "cache_hits": r.get("cache_hits"),
            "model_calls": r.get("model_calls")}


def comparison(fa: Path, fb: Path) -> dict[str, Any]:
    """Two evaluations side by side: every metric with A, B, the paired test over shared items and
    its verdict, cache warnings, and the items whose scores differ."""
    a, b = load(fa), load(fb)
    use_a = cache_use(a.records.values(), _caches(fa))
    use_b = cache_use(b.records.values(), _caches(fb))
    tested, notes = tested_rows(a, b)
    shared = [i for i in a.records if i in b.records]
    out_rows = [{"name": r.name, "label": label(r.name), "a": r.a, "b": r.b, "delta": r.delta,
                 "direction": direction(r.name), "verdict": r.verdict,
                 "test": r.test.to_dict() if r.test else None, "cache_notes": list(r.cache)}
                for r in tested]
    return {"a": _side(a), "b": _side(b), "shared": len(shared), "rows": out_rows,
            "run_ids": {"a": [r.get("run_id") for r in a.records.values()],
                        "b": [r.get("run_id") for r in b.records.values()]},
            "cache": {"a": use_a.to_dict(), "b": use_b.to_dict(), "notes": notes},
            "same_items": _same_setup(a, b), "items": _changed_items(a, b, shared)}


def _side(e: Evaluation) -> dict[str, Any]:
    s = e.summary
    return {"name": e.name, "folder": str(e.folder), "workflow": s.get("workflow"),
            "format": s.get("format"), "split": s.get("split"), "profile": s.get("profile"),
            "overrides": s.get("overrides") or [], "items": s.get("items") or {}}


def _same_setup(a: Evaluation, b: Evaluation) -> list[str]:
    """What differs between the two evaluations' setups (what the comparison is about)."""
    out = []
    for key in ("workflow", "format", "split", "profile", "overrides", "dataset"):
        va, vb = a.summary.get(key), b.summary.get(key)
        if va != vb:
            out.append(f"{key}: {va!r} → {vb!r}")
    return out


def _changed_items(a: Evaluation, b: Evaluation, shared: list[str]) -> dict[str, Any]:
    key = primary_metric(a, b, shared)
    items = []
    for item_id in shared:
        ra, rb = a.records[item_id], b.records[item_id]
        ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
        changed = {n: [ma.get(n), mb.get(n)] for n in quality_names(set(ma) | set(mb))
                   if ma.get(n) != mb.get(n)}
        if not changed and ra.get("status") == rb.get("status"):
            continue
        inputs = ra.get("inputs") or {}
        items.append({"id": item_id, "question": _cut(inputs.get("question") or ""),
                      "a": {"answer": _cut(ra.get("prediction") or ra.get("error")),
                            "run_id": ra.get("run_id"), "status": ra.get("status")},
                      "b": {"answer": _cut(rb.get("prediction") or rb.get("error")),
                            "run_id": rb.get("run_id"), "status": rb.get("status")},
                      "changed": changed})
    return {"primary": key, "primary_label": label(key) if key else None, "list": items[:500],
            "more": max(0, len(items) - 500)}
