// The timeline: one lane for the run's main path, one per loop (its passes side by side, each
// marked with its verdict), one per parallel branch and one per map item. Only the lanes in view are
// drawn, so a run of thousands of spans scrolls as smoothly as a small one.
import { esc, fmtDuration, h } from "./util.js";

const ROW = 20;
const PAD = 6;
const LANE_KINDS = new Set(["branch", "map_item"]);
const HIDDEN = new Set(["loop"]);

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
      lane = { key, label: laneLabel(key, s, model), first: s.start, rows: 1, bars: [], ends: [] };
      lanes.set(key, lane);
    }
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
  for (const lane of ordered) {
    lane.top = top;
    lane.height = lane.rows * ROW + PAD;
    top += lane.height;
  }
  return { lanes: ordered, height: top };
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

function barLabel(s) {
  const info = s.summary || {};
  if (s.kind === "loop_pass") return `pass ${s.pass_index} ${info.passed ? "✓" : "✗"}`;
  if (s.kind === "map_item") return `item ${s.item_index}`;
  if (s.kind === "branch") return `branch ${s.branch}`;
  if (s.kind === "model_call") return `${info.alias || s.name} → ${info.model || ""}`;
  if (s.kind === "check") return `${s.name}: ${info.verdict ?? (info.passed ? "pass" : "")}`;
  if (s.kind === "map") return `${s.name} ×${info.count ?? "?"}`;
  return s.name;
}

export function renderTimeline(model, { onSpan } = {}) {
  const { lanes, height } = buildLanes(model);
  const t0 = model.t0;
  const total = Math.max(model.tEnd - t0, 1e-6);
  const axis = h("div.tl-axis", h("div.tl-axis-label", "lane"), h("div.tl-ticks", ticks(total)));
  const rows = h("div.tl-rows");
  const inner = h("div.tl-inner", { style: { height: `${height}px` } }, rows);
  const scroller = h("div.tl-scroll", inner);
  const el = h("div.timeline", { dataset: { lanes: lanes.length } }, axis, scroller);

  let drawn = "";
  const draw = () => {
    const top = scroller.scrollTop;
    const bottom = top + (scroller.clientHeight || 480);
    let i = firstVisible(lanes, top);
    const parts = [];
    for (; i < lanes.length && lanes[i].top < bottom + 200; i++) parts.push(laneHtml(lanes[i], t0, total));
    const html = parts.join("");
    if (html !== drawn) { rows.innerHTML = html; drawn = html; }
  };
  let pending = false;
  scroller.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });
  rows.addEventListener("click", (e) => {
    const bar = e.target.closest(".tl-bar");
    if (!bar) return;
    rows.querySelectorAll(".tl-bar.selected").forEach((b) => b.classList.remove("selected"));
    bar.classList.add("selected");
    onSpan && onSpan(Number(bar.dataset.seq));
  });
  el.draw = draw;
  el.laneCount = lanes.length;
  queueMicrotask(draw);
  return el;
}

function firstVisible(lanes, top) {
  let lo = 0, hi = lanes.length - 1, ans = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lanes[mid].top + lanes[mid].height - 1 < top - 200) lo = mid + 1;
    else { ans = mid; hi = mid - 1; }
  }
  return ans;
}

function laneHtml(lane, t0, total) {
  const bars = lane.bars.map(({ s, depth }) => {
    const left = ((s.start - t0) / total) * 100;
    const width = Math.max(((s.shownEnd - s.start) / total) * 100, 0);
    const info = s.summary || {};
    const verdict = s.kind === "loop_pass" ? (info.passed ? " pass-ok" : " pass-fail") : "";
    const title = `${s.kind} ${s.name} · ${s.status} · ${fmtDuration(s.shownEnd - s.start)}` +
      (info.reason ? ` · ${info.reason}` : "") + (s.error ? ` · ${s.error}` : "");
    return `<div class="tl-bar k-${s.kind} st-${s.status}${verdict}" data-seq="${s.seq}" ` +
      `style="left:${left.toFixed(3)}%;width:${width.toFixed(3)}%;top:${depth * ROW + 3}px" ` +
      `title="${esc(title)}"><span>${esc(barLabel(s))}</span></div>`;
  }).join("");
  return `<div class="tl-lane" data-lane="${esc(lane.key)}" style="top:${lane.top}px;height:${lane.height}px">` +
    `<div class="tl-label" title="${esc(lane.label)}">${esc(lane.label)}</div>` +
    `<div class="tl-track">${bars}</div></div>`;
}

function ticks(total) {
  const step = niceStep(total / 6);
  const out = [];
  for (let t = 0; t <= total + 1e-9; t += step) {
    out.push(h("span.tl-tick", { style: { left: `${(t / total) * 100}%` } }, fmtDuration(t)));
  }
  return out;
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
