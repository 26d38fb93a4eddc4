// The timeline: one lane for the run's main path, one per loop (its passes side by side, each
// marked with its verdict), one per parallel branch and one per map item.
//
// It zooms (ctrl + wheel over the lanes, the wheel over the axis or the overview, the + and −
// buttons, or a range brushed on the overview) and pans (drag the lanes, shift + wheel, or drag
// the brush); double-click fits the whole run. Bars are never thinner than MIN_W pixels, and a bar
// shows its label only where the label fits inside it (cut with "…" otherwise, the full name on
// hover), so labels never run into each other. The axis counts from the run's start in one unit
// that suits the range shown. Clicking a lane's name or a loop pass zooms to it. A darker band in a
// bar is the time spent in its child spans; the rest is the span's own time.
//
// Lanes are not in a scroll box of their own: the timeline is as tall as its lanes, and only the
// lanes in the browser window (and the bars in the time range shown) are in the DOM, so a run of
// thousands of spans zooms and scrolls as smoothly as a small one.
import { esc, fmtDuration, h } from "./util.js";

const ROW = 20;
const PAD = 6;
const MIN_LANE = 32;
const MIN_W = 4;
const CHAR_W = 6.4;
const LANE_KINDS = new Set(["branch", "map_item"]);
const HIDDEN = new Set(["loop"]);
const LABEL_KEY = "agentflow.timeline.label";
const MARGIN = 400;
const MIN_DRAWN = 24;

export function buildLanes(model) {
  const laneOf = new Map();
  const lanes = new Map();
  const depthOf = new Map();
  const laneKey = (s) => {
    const cached = laneOf.get(s.span_id);
    if (cached !== undefined) return cached;
    let key = "main";
    if (s.kind === "loop_pass") key = `loop|${s.parent_id}`;
    else if (LANE_KINDS.has(s.kind)) key = s.span_id;
    else {
      const parent = model.byId.get(s.parent_id);
      if (parent && LANE_KINDS.has(parent.kind)) key = parent.span_id;
      else if (parent && parent.kind === "loop_pass") {
        // what runs in a pass sits in the lane that holds the loop; the pass lane shows verdicts
        const loop = model.byId.get(parent.parent_id);
        key = loop ? laneKey(loop) : "main";
      } else if (parent) key = laneKey(parent);
    }
    laneOf.set(s.span_id, key);
    return key;
  };
  for (const s of model.spans) {
    if (HIDDEN.has(s.kind)) { laneKey(s); continue; }
    const key = laneKey(s);
    let lane = lanes.get(key);
    if (!lane) {
      lane = { key, label: laneLabel(key, s, model), first: s.start, last: s.shownEnd, rows: 1, bars: [], ends: [] };
      lanes.set(key, lane);
    }
    if (s.shownEnd > lane.last) lane.last = s.shownEnd;
    // a bar goes below its parent (when in the same lane), on the first row free at its start, so
    // concurrent siblings (a model call and a retrieval at once) never hide each other
    const parent = model.byId.get(s.parent_id);
    const min = parent && !HIDDEN.has(parent.kind) && laneOf.get(parent.span_id) === key
      ? (depthOf.get(parent.span_id) ?? -1) + 1 : 0;
    let depth = min;
    while (depth < lane.ends.length && lane.ends[depth] > s.start) depth++;
    lane.ends[depth] = Math.max(s.shownEnd, s.start + 1e-9);
    depthOf.set(s.span_id, depth);
    lane.rows = Math.max(lane.rows, depth + 1);
    lane.bars.push({ s, depth });
  }
  const main = lanes.get("main");
  const rest = [...lanes.values()].filter((l) => l !== main).sort((a, b) => a.first - b.first);
  const ordered = main ? [main, ...rest] : rest;
  let top = 0;
  ordered.forEach((lane, i) => {
    lane.index = i;
    lane.top = top;
    lane.height = Math.max(lane.rows * ROW + PAD, MIN_LANE);
    top += lane.height;
  });
  return { lanes: ordered, height: top, laneOf };
}

function laneLabel(key, s, model) {
  if (key === "main") return "run";
  if (key.startsWith("loop|")) return `loop ${s.name}`;
  const where = s.pass_index ? ` · pass ${s.pass_index}` : "";
  if (s.kind === "map_item") return `${s.name} · item ${s.item_index}${where}`;
  if (s.kind === "branch") return `${s.name} · branch ${s.branch}${where}`;
  const owner = model.byId.get(key);
  return owner ? laneLabel(key, owner, model) : key;
}

