// A JSON value as a collapsible tree with a search box: objects and lists fold, long strings show
// their start and open on a click, and a search keeps only the branches that match (keys or
// values), opened, with the matches marked. Children are built when a branch first opens, so a
// final state of thousands of lines costs nothing until it is read.
import { h } from "./util.js";

const LONG = 240;

export function jsonTree(value, { open = 1, label = "state" } = {}) {
  const body = h("div.tree-body");
  const count = h("span.muted.small.tree-count");
  const input = h("input.tree-search", { type: "search", placeholder: `search the ${label}: keys and values…`,
    "aria-label": `search the ${label}` });
  const draw = () => {
    const q = input.value.trim().toLowerCase();
    body.textContent = "";
    if (!q) {
      count.textContent = "";
      body.append(node(null, value, 0, { open, q: "" }));
      return;
    }
    const hits = { n: 0 };
    const found = matches(value, q, hits);
    count.textContent = hits.n ? `${hits.n} match${hits.n > 1 ? "es" : ""}` : "no match";
    if (found) body.append(node(null, value, 0, { open: Infinity, q }));
  };
  let timer = null;
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(draw, 120); });
  draw();
  return h("div.tree", h("div.tree-tools", input, count,
    h("button.tree-btn", { type: "button", onclick: () => body.querySelectorAll("details").forEach((d) => { d.open = true; }) }, "expand all"),
    h("button.tree-btn", { type: "button", onclick: () => body.querySelectorAll("details").forEach((d) => { d.open = false; }) }, "collapse all")),
  body);
}

/** Whether ``value`` or anything in it matches ``q`` (counting the matches). */
function matches(value, q, hits, key = null) {
  let any = false;
  if (key !== null && String(key).toLowerCase().includes(q)) { hits.n++; any = true; }
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) if (matches(v, q, hits, Array.isArray(value) ? null : k)) any = true;
  } else if (String(value).toLowerCase().includes(q)) { hits.n++; any = true; }
  return any;
}

function keep(value, key, q, isArray) {
  if (!q) return true;
  return matches(value, q, { n: 0 }, isArray ? null : key);
}

function node(key, value, depth, opts) {
  const keyEl = key === null ? null : h("span.tree-key", mark(String(key), opts.q));
  if (value && typeof value === "object") {
    const isArray = Array.isArray(value);
    const entries = Object.entries(value);
    const size = isArray ? `[${entries.length} item${entries.length === 1 ? "" : "s"}]`
      : `{${entries.length} key${entries.length === 1 ? "" : "s"}}`;
    const details = h("details.tree-node", { dataset: { key: key ?? "" } },
      h("summary", keyEl, keyEl ? ": " : "", h("span.tree-size", size), preview(value, isArray)));
    let built = false;
    const build = () => {
      if (built) return;
      built = true;
      const kids = h("div.tree-kids");
      for (const [k, v] of entries) {
        if (keep(v, k, opts.q, isArray)) kids.append(node(isArray ? Number(k) : k, v, depth + 1, opts));
      }
      details.append(kids);
    };
    details.addEventListener("toggle", () => { if (details.open) build(); });
    if (depth < opts.open) { details.open = true; build(); }
    return details;
  }
  return h("div.tree-leaf", { dataset: { key: key ?? "" } }, keyEl, keyEl ? ": " : "", leaf(value, opts.q));
}

function preview(value, isArray) {
  if (isArray) {
    const first = value.slice(0, 3).map((v) => (v && typeof v === "object" ? "…" : JSON.stringify(v))).join(", ");
    return h("span.tree-preview", first.length > 80 ? first.slice(0, 79) + "…" : first);
  }
  const keys = Object.keys(value).slice(0, 5).join(", ");
  return h("span.tree-preview", keys);
}

function leaf(value, q) {
  const type = value === null ? "null" : typeof value;
  if (type !== "string") return h(`span.tree-v.t-${type}`, mark(JSON.stringify(value), q));
  if (value.length <= LONG || (q && value.toLowerCase().includes(q))) {
    return h("span.tree-v.t-string", mark(value, q));
  }
  const el = h("span.tree-v.t-string.clipped", { title: "click to show all" }, value.slice(0, LONG) + "…",
    h("span.tree-more", ` (${value.length.toLocaleString("en-US")} characters)`));
  el.addEventListener("click", () => { el.classList.remove("clipped"); el.textContent = value; }, { once: true });
  return el;
}

function mark(text, q) {
  if (!q) return text;
  const lower = text.toLowerCase();
  const out = [];
  let at = 0;
  for (let i = lower.indexOf(q); i >= 0; i = lower.indexOf(q, at)) {
    out.push(text.slice(at, i), h("mark.tree-hit", text.slice(i, i + q.length)));
    at = i + q.length;
  }
  out.push(text.slice(at));
  return out;
}
