"""Diagrams of a flow's declared structure, offline: Mermaid text and a self-contained SVG.

Both read the plain structure tree of :func:`agentflow.graph.steps.describe`, so they draw exactly
what was compiled: routes as diamonds with their case labels, loops as boxes with their bound and
stop condition, parallel branches side by side, maps as boxes that say what they fan out over.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any


# mermaid ----------------------------------------------------------------------------------------
def to_mermaid(structure: dict[str, Any]) -> str:
    """Mermaid ``flowchart`` text for a compiled flow's ``structure``."""
    m = _Mermaid()
    entry, exits = m.step(structure["steps"], "  ")
    m.lines.insert(0, "flowchart TD")
    m.lines.insert(1, "  __start__([start])")
    m.lines.append("  __end__([end])")
    m.edge("__start__", entry)
    for e in exits:
        m.edge(e, "__end__")
    return "\n".join(m.lines) + "\n"


def _id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass
class _Mermaid:
    lines: list[str] = field(default_factory=list)
    count: int = 0

    def edge(self, a: str, b: str, label: str = "") -> None:
        self.lines.append(f"  {a} -->|{label}| {b}" if label else f"  {a} --> {b}")

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def step(self, s: dict[str, Any], pad: str) -> tuple[str, list[str]]:
        kind = s["kind"]
        if kind == "node":
            nid = _id(s["name"])
            self.lines.append(f'{pad}{nid}["{s["name"]}<br/><i>{s["type"]}</i>"]')
            return nid, [nid]
        if kind == "sequence":
            entry, exits = self.step(s["steps"][0], pad)
            for sub in s["steps"][1:]:
                e, x = self.step(sub, pad)
                for a in exits:
                    self.edge(a, e)
                exits = x
            return entry, exits
        if kind == "route":
            rid = _id(s["name"])
            self.lines.append(f'{pad}{rid}{{"{s["name"]}: {s["on"]}?"}}')
            exits: list[str] = []
            cases = dict(s["cases"])
            if s.get("default"):
                cases["(default)"] = s["default"]
            for label, case in cases.items():
                e, x = self.step(case, pad)
                self.edge(rid, e, label)
                exits.extend(x)
            return rid, exits
        if kind == "loop":
            lid = _id(s["name"])
            self.lines.append(f'{pad}subgraph {lid}["loop {s["name"]}: until {s["until"]}, '
                              f'at most {s["max_iterations"]}"]')
            entry, exits = self.step(s["body"], pad + "  ")
            self.lines.append(f"{pad}end")
            for x in exits:
                self.edge(x, entry, "retry")
            return entry, exits
        if kind == "parallel":
            fork, join = self.fresh("fork"), self.fresh("join")
            self.lines.append(f"{pad}{fork}(( ))")
            self.lines.append(f"{pad}{join}(( ))")
            for b, branch in enumerate(s["branches"]):
                e, x = self.step(branch, pad)
                self.edge(fork, e, f"branch {b}")
                for a in x:
                    self.edge(a, join)
            return fork, [join]
        if kind == "map":
            mid = _id(s["name"])
            limit = s["max_concurrency"] or "all"
            self.lines.append(f'{pad}subgraph {mid}["map {s["name"]}: each {s["item"]} of '
                              f'{s["over"]}, {limit} at a time"]')
            entry, exits = self.step(s["node"], pad + "  ")
            self.lines.append(f"{pad}end")
            return entry, exits
        raise ValueError(f"unknown step kind {kind!r}")


# svg --------------------------------------------------------------------------------------------
CHAR_W, LINE_H, PAD, GAP = 7.2, 18, 10, 22
COLORS = {"node": "#eef4ff", "loop": "#fff7e6", "map": "#eefaf0", "parallel": "#f6f0ff",
          "route": "#fdeef0"}


@dataclass
class Box:
    w: float
    h: float
    draw: Any  # callable(x, y, out: list[str]) -> None


def to_svg(structure: dict[str, Any]) -> str:
    """A self-contained SVG drawing of the flow (no fonts or scripts to fetch)."""
    box = _layout(structure["steps"])
    width, height = box.w + 2 * PAD, box.h + 2 * PAD + LINE_H + GAP
    out: list[str] = []
    title = html.escape(structure.get("flow", "flow"))
    out.append(f'<text x="{PAD}" y="{PAD + 12}" font-weight="bold">{title}</text>')
    box.draw(PAD, PAD + LINE_H + GAP / 2, out)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, sans-serif" '
            f'font-size="12">\n<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" '
            f'fill="#555"/></marker></defs>\n' + "\n".join(out) + "\n</svg>\n")


def _text_w(text: str) -> float:
    return len(text) * CHAR_W + 2 * PAD


def _arrow(x1: float, y1: float, x2: float, y2: float, out: list[str], label: str = "") -> None:
    out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" '
               f'marker-end="url(#a)"/>')
    if label:
        out.append(f'<text x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + y2) / 2:.1f}" fill="#a33" '
                   f'font-size="11">{html.escape(label)}</text>')