/** A bar's label, and a shorter one for a narrow bar. */
function barLabels(s) {
  const info = s.summary || {};
  if (s.kind === "loop_pass") {
    const mark = info.passed ? "✓" : "✗";
    return [`pass ${s.pass_index} ${mark}`, `${s.pass_index}${mark}`];
  }
  if (s.kind === "map_item") return [`item ${s.item_index}`, `${s.item_index}`];
  if (s.kind === "branch") return [`branch ${s.branch}`, `b${s.branch}`];
  if (s.kind === "model_call") return [`${info.alias || s.name} → ${info.model || ""}`, info.alias || s.name];
  if (s.kind === "check") return [`${s.name}: ${info.verdict ?? (info.passed ? "pass" : "")}`, s.name];
  if (s.kind === "map") return [`${s.name} ×${info.count ?? "?"}`, s.name];
  return [s.name, s.name];
}

/** Time spent in a span's direct children (their union), as [start, end] pieces. */
function childPieces(model, s) {
  const kids = model.children.get(s.span_id);
  if (!kids || !kids.length) return [];
  const list = kids.map((k) => [Math.max(k.start, s.start), Math.min(k.shownEnd, s.shownEnd)]).filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  const out = [];
  for (const [a, b] of list) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b); else out.push([a, b]);
  }
  return out;
}

