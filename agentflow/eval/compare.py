"""``agentflow eval compare DIR_A DIR_B``: two evaluations side by side.

The terminal table lists every metric of either with A, B and the delta B - A, marked ``better``
or ``worse`` by the metric's direction (higher accuracy, lower latency). The HTML page adds the
metric bars of both and the items whose scores differ, with both predictions and both traces.
Items are matched by id; the page says how many the two evaluations share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from agentflow.eval import svg
from agentflow.eval.formats import DatasetError
from agentflow.eval.report import UI_URL, fmt, page, short, trace_link
from agentflow.eval.results import CACHES, METRICS, latest_by_id, read_results
from agentflow.eval.significance import (
    Paired,
    cache_affected,
    cache_notes,
    cache_use,
    paired_metric,
)
from agentflow.eval.summary import COST_METRICS, direction, label, quality_names

PRIMARY = ("token_f1", "exact_match", "recall@5", "routing_accuracy", "hallucination_detection",
           "abstention_accuracy", "faithfulness")
"""The per-item metric that decides whether B did better on an item (the first both have)."""
MAX_ITEM_ROWS = 300


@dataclass(frozen=True, slots=True)
class Row:
    """One metric of the comparison; with ``test`` (see :func:`tested_rows`) its verdict says
    ``within noise`` where the paired test does not tell the two apart, and ``cache`` where a
    cache that one side used and the other did not explains the difference."""

    name: str
    a: float | None
    b: float | None
    test: Paired | None = None
    cache: tuple[str, ...] = ()

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def verdict(self) -> str:
        d = self.delta
        if d is None or abs(d) < 1e-9:
            return ""
        if self.test is not None:
            verdict = self.test.verdict(direction(self.name) == "higher")
            verdict = "" if verdict == "same" else verdict
            return "cache" if self.cache and verdict in ("better", "worse") else verdict
        return "better" if (d > 0) == (direction(self.name) == "higher") else "worse"


@dataclass(slots=True)
class Evaluation:
    """An evaluation folder as the comparison reads it."""

    folder: Path
    summary: dict[str, Any]
    records: dict[str, dict[str, Any]]

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)


def load(folder: str | Path) -> Evaluation:
    """Read ``metrics.json`` and ``results.jsonl`` of an evaluation folder."""
    path = Path(folder)
    metrics = path / METRICS
    if not metrics.is_file():
        raise DatasetError(f"{path} is no evaluation folder: it has no {METRICS} (run "
                           "`agentflow eval WORKFLOW --dataset ... --out DIR` first)")
    try:
        summary = json.loads(metrics.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{metrics}: invalid JSON ({exc.msg})") from None
    return Evaluation(path, summary, latest_by_id(read_results(path)))


def rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Row]:
    """A row per metric of either summary: quality metrics first, then latency, tokens, cost."""
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    names = quality_names({*ma, *mb}) + [n for n in COST_METRICS if n in ma or n in mb]
    return [Row(n, ma.get(n), mb.get(n)) for n in names]


def tested_rows(a: Evaluation, b: Evaluation) -> tuple[list[Row], dict[str, str]]:
    """:func:`rows` with each metric's paired test over the shared items, and the notes on caches
    that one evaluation used and the other did not."""
    notes = cache_notes(cache_use(a.records.values(), _caches(a.folder)),
                        cache_use(b.records.values(), _caches(b.folder)))
    return [Row(r.name, r.a, r.b, paired_metric(r.name, a.records, b.records),
                tuple(cache_affected(r.name, notes))) for r in rows(a.summary, b.summary)], notes


def _caches(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / CACHES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def table(comparison: Sequence[Row], name_a: str, name_b: str) -> str:
    """The comparison as a plain-text table for the terminal."""
    width = max([len(label(r.name)) for r in comparison] + [6])
    cols = f"{'metric':<{width}}  {name_a[:12]:>12}  {name_b[:12]:>12}  {'delta':>9}"
    lines = [cols, "-" * len(cols)]
    for r in comparison:
        delta = "" if r.delta is None else f"{r.delta:+.4f}"
        p = "" if r.test is None or r.test.p_value is None else f"  p={r.test.p_value:.3f}"
        lines.append(f"{label(r.name):<{width}}  {_num(r.a):>12}  {_num(r.b):>12}  {delta:>9}"
                     f"  {r.verdict}{p if r.verdict else ''}".rstrip())
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render(a: Evaluation, b: Evaluation, *, ui_url: str = UI_URL) -> str:
    """The compare page of two evaluations."""
    comparison, notes = tested_rows(a, b)
    shared = [i for i in a.records if i in b.records]
    title = f"agentflow eval compare: {a.name} vs {b.name}"
    quality = [r for r in comparison if r.name not in COST_METRICS]
    chart = svg.metric_bars([(label(r.name), [r.a, r.b]) for r in quality],
                            title="metrics, A and B", series=(f"A: {a.name}", f"B: {b.name}"))
    return page(title, [
        f"<h1>{escape(title)}</h1>",
        _sides(a, b, len(shared)),
        "".join(f"<p class=\"warn\">Caches differ: {escape(n)}; latency, tokens and cost "
                "differences they explain are marked <b>cache</b>, not better or worse.</p>"
                for n in notes.values()),
        "<h2>Metrics</h2><div class=\"charts\">", chart, _html_table(comparison, a, b), "</div>",
        _items(a, b, shared, ui_url),
    ])


def _sides(a: Evaluation, b: Evaluation, shared: int) -> str:
    def side(tag: str, e: Evaluation) -> str:
        s = e.summary
        sets = " ".join(f"<code>{short(o, 80)}</code>" for o in s.get("overrides") or [])
        return (f"<tr><th>{tag}</th><td><code>{escape(str(e.folder))}</code></td>"
                f"<td>{escape(str(s.get('workflow')))}</td><td>{escape(str(s.get('format')))}/"
                f"{escape(str(s.get('split')))}</td><td>{escape(str(s.get('profile') or ''))}</td>"
                f"<td>{sets}</td></tr>")
    return ("<table><tr><th></th><th>folder</th><th>workflow</th><th>dataset</th><th>profile</th>"
            "<th>--set</th></tr>" + side("A", a) + side("B", b) + "</table>"
            f"<p class=\"note\">{shared} items in both (matched by id); deltas are B - A.</p>")


def _html_table(comparison: Sequence[Row], a: Evaluation, b: Evaluation) -> str:
    body = "".join(
        f"<tr><td>{escape(label(r.name))}</td><td class=\"num\">{fmt(r.a, 4)}</td>"
        f"<td class=\"num\">{fmt(r.b, 4)}</td><td class=\"num {_css(r.verdict)}\">"
        f"{'' if r.delta is None else f'{r.delta:+.4f}'}</td><td class=\"{_css(r.verdict)}\" "
        f"title=\"{escape(_test_text(r))}\">{r.verdict}</td><td class=\"num\">{_p(r)}</td></tr>"
        for r in comparison)
    return (f"<table><tr><th>metric</th><th class=\"num\">A {escape(a.name)}</th>"
            f"<th class=\"num\">B {escape(b.name)}</th><th class=\"num\">B - A</th><th></th>"
            f"<th class=\"num\">p</th></tr>{body}</table>"
            f"<p class=\"note\">p: paired sign-flip test over the items both scored; a difference "
            f"with p &ge; 0.05 is <i>within noise</i>.</p>")


def _css(verdict: str) -> str:
    return {"within noise": "noise", "too few items": "noise"}.get(verdict, verdict)


def _p(r: Row) -> str:
    return "" if r.test is None or r.test.p_value is None else f"{r.test.p_value:.3f}"


def _test_text(r: Row) -> str:
    if r.test is None:
        return ""
    t = r.test
    ci = "" if t.ci_low is None else f"; 95% interval of B - A: {t.ci_low:+.4f} to {t.ci_high:+.4f}"
    return f"{t.method} (n={t.n}){ci}" + "".join(f"; {c}" for c in r.cache)


def primary_metric(a: Evaluation, b: Evaluation, ids: Sequence[str]) -> str | None:
    """The per-item metric both evaluations scored that decides item-level better/worse."""
    for name in PRIMARY:
        if any(name in (a.records[i].get("metrics") or {}) and
               name in (b.records[i].get("metrics") or {}) for i in ids):
            return name
    return None


def _changes(ra: Mapping[str, Any], rb: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """The metrics both records scored whose values differ."""
    ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
    return [(n, ma[n], mb[n]) for n in quality_names(set(ma) & set(mb))
            if ma[n] is not None and mb[n] is not None and abs(mb[n] - ma[n]) > 1e-9]


def _items(a: Evaluation, b: Evaluation, shared: Sequence[str], ui_url: str) -> str:
    key = primary_metric(a, b, shared)
    head = "<h2>Items</h2>"
    changed = [(i, _changes(a.records[i], b.records[i])) for i in shared]
    changed = [(i, c) for i, c in changed if c or
               a.records[i].get("status") != b.records[i].get("status")]
    if key is not None:
        scored = sum(1 for i in shared if key in (a.records[i].get("metrics") or {})
                     and key in (b.records[i].get("metrics") or {}))
        ups = [(vb > va) == (direction(key) == "higher")
               for _, c in changed for n, va, vb in c if n == key]
        head += (f"<p>By {escape(label(key))}: B is better on {sum(ups)} items, worse on "
                 f"{len(ups) - sum(ups)}, the same on {scored - len(ups)}.</p>")
    if not changed:
        return head + "<p class=\"note\">no item scored differently</p>"
    rows_html = []
    for item_id, changes in changed[:MAX_ITEM_ROWS]:
        ra, rb = a.records[item_id], b.records[item_id]
        inputs = ra.get("inputs") or {}
        deltas = "<br>".join(
            f"{escape(label(n))}: {fmt(va, 2)} &rarr; <span class=\"{Row(n, va, vb).verdict}\">"
            f"{fmt(vb, 2)}</span>" for n, va, vb in changes) or "status changed"
        rows_html.append(
            f"<tr><td>{short(item_id, 24)}</td><td>{short(inputs.get('question', ''), 120)}</td>"
            f"<td>{short(ra.get('prediction') or ra.get('error'), 160)}</td>"
            f"<td>{short(rb.get('prediction') or rb.get('error'), 160)}</td><td>{deltas}</td>"
            f"<td>{trace_link(ui_url, ra.get('run_id'))}<br>"
            f"{trace_link(ui_url, rb.get('run_id'))}</td></tr>")
    more = (f"<p class=\"note\">{len(changed) - MAX_ITEM_ROWS} more not shown</p>"
            if len(changed) > MAX_ITEM_ROWS else "")
    return (head + "<table class=\"items\"><tr><th>id</th><th>question</th><th>A prediction</th>"
            "<th>B prediction</th><th>A &rarr; B</th><th>traces A, B</th></tr>"
            f"{''.join(rows_html)}</table>{more}")
