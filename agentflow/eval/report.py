"""``report.html``: one self-contained page per evaluation (inline CSS and SVG, no scripts, nothing
fetched), written beside ``metrics.json``.

It shows what was evaluated, the metric bars, the latency histogram, tokens and cost per item, and
a table of every item with its gold, the prediction, its metrics and a link to its run in the
trace viewer (``agentflow ui``, whose run pages are ``/runs/<run id>``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from agentflow.eval import svg
from agentflow.eval.summary import label, quality_names

UI_URL = "http://127.0.0.1:8737"
"""Where ``agentflow ui`` serves the trace viewer by default."""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1400px;color:#1d2430;padding:0 16px;box-sizing:border-box}
svg{max-width:100%;height:auto}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde1e7}
.meta{color:#5b6472}code{background:#f1f3f6;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 8px;border-bottom:1px solid #e6e9ee;
text-align:left;vertical-align:top}th{background:#f6f7f9;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.items{table-layout:fixed;width:100%}.items td{font-size:12.5px;overflow-wrap:anywhere}
.score{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.score span{color:#5b6472}
.err{color:#b3261e}.ok{color:#1f7a3a}.noise{color:#5b6472}.cache{color:#9a6700;font-weight:600}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px}
.better{color:#1f7a3a;font-weight:600}.worse{color:#b3261e;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:24px}.note{color:#5b6472;font-size:13px}
details summary{cursor:pointer}
"""