export function renderTimeline(model, { onSpan } = {}) {
  const { lanes, height, laneOf } = buildLanes(model);
  const t0 = model.t0;
  const total = Math.max(model.tEnd - t0, 1e-6);
  let v0 = 0;
  let v1 = total;
  let focused = null;
  const kidsCache = new Map();
  const pieces = (s) => {
    let p = kidsCache.get(s.span_id);
    if (!p) { p = childPieces(model, s); kidsCache.set(s.span_id, p); }
    return p;
  };

  const range = h("span.tl-range");
  const zoomIn = h("button.tl-btn#tl-zoom-in", { type: "button", title: "zoom in (ctrl + wheel)" }, "+");
  const zoomOut = h("button.tl-btn#tl-zoom-out", { type: "button", title: "zoom out" }, "−");
  const fit = h("button.tl-btn#tl-fit", { type: "button", title: "show the whole run (double-click)" }, "fit");
  const toolbar = h("div.tl-toolbar", zoomOut, zoomIn, fit, range,
    h("span.tl-hint", "ctrl + wheel or wheel over the axis: zoom · drag: pan · drag on the overview: pick a range · click a lane's name or a loop pass: focus · darker band: time in child spans"));
  const canvas = h("canvas.tl-overview-canvas");
  const brush = h("div.tl-brush");
  const overview = h("div.tl-overview", { title: "the whole run: drag to pick a range, drag the box to pan, double-click to fit" }, canvas, brush);
  const handle = h("div.tl-resize", { title: "drag to widen the lane names" });
  const axis = h("div.tl-head", h("div.tl-axis-label", "lane (click to focus)", handle), h("div.tl-ticks"));
  const rows = h("div.tl-rows");
  const inner = h("div.tl-inner", { style: { height: `${height}px` } }, rows);
  const el = h("div.timeline", { dataset: { lanes: lanes.length } }, toolbar, overview, axis, inner);
  const savedLabel = Number(localStorage.getItem(LABEL_KEY));
  if (savedLabel >= 120 && savedLabel <= 600) el.style.setProperty("--tl-label", `${savedLabel}px`);

  const labelWidth = () => axis.firstChild.getBoundingClientRect().width;
  const trackWidth = () => Math.max(50, inner.clientWidth - labelWidth());

  let drawn = "";
  const draw = () => {
    const W = trackWidth();
    const span = v1 - v0;
    range.textContent = v0 <= 1e-12 && v1 >= total - 1e-12
      ? `whole run · ${fmtDuration(total)}`
      : `${fmtAt(v0, span)} – ${fmtAt(v1, span)} of ${fmtDuration(total)} (×${(total / span).toFixed(total / span < 10 ? 1 : 0)})`;
    el.dataset.viewStart = v0.toFixed(9);
    el.dataset.viewEnd = v1.toFixed(9);
    drawTicks(axis.lastChild, v0, v1, W);
    brush.style.left = `${(v0 / total) * 100}%`;
    brush.style.width = `${Math.max(((v1 - v0) / total) * 100, 0.3)}%`;
    // the lanes in the browser window, whatever scrolls it
    // (and the first few even while the timeline is still below the window, so they are there
    // the moment it scrolls in)
    const rect = inner.getBoundingClientRect();
    const top = -rect.top - MARGIN;
    const bottom = -rect.top + (window.innerHeight || 800) + MARGIN;
    const parts = [];
    const first = firstVisible(lanes, Math.max(top, 0));
    for (let i = first; i < lanes.length && (lanes[i].top < bottom || i - first < MIN_DRAWN); i++) {
      parts.push(laneHtml(lanes[i], t0 + v0, span, W, pieces, focused));
    }
    const html = parts.join("");
    if (html !== drawn) { rows.innerHTML = html; drawn = html; }
  };
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  const setView = (a, b) => {
    const minSpan = Math.min(total, 1e-6);
    let span = Math.min(Math.max(b - a, minSpan), total);
    a = Math.min(Math.max(a, 0), total - span);
    v0 = a;
    v1 = a + span;
    schedule();
  };
  const zoomAt = (factor, at) => {
    const span = (v1 - v0) * factor;
    const frac = (at - v0) / (v1 - v0 || 1);
    setView(at - frac * span, at - frac * span + span);
  };
  const timeAt = (clientX) => {
    const left = inner.getBoundingClientRect().left + labelWidth();
    return v0 + ((clientX - left) / trackWidth()) * (v1 - v0);
  };

  window.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", () => { drawOverview(canvas, lanes, t0, total); schedule(); });
  zoomIn.addEventListener("click", () => zoomAt(0.5, (v0 + v1) / 2));
  zoomOut.addEventListener("click", () => zoomAt(2, (v0 + v1) / 2));
  fit.addEventListener("click", () => { focused = null; setView(0, total); });
  el.addEventListener("dblclick", (e) => { if (!e.target.closest(".tl-bar, .tl-label, button")) { focused = null; setView(0, total); } });

  // wheel: zoom with ctrl (or over the axis and the overview), pan with shift or sideways
  const onWheel = (e, always) => {
    const sideways = Math.abs(e.deltaX) > Math.abs(e.deltaY);
    if (e.shiftKey || sideways) {
      e.preventDefault();
      const d = sideways ? e.deltaX : e.deltaY;
      setView(v0 + (d / trackWidth()) * (v1 - v0), v1 + (d / trackWidth()) * (v1 - v0));
      return;
    }
    if (!always && !e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    const at = always && e.currentTarget === overview
      ? ((e.clientX - overview.getBoundingClientRect().left) / overview.clientWidth) * total : timeAt(e.clientX);
    zoomAt(Math.exp(Math.max(-60, Math.min(60, e.deltaY)) * 0.01), Math.min(Math.max(at, 0), total));
  };
  inner.addEventListener("wheel", (e) => onWheel(e, false), { passive: false });
  axis.lastChild.addEventListener("wheel", (e) => onWheel(e, true), { passive: false });
  overview.addEventListener("wheel", (e) => onWheel(e, true), { passive: false });

  // drag on the lanes pans; a click without a drag picks a bar or focuses a lane
  let drag = null;
  inner.addEventListener("mousedown", (e) => {
    if (e.button !== 0 || e.target.closest(".tl-label")) return;
    drag = { x: e.clientX, v0, v1, moved: false };
  });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (drag.moved) {
      const dt = (dx / trackWidth()) * (drag.v1 - drag.v0);
      setView(drag.v0 - dt, drag.v1 - dt);
      el.classList.add("panning");
    }
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.moved) inner.dataset.justPanned = "1";
    drag = null;
    el.classList.remove("panning");
  });
  rows.addEventListener("click", (e) => {
    if (inner.dataset.justPanned) { delete inner.dataset.justPanned; return; }
    const label = e.target.closest(".tl-label");
    if (label) { focusLane(label.parentNode.dataset.lane); return; }
    const bar = e.target.closest(".tl-bar");
    if (!bar) return;
    rows.querySelectorAll(".tl-bar.selected").forEach((b) => b.classList.remove("selected"));
    bar.classList.add("selected");
    const seq = Number(bar.dataset.seq);
    const s = model.bySeq.get(seq);
    if (s && s.kind === "loop_pass") focusSpan(seq);
    onSpan && onSpan(seq);
  });

  // the overview: drag to brush a range, drag the brush to pan
  let brushing = null;
  overview.addEventListener("mousedown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    const box = overview.getBoundingClientRect();
    const t = ((e.clientX - box.left) / box.width) * total;
    // inside the box pans it; elsewhere, or when it shows (nearly) the whole run, a new range
    const pan = e.target === brush && v1 - v0 < total * 0.9;
    brushing = pan ? { pan: true, x: e.clientX, v0, v1, box } : { pan: false, from: t, box };
  });
  window.addEventListener("mousemove", (e) => {
    if (!brushing) return;
    const { box } = brushing;
    if (brushing.pan) {
      const dt = ((e.clientX - brushing.x) / box.width) * total;
      setView(brushing.v0 + dt, brushing.v1 + dt);
    } else {
      const t = Math.min(Math.max(((e.clientX - box.left) / box.width) * total, 0), total);
      if (Math.abs(t - brushing.from) > total * 0.002) setView(Math.min(t, brushing.from), Math.max(t, brushing.from));
    }
  });
  window.addEventListener("mouseup", () => { brushing = null; });
  overview.addEventListener("dblclick", () => { focused = null; setView(0, total); });

  // the lane names' column: drag its edge to widen it
  handle.addEventListener("mousedown", (e) => {
    e.preventDefault();
    e.stopPropagation();
    const x = e.clientX;
    const w0 = labelWidth();
    const move = (ev) => {
      const w = Math.min(600, Math.max(120, w0 + ev.clientX - x));
      el.style.setProperty("--tl-label", `${w}px`);
      schedule();
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      localStorage.setItem(LABEL_KEY, String(Math.round(labelWidth())));
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });

  const pad = (a, b) => { const p = Math.max((b - a) * 0.04, total * 0.0005); return [a - p, b + p]; };
  const focusLane = (key) => {
    const lane = lanes.find((l) => l.key === key);
    if (!lane) return;
    focused = key;
    const [a, b] = pad(lane.first - t0, lane.last - t0);
    setView(a, b);
  };
  const focusSpan = (seq) => {
    const s = model.bySeq.get(seq);
    if (!s) return;
    focused = laneOf.get(s.span_id) ?? null;
    if (s.kind === "loop_pass") focused = `loop|${s.parent_id}`;
    const [a, b] = pad(s.start - t0, s.shownEnd - t0);
    setView(a, b);
    const lane = lanes.find((l) => l.key === focused);
    if (lane) {
      const rect = inner.getBoundingClientRect();
      const y = rect.top + lane.top;
      if (y < 0 || y > window.innerHeight - 60) window.scrollBy({ top: y - window.innerHeight / 3 });
    }
  };

  // the lanes first; the overview strip (every span once) right after the page is drawn
  el.draw = () => { draw(); requestAnimationFrame(() => drawOverview(canvas, lanes, t0, total)); };
  el.laneCount = lanes.length;
  el.setView = (a, b) => { setView(a, b); draw(); };
  el.focusLane = focusLane;
  el.focusSpan = focusSpan;
  return el;
}