def _layout(s: dict[str, Any]) -> Box:
    kind = s["kind"]
    if kind == "node":
        name, sub = s["name"], s["type"]
        w, h = max(_text_w(name), _text_w(sub)), 2 * LINE_H + PAD

        def draw(x: float, y: float, out: list[str]) -> None:
            out.append(f'<g class="node" data-name="{html.escape(name)}"><rect x="{x:.1f}" '
                       f'y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="{COLORS["node"]}" '
                       f'stroke="#4a6fa5"/><text x="{x + w / 2:.1f}" y="{y + LINE_H:.1f}" '
                       f'text-anchor="middle">{html.escape(name)}</text><text x="{x + w / 2:.1f}" '
                       f'y="{y + 2 * LINE_H - 2:.1f}" text-anchor="middle" fill="#666" '
                       f'font-size="10">{html.escape(sub)}</text></g>')

        return Box(w, h, draw)
    if kind == "sequence":
        return _column([_layout(c) for c in s["steps"]])
    if kind == "route":
        head = f'{s["name"]}: {s["on"]}?'
        cases = dict(s["cases"])
        if s.get("default"):
            cases["(default)"] = s["default"]
        return _row([_layout(c) for c in cases.values()], list(cases), head, "route")
    if kind == "parallel":
        return _frame(_row([_layout(b) for b in s["branches"]], [f"branch {i}" for i in range(
            len(s["branches"]))], None, "parallel"), f'parallel {s["name"]}', "parallel")
    if kind == "loop":
        return _frame(_layout(s["body"]), f'loop {s["name"]}: until {s["until"]}, '
                      f'at most {s["max_iterations"]}', "loop", back=True)
    if kind == "map":
        limit = s["max_concurrency"] or "all"
        return _frame(_layout(s["node"]), f'map {s["name"]}: each {s["item"]} of {s["over"]}, '
                      f'{limit} at a time', "map")
    raise ValueError(f"unknown step kind {kind!r}")


def _column(boxes: list[Box]) -> Box:
    w = max(b.w for b in boxes)
    h = sum(b.h for b in boxes) + GAP * (len(boxes) - 1)

    def draw(x: float, y: float, out: list[str]) -> None:
        cy = y
        for i, b in enumerate(boxes):
            bx = x + (w - b.w) / 2
            b.draw(bx, cy, out)
            cy += b.h
            if i < len(boxes) - 1:
                _arrow(x + w / 2, cy, x + w / 2, cy + GAP, out)
                cy += GAP

    return Box(w, h, draw)


def _row(boxes: list[Box], labels: list[str], head: str | None, kind: str) -> Box:
    head_h = 2 * LINE_H if head else 0
    w = max(sum(b.w for b in boxes) + GAP * (len(boxes) - 1), _text_w(head or ""))
    h = head_h + GAP + max(b.h for b in boxes)

    def draw(x: float, y: float, out: list[str]) -> None:
        top = y
        if head:
            cx = x + w / 2
            hw = _text_w(head) / 2
            out.append(f'<polygon points="{cx - hw:.1f},{y + LINE_H:.1f} {cx:.1f},{y:.1f} '
                       f'{cx + hw:.1f},{y + LINE_H:.1f} {cx:.1f},{y + 2 * LINE_H:.1f}" '
                       f'fill="{COLORS[kind]}" stroke="#a55"/><text x="{cx:.1f}" '
                       f'y="{y + LINE_H + 4:.1f}" text-anchor="middle">{html.escape(head)}</text>')
            top = y + head_h
        total = sum(b.w for b in boxes) + GAP * (len(boxes) - 1)
        bx = x + (w - total) / 2
        for b, label in zip(boxes, labels, strict=True):
            _arrow(x + w / 2, top, bx + b.w / 2, top + GAP, out, label)
            b.draw(bx, top + GAP, out)
            bx += b.w + GAP

    return Box(w, h, draw)


def _frame(inner: Box, title: str, kind: str, back: bool = False) -> Box:
    w = max(inner.w, _text_w(title)) + 2 * PAD + (GAP if back else 0)
    h = inner.h + LINE_H + 2 * PAD

    def draw(x: float, y: float, out: list[str]) -> None:
        out.append(f'<g class="{kind}"><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                   f'height="{h:.1f}" rx="8" fill="{COLORS[kind]}" stroke="#999" '
                   f'stroke-dasharray="4 3"/><text x="{x + PAD:.1f}" y="{y + LINE_H - 2:.1f}" '
                   f'fill="#444" font-size="11">{html.escape(title)}</text></g>')
        ix = x + (w - inner.w - (GAP if back else 0)) / 2
        inner.draw(ix, y + LINE_H + PAD, out)
        if back:
            rx = ix + inner.w + GAP / 2
            y1, y2 = y + LINE_H + PAD + inner.h - 6, y + LINE_H + PAD + 6
            out.append(f'<path d="M{ix + inner.w:.1f},{y1:.1f} H{rx:.1f} V{y2:.1f} '
                       f'H{ix + inner.w + 2:.1f}" fill="none" stroke="#c80" '
                       f'marker-end="url(#a)"/>')

    return Box(w, h, draw)
