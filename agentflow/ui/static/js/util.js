// Small helpers shared by every page: DOM building, formatting, the JSON API.

/** Build an element: h("div.card#id", {onclick}, child, "text", [more children]). */
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

export async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.json();
}

/** POST JSON; the parsed reply, or an Error with the server's detail. */
export async function post(path, body) {
  const res = await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", Accept: "application/json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.json();
}

const OUTCOME_TITLES = {
  ok: "ok: the run finished and its answer passed its checks (or it has none)",
  caveat: "caveat: the run finished, but its answer did not pass every check, and says so",
  abstained: "abstained: the documents did not support an answer, and the run said so",
  error: "error: the run failed",
  incomplete: "incomplete: the run stopped before it finished (its process died)",
  running: "running",
};

/** A run's outcome: its status refined by the final state's answer_status. */
export function outcomeBadge(outcome) {
  return h(`span.badge.st-${outcome}`, { title: OUTCOME_TITLES[outcome] || `status: ${outcome}`,
    dataset: { outcome } }, outcome);
}

export function outcomeOf(run) {
  const st = run.output && typeof run.output === "object" ? run.output.answer_status : null;
  return run.status === "ok" && (st === "caveat" || st === "abstained") ? st : run.status;
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function fmtCost(c) {
  if (c === null || c === undefined) return "–";
  if (c === 0) return "$0";
  return c < 0.01 ? `$${c.toFixed(5)}` : `$${c.toFixed(4)}`;
}

// Thousands separators by hand for whole numbers (all of them, in practice): the first
// toLocaleString of a page loads the ICU number formatter, some 40 ms on a first visit.
const THOUSANDS = /\B(?=(\d{3})+(?!\d))/g;
export function fmtInt(n) {
  if (n === null || n === undefined) return "–";
  const x = Number(n);
  if (Number.isSafeInteger(x)) return String(x).replace(THOUSANDS, ",");
  return x.toLocaleString("en-US");
}

export function fmtTime(t) {
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function statusBadge(status) {
  return h(`span.badge.st-${status}`, { title: `status: ${status}` }, status);
}

/** Pretty JSON with a visible marker where the store capped a payload. */
export function jsonBlock(value, cls = "") {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  const pre = h(`pre.json${cls ? "." + cls : ""}`, text === undefined ? "null" : text);
  if (isTruncated(text)) pre.prepend(h("span.badge.trunc", "truncated"), " ");
  return pre;
}

export const isTruncated = (text) =>
  typeof text === "string" && (text.includes("…[truncated") || text.includes('"__truncated__"'));

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

/** A span row from the columnar API payload into an object. */
export function rowsToSpans(fields, rows) {
  const n = fields.length;
  const out = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const o = {};
    for (let j = 0; j < n; j++) o[fields[j]] = r[j];
    out[i] = o;
  }
  return out;
}

export function query() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

export function navigate(url) {
  history.pushState(null, "", url);
  window.dispatchEvent(new Event("af:navigate"));
}

/** Replace an element's children, skipping null/false and flattening arrays. */
export function fill(el, ...children) {
  el.textContent = "";
  append(el, children);
  return el;
}