function firstVisible(lanes, top) {
  let lo = 0, hi = lanes.length - 1, ans = lanes.length;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lanes[mid].top + lanes[mid].height < top) lo = mid + 1;
    else { ans = mid; hi = mid - 1; }
  }
  return ans;
}

function laneHtml(lane, start, span, W, pieces, focused) {
  const out = [];
  const scale = W / span;
  for (const { s, depth } of lane.bars) {
    let x0 = (s.start - start) * scale;
    let x1 = (s.shownEnd - start) * scale;
    if (x1 < -MIN_W || x0 > W) continue; // outside the range shown
    const clipL = x0 < 0, clipR = x1 > W;
    if (clipL) x0 = 0;
    if (clipR) x1 = W;
    const width = Math.max(x1 - x0, MIN_W);
    if (x0 + width > W) x0 = Math.max(0, W - width);
    const info = s.summary || {};
    const verdict = s.kind === "loop_pass" ? (info.passed ? " pass-ok" : " pass-fail") : "";
    const dur = s.shownEnd - s.start;
    const kids = width >= 12 ? pieces(s) : [];
    let own = "";
    if (kids.length) {
      const inKids = kids.reduce((a, [p, q]) => a + (q - p), 0);
      own = ` · own ${fmtDuration(Math.max(dur - inKids, 0))}, in child spans ${fmtDuration(inKids)}`;
    }
    const [full, short] = barLabels(s);
    const title = `${s.kind} ${full} · ${s.status} · ${fmtDuration(dur)}${own}` +
      (info.reason ? ` · ${info.reason}` : "") + (s.error ? ` · ${s.error}` : "");
    const room = width - 8;
    const label = full.length * CHAR_W <= room ? full : short.length * CHAR_W <= room ? short
      : room >= 3 * CHAR_W ? full : "";
    let bands = "";
    if (kids.length && width >= 12) {
      const left = Math.max(s.start, start), right = Math.min(s.shownEnd, start + span);
      const len = Math.max(right - left, 1e-12);
      for (const [p, q] of kids.slice(0, 12)) {
        const a = Math.max(p, left), b = Math.min(q, right);
        if (b <= a) continue;
        bands += `<i class="tl-kid" style="left:${(((a - left) / len) * 100).toFixed(2)}%;width:${(((b - a) / len) * 100).toFixed(2)}%"></i>`;
      }
    }
    out.push(`<div class="tl-bar k-${s.kind} st-${s.status}${verdict}${clipL ? " clip-l" : ""}${clipR ? " clip-r" : ""}" data-seq="${s.seq}" ` +
      `style="left:${x0.toFixed(1)}px;width:${width.toFixed(1)}px;top:${depth * ROW + 3}px" ` +
      `title="${esc(title)}">${bands}${label ? `<span>${esc(label)}</span>` : ""}</div>`);
  }
  return `<div class="tl-lane${focused === lane.key ? " focused" : ""}" data-lane="${esc(lane.key)}" style="top:${lane.top}px;height:${lane.height}px">` +
    `<div class="tl-label" title="${esc(lane.label)} (click to zoom to this lane)">${esc(lane.label)}</div>` +
    `<div class="tl-track">${out.join("")}</div></div>`;
}

