"""Small inline SVG charts for the reports, written by hand: the report is one file with no
scripts and nothing fetched, so it opens anywhere (an air-gapped laptop, a CI artifact).

Every function returns an ``<svg>`` element as text; labels are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BLUE, ORANGE, GREY = "#3b6fb6", "#d9822b", "#8a8f98"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
            f'font-size="12"><title>{escape(title)}</title>' + "".join(body) + "</svg>")


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}" if abs(value) >= 0.001 else f"{value:.1e}"


def metric_bars(rows: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
                series: Sequence[str] = (), width: int = 640) -> str:
    """Horizontal bars on a 0-1 scale, one row per metric and one bar per series (A/B)."""
    n = max((len(values) for _, values in rows), default=1)
    colors = (BLUE, ORANGE, GREY)
    bar_h, gap, left, right = 14, 10, 190, 60
    row_h = n * bar_h + gap
    legend = 22 if series else 0
    height = legend + len(rows) * row_h + 8
    scale = width - left - right
    body: list[str] = []
    for i, name in enumerate(series):
        x = left + i * 140
        body.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colors[i % 3]}"/>'
                    f'<text x="{x + 16}" y="14">{escape(name)}</text>')
    for r, (name, values) in enumerate(rows):
        top = legend + r * row_h
        body.append(f'<text x="{left - 8}" y="{top + n * bar_h / 2 + 4}" '
                    f'text-anchor="end">{escape(name)}</text>')
        for j, value in enumerate(values):
            y = top + j * bar_h
            if value is None:
                body.append(f'<text x="{left + 4}" y="{y + 11}" fill="{GREY}">n/a</text>')
                continue
            w = max(0.0, min(1.0, value)) * scale
            body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                        f'fill="{colors[j % 3]}"/>'
                        f'<text x="{left + w + 4:.1f}" y="{y + 11}">{_fmt(value)}</text>')
    body.append(f'<line x1="{left}" y1="{legend}" x2="{left}" y2="{height - 8}" '
                f'stroke="{GREY}"/>')
    return _svg(width, height, body, title)


def histogram(values: Sequence[float], *, title: str, unit: str = "s", bins: int = 12,
              width: int = 640, height: int = 200) -> str:
    """A histogram of ``values`` with equal-width bins from the minimum to the maximum."""
    if not values:
        return _svg(width, 40, ['<text x="8" y="24">no values</text>'], title)
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / span * bins))] += 1
    left, bottom, top = 40, 30, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(counts)
    body: list[str] = []
    bw = plot_w / bins
    for i, c in enumerate(counts):
        h = c / peak * plot_h if peak else 0
        x, y = left + i * bw, top + plot_h - h
        body.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                    f'fill="{BLUE}"><title>{_fmt(low + i * span / bins)}-'
                    f'{_fmt(low + (i + 1) * span / bins)} {escape(unit)}: {c}</title></rect>')
        if c:
            body.append(f'<text x="{x + bw / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle" '
                        f'font-size="10">{c}</text>')
    axis_y = top + plot_h
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" '
                f'stroke="{GREY}"/>')
    for i in range(0, bins + 1, max(1, bins // 4)):
        x = left + i * bw
        body.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10">'
                    f'{_fmt(low + i * span / bins)}</text>')
    body.append(f'<text x="{left + plot_w}" y="{height - 2}" text-anchor="end" '
                f'font-size="10">{escape(unit)}</text>')
    return _svg(width, height, body, title)


def columns(values: Sequence[float], *, title: str, unit: str, width: int = 640,
            height: int = 180) -> str:
    """One column per item (in dataset order), e.g. the cost or the tokens of each item."""
    if not values:
        return _svg(width, 40, ['<text x="8" y="24">no values</text>'], title)
    left, bottom, top = 56, 20, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(values) or 1.0
    step = plot_w / len(values)
    body: list[str] = []
    for i, v in enumerate(values):
        h = v / peak * plot_h
        body.append(f'<rect x="{left + i * step:.2f}" y="{top + plot_h - h:.2f}" '
                    f'width="{max(step - 1, 0.6):.2f}" height="{h:.2f}" fill="{BLUE}">'
                    f'<title>item {i + 1}: {_fmt(v)} {escape(unit)}</title></rect>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h - frac * plot_h
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                    f'{_fmt(peak * frac)}</text>')
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
                f'y2="{top + plot_h}" stroke="{GREY}"/>')
    body.append(f'<text x="{left}" y="{height - 4}" font-size="10">items 1-{len(values)} '
                f'({escape(unit)} each)</text>')
    return _svg(width, height, body, title)