def page(title: str, body: Sequence[str]) -> str:
    """A whole HTML document around ``body``."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")


def trace_link(ui_url: str, run_id: str | None) -> str:
    if not run_id:
        return "<span class=\"note\">no trace</span>"
    href = f"{ui_url.rstrip('/')}/runs/{run_id}"
    return f'<a href="{escape(href)}" title="{escape(run_id)}">trace {escape(run_id[:8])}</a>'


def short(text: Any, limit: int = 160) -> str:
    """Escaped text cut to ``limit`` characters, the whole of it in a tooltip."""
    raw = " ".join(str(text if text is not None else "").split())
    if len(raw) <= limit:
        return escape(raw)
    return f'<span title="{escape(raw)}">{escape(raw[: limit - 1])}…</span>'


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def render(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *,
           ui_url: str = UI_URL) -> str:
    """The report page of one evaluation."""
    title = f"agentflow eval: {summary.get('workflow')} on {summary.get('format')}"
    return page(title, [
        f"<h1>{escape(title)}</h1>",
        _header(summary, ui_url),
        _metrics(summary),
        _costs(summary, records),
        _items(records, ui_url),
    ])


def _header(summary: Mapping[str, Any], ui_url: str) -> str:
    items = summary.get("items") or {}
    rows = [
        ("dataset", f"{summary.get('description') or ''} <code>{escape(str(summary.get('dataset')))}"
                    f"</code>, split <code>{escape(str(summary.get('split')))}</code>"),
        ("items", f"{items.get('finished', 0)} finished of {items.get('planned', 0)}, "
                  f"{items.get('errors', 0)} with errors"),
        ("profile", escape(str(summary.get("profile") or "the workflow's"))),
        ("written", escape(time.strftime("%Y-%m-%d %H:%M"))),
    ]
    for key in ("applied", "overrides"):
        values = summary.get(key) or []
        if values:
            name = "from the dataset" if key == "applied" else "--set"
            rows.append((name, "<br>".join(f"<code>{short(v, 140)}</code>" for v in values)))
    notes = list(summary.get("notes") or [])
    html = ['<table class="meta">']
    html += [f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows]
    html.append("</table>")
    if notes:
        html.append("<ul class=\"note\">" + "".join(f"<li>{escape(n)}</li>" for n in notes)
                    + "</ul>")
    html.append(f'<p class="note">Each item links to its run in the trace viewer: start it with '
                f'<code>agentflow ui</code> (links point at {escape(ui_url)}).</p>')
    return "".join(html)


def _metrics(summary: Mapping[str, Any]) -> str:
    metrics = summary.get("metrics") or {}
    counts = summary.get("counts") or {}
    names = quality_names(counts)
    if not names:
        return "<h2>Metrics</h2><p class=\"note\">no metric could be scored</p>"
    chart = svg.metric_bars([(label(n), [metrics.get(n)]) for n in names], title="metrics")
    rows = "".join(f"<tr><td>{escape(label(n))}</td><td class=\"num\">{fmt(metrics.get(n))}</td>"
                   f"<td class=\"num\">{counts.get(n, 0)}</td></tr>" for n in names)
    return ("<h2>Metrics</h2><div class=\"charts\">" + chart +
            "<table><tr><th>metric</th><th class=\"num\">mean</th>"
            "<th class=\"num\">items scored</th></tr>" + rows + "</table></div>")


def _costs(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    metrics = summary.get("metrics") or {}
    ok = [r for r in records if r.get("status") == "ok"]
    names = ("latency_p50_s", "latency_p95_s", "latency_mean_s", "tokens_per_item",
             "cost_per_item", "cost_total", "error_rate")
    table = "<table>" + "".join(
        f"<tr><td>{escape(label(n))}</td><td class=\"num\">{fmt(metrics.get(n), 4)}</td></tr>"
        for n in names) + "</table>"
    latency = svg.histogram([float(r["latency_s"]) for r in ok], title="latency per item",
                            unit="s")
    costs = [float(r.get("cost") or 0.0) for r in ok]
    if any(costs):
        spend = svg.columns(costs, title="cost per item", unit="$")
    else:
        spend = ("<p class=\"note\">Every item cost $0 (offline models, or no price known): "
                 "tokens per item instead.</p>"
                 + svg.columns([float(r.get("tokens") or 0) for r in ok],
                               title="tokens per item", unit="tokens"))
    return ("<h2>Latency, tokens and cost</h2><div class=\"charts\">" + table +
            f"<div><h3>latency per item</h3>{latency}</div></div>"
            f"<h3>cost per item</h3>{spend}")


def gold_text(gold: Mapping[str, Any], *, limit: int | None = 140) -> str:
    """What an item expects, as one line of plain text: answers, (un)answerable, route, faithful
    or not, gold documents."""
    parts = []
    if gold.get("answers"):
        parts.append(" | ".join(gold["answers"][:3]))
    if gold.get("answerable") is False:
        parts.append("(unanswerable)")
    if gold.get("route"):
        parts.append(f"route: {gold['route']}")
    if gold.get("faithful") is not None:
        parts.append("faithful" if gold["faithful"] else "hallucinated")
    if gold.get("doc_ids"):
        parts.append("docs: " + ", ".join(gold["doc_ids"][:4]))
    text = "; ".join(parts)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _scores(metrics: Mapping[str, Any], names: Sequence[str]) -> str:
    """An item's metrics as ``name value`` lines in one cell (a column per metric made the table
    wider than a window)."""
    return "".join(f"<div class=\"score\"><span>{escape(label(n))}</span> {fmt(metrics.get(n), 2)}"
                   "</div>" for n in names if metrics.get(n) is not None)


def _items(records: Sequence[Mapping[str, Any]], ui_url: str) -> str:
    names = quality_names({n for r in records for n in (r.get("metrics") or {})})
    head = ("<colgroup><col style=\"width:3%\"><col style=\"width:8%\"><col style=\"width:20%\">"
            "<col style=\"width:14%\"><col style=\"width:24%\"><col style=\"width:7%\">"
            "<col style=\"width:12%\"><col style=\"width:5%\"><col style=\"width:7%\"></colgroup>"
            "<tr><th>#</th><th>id</th><th>question</th><th>gold</th><th>prediction</th>"
            "<th>route</th><th>scores</th><th class=\"num\">latency s</th><th>tokens · cost · trace</th></tr>")
    rows = []
    for n, r in enumerate(records, start=1):
        inputs = r.get("inputs") or {}
        question = inputs.get("question") or next(iter(inputs.values()), "")
        if r.get("status") == "ok":
            prediction = short(r.get("prediction"), 200)
        else:
            prediction = f'<span class="err">error: {short(r.get("error"), 200)}</span>'
        metrics = r.get("metrics") or {}
        rows.append(
            f"<tr><td class=\"num\">{n}</td><td>{short(r.get('id'), 24)}</td>"
            f"<td class=\"text\">{short(question, 140)}</td>"
            f"<td class=\"text\">{short(gold_text(r.get('gold') or {}, limit=None), 140)}</td>"
            f"<td class=\"text\">{prediction}</td><td>{fmt(r.get('route'))}</td>"
            f"<td>{_scores(metrics, names)}</td>"
            f"<td class=\"num\">{fmt(r.get('latency_s'), 2)}</td>"
            f"<td>{fmt(r.get('tokens'))} tok · {fmt(r.get('cost'), 5)}<br>"
            f"{trace_link(ui_url, r.get('run_id'))}</td></tr>")
    return (f"<h2>Items ({len(records)})</h2><table class=\"items\">{head}"
            + "".join(rows) + "</table>")