/** Ticks over the range shown, in one unit that suits it, counted from the run's start. */
function drawTicks(el, v0, v1, W) {
  const span = v1 - v0;
  const step = niceStep(span / Math.max(2, Math.floor(W / 110)));
  const [unit, mult] = step >= 1 ? ["s", 1] : step >= 1e-3 ? ["ms", 1e3] : ["µs", 1e6];
  const decimals = Math.max(0, -Math.floor(Math.log10(step * mult) + 1e-9));
  const parts = [];
  for (let t = Math.ceil(v0 / step - 1e-9) * step; t <= v1 + step * 1e-6; t += step) {
    const x = ((t - v0) / span) * W;
    if (x > W - 30) break; // no tick cut in half at the right edge
    const text = Math.abs(t) < step * 1e-6 ? "0" : `${(t * mult).toFixed(decimals)} ${unit}`;
    parts.push(`<span class="tl-tick" style="left:${x.toFixed(1)}px">${text}</span>`);
  }
  el.innerHTML = parts.join("");
  el.dataset.unit = unit;
}

function fmtAt(t, span) {
  const [unit, mult] = span >= 1 ? ["s", 1] : span >= 1e-3 ? ["ms", 1e3] : ["µs", 1e6];
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.max(span * mult, 1e-9)) + 1));
  return `${(t * mult).toFixed(digits)} ${unit}`;
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Every span of the run as a thin mark, lane by lane, on the overview strip. */
function drawOverview(canvas, lanes, t0, total) {
  const w = canvas.clientWidth || 1000, hgt = canvas.clientHeight || 28;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(hgt * ratio);
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, hgt);
  const rowH = Math.max(hgt / Math.max(lanes.length, 1), 0.5);
  const colors = { node: "#66bb6a", model_call: "#9575cd", retrieval: "#ffa726", check: "#26c6da", loop_pass: "#90a4ae" };
  for (const lane of lanes) {
    const y = Math.min(lane.index * rowH, hgt - 1);
    for (const { s } of lane.bars) {
      ctx.fillStyle = s.status === "error" ? "#cf222e" : colors[s.kind] || "#b0bec5";
      const x = ((s.start - t0) / total) * w;
      ctx.fillRect(x, y, Math.max(((s.shownEnd - s.start) / total) * w, 1), Math.max(rowH, 1));
    }
  }
}
