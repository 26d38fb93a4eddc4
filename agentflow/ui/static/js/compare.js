// Two runs side by side: what differed going in (inputs, and the workflow's settings, which is
// where --set overrides and profile changes show), their numbers, node by node, the final state
// as an inline diff per field, and their graphs with the path each took.
import { renderGraph } from "./graph.js";
import { buildModel } from "./model.js";
import { api, fill, fmtCost, fmtDuration, fmtInt, h, navigate, outcomeBadge, outcomeOf, query, shortId } from "./util.js";

export async function comparePage(root) {
  const { a, b } = query();
  if (!a || !b) {
    fill(root, h("div.empty", "Pick two runs to compare: tick them in the runs list."));
    return;
  }
  const [ra, rb] = await Promise.all([api(`/api/runs/${encodeURIComponent(a)}`), api(`/api/runs/${encodeURIComponent(b)}`)]);
  const [ma, mb] = [buildModel(ra), buildModel(rb)];
  document.title = `compare ${shortId(ra.run_id)} / ${shortId(rb.run_id)} · agentflow traces`;
  const open = (run) => () => navigate(`/runs/${run.run_id}`);
  const configRows = configDiff(ra.graph, rb.graph);

  fill(root,
    h("div.toolbar", h("a.back", { href: "/", "data-nav": "" }, "← runs"), h("h1", "Compare runs")),
    h("h2", "Inputs"),
    fieldDiff(ra.inputs || {}, rb.inputs || {}, "inputs"),
    h("h2", "Workflow settings ", h("span.muted.small", "the declared graphs' differences: --set overrides, profiles, edits")),
    configRows.length
      ? h("table.compare.config-diff", h("thead", h("tr", h("th", "setting"), h("th", "A"), h("th", "B"))),
        h("tbody", configRows.map(([k, va, vb]) => h("tr.changed", { dataset: { setting: k } }, h("th.mono", k),
          h("td.mono", va ?? h("span.muted", "–")), h("td.mono", vb ?? h("span.muted", "–"))))))
      : h("div.muted.small.same-config", ra.workflow === rb.workflow ? "Both runs used the same workflow settings." : "The two workflows' settings are shown in their graphs below."),
    h("h2", "Numbers"),
    h("table.compare.metrics",
      h("thead", h("tr", h("th", ""), runHead(ra, open(ra)), runHead(rb, open(rb)), h("th", "Δ (B − A)"))),
      h("tbody",
        metric("status", outcomeBadge(outcomeOf(ra)), outcomeBadge(outcomeOf(rb))),
        metric("tags", tagText(ra), tagText(rb)),
        modelsRow(ma, mb),
        numeric("latency", ra.duration_s, rb.duration_s, fmtDuration),
        numeric("cost", ra.cost, rb.cost, fmtCost),
        numeric("tokens", ra.tokens, rb.tokens, fmtInt),
        numeric("nodes run", ra.nodes, rb.nodes, fmtInt),
        numeric("model calls", ra.model_calls, rb.model_calls, fmtInt),
        numeric("spans", ra.spans.length, rb.spans.length, fmtInt),
        loopRows(ma, mb))),
    h("h2", "Node by node"),
    nodeTable(ma, mb),
    h("h2", "Final state ", h("span.muted.small", "field by field; removed text struck through in red, added text in green")),
    fieldDiff(ra.output || {}, rb.output || {}, "state"),
    h("h2", "Graphs ", h("span.muted.small", "the path each run took")),
    h("div.compare-graphs",
      h("div", h("h4", `A · ${shortId(ra.run_id)}`), renderGraph(ra.graph, ma)),
      h("div", h("h4", `B · ${shortId(rb.run_id)}`), renderGraph(rb.graph, mb))));
}

/** The models each run called, by alias: where a profile or a --set model override shows. */
function modelsRow(ma, mb) {
  const used = (m) => {
    const out = new Map();
    for (const s of m.spans) {
      if (s.kind !== "model_call") continue;
      const info = s.summary || {};
      const key = `${info.alias || s.name} → ${info.model || "?"}`;
      out.set(key, (out.get(key) || 0) + 1);
    }
    return out;
  };
  const [ua, ub] = [used(ma), used(mb)];
  const cell = (u, other) => (u.size ? [...u].map(([k, n]) => h(`div.mono.small${other.has(k) ? "" : ".model-only"}`, `${k} ×${n}`))
    : h("span.muted", "none"));
  const same = ua.size === ub.size && [...ua.keys()].every((k) => ub.has(k));
  return h(`tr${same ? "" : ".changed"}`, { dataset: { row: "models" } }, h("th", "models called"), h("td", cell(ua, ub)), h("td", cell(ub, ua)), h("td.delta", same ? "" : "differ"));
}

function tagText(run) {
  const tags = Object.entries(run.tags || {});
  return tags.length ? tags.map(([k, v]) => h("span.tag", `${k}=${v}`)) : h("span.muted", "–");
}

function runHead(run, onclick) {
  return h("th.run-col", h("a", { href: `/runs/${run.run_id}`, onclick: (e) => { e.preventDefault(); onclick(); } },
    `${run.workflow} · ${shortId(run.run_id)}`));
}

function metric(label, va, vb, delta = "") {
  return h("tr", h("th", label), h("td", va), h("td", vb), h("td.delta", delta));
}

function numeric(label, va, vb, fmt) {
  let delta = "";
  if (typeof va === "number" && typeof vb === "number") {
    const d = vb - va;
    const pct = va ? ` (${d >= 0 ? "+" : ""}${((d / va) * 100).toFixed(0)}%)` : "";
    delta = h(`span.${d > 0 ? "up" : d < 0 ? "down" : "same"}`, `${d >= 0 ? "+" : "−"}${fmt(Math.abs(d))}${pct}`);
  }
  return metric(label, fmt(va), fmt(vb), delta);
}

function loopSummary(model) {
  const out = new Map();
  for (const [name, runs] of model.loops) {
    out.set(name, runs.map((e) => `${e.passes.map((p) => ((p.summary || {}).passed ? "✓" : "✗")).join("")} ${(e.span.summary || {}).stop_reason || ""}`).join(" | "));
  }
  return out;
}

function loopRows(ma, mb) {
  const la = loopSummary(ma), lb = loopSummary(mb);
  return [...new Set([...la.keys(), ...lb.keys()])].map((name) =>
    metric(`loop ${name}`, la.get(name) || "–", lb.get(name) || "–"));
}

function nodeTable(ma, mb) {
  const names = [...new Set([...ma.nodes.keys(), ...mb.nodes.keys()])];
  const cell = (n) => (n
    ? h("td", h(`span.badge.st-${n.error ? "error" : n.incomplete ? "incomplete" : "ok"}`, `×${n.spans.length}`),
        ` ${fmtDuration(n.duration)}`, n.cost !== null ? ` · ${fmtCost(n.cost)}` : "", n.tokens ? ` · ${fmtInt(n.tokens)} tok` : "")
    : h("td.muted", "not run"));
  return h("table.compare.nodes",
    h("thead", h("tr", h("th", "node"), h("th", "A"), h("th", "B"))),
    h("tbody", names.map((name) => {
      const na = ma.nodes.get(name), nb = mb.nodes.get(name);
      return h(`tr${!na || !nb ? ".only-one" : ""}`, { dataset: { node: name } }, h("th", name), cell(na), cell(nb));
    })));
}

// --- settings: the declared graphs flattened to "step.setting" = value ---------------------

const NESTED = new Set(["steps", "cases", "default", "body", "branches", "node"]);

function flattenGraph(step, prefix, out) {
  if (!step || typeof step !== "object") return out;
  if (Array.isArray(step)) { step.forEach((s, i) => flattenGraph(s, `${prefix}[${i}]`, out)); return out; }
  const key = step.name ? `${step.kind === "node" ? "" : step.kind + " "}${step.name}` : prefix;
  for (const [k, v] of Object.entries(step)) {
    if (k === "name" || k === "kind" || k.startsWith("_")) continue;
    if (NESTED.has(k)) {
      if (k === "cases") for (const [label, sub] of Object.entries(v || {})) flattenGraph(sub, `${key}.case ${label}`, out);
      else flattenGraph(v, `${key}.${k}`, out);
    } else if (k === "config" && v && typeof v === "object") {
      for (const [ck, cv] of Object.entries(v)) out.set(`${key}.${ck}`, JSON.stringify(cv));
    } else out.set(`${key}.${k}`, JSON.stringify(v));
  }
  return out;
}

function configDiff(ga, gb) {
  if (!ga || !gb) return [];
  const fa = flattenGraph(ga.steps, "steps", new Map());
  const fb = flattenGraph(gb.steps, "steps", new Map());
  for (const k of ["flow", "inputs", "outputs"]) {
    if (ga[k] !== undefined) fa.set(k, JSON.stringify(ga[k]));
    if (gb[k] !== undefined) fb.set(k, JSON.stringify(gb[k]));
  }
  const keys = [...new Set([...fa.keys(), ...fb.keys()])];
  return keys.filter((k) => fa.get(k) !== fb.get(k)).map((k) => [k, fa.get(k), fb.get(k)]);
}

// --- field-by-field inline diff ------------------------------------------------------------

function fieldDiff(sa, sb, what) {
  const keys = [...new Set([...Object.keys(sa), ...Object.keys(sb)])];
  const changed = keys.filter((k) => JSON.stringify(sa[k]) !== JSON.stringify(sb[k]));
  const same = keys.length - changed.length;
  const rows = keys.map((k) => {
    const va = sa[k], vb = sb[k];
    const equal = JSON.stringify(va) === JSON.stringify(vb);
    return h(`tr${equal ? ".same" : ".changed"}`, { dataset: { field: k } },
      h("th", k),
      h("td.diff-cell", equal ? h("span.muted.small", `same: ${preview(va)}`)
        : va === undefined ? h("span.diff-ins.diff-text", text(vb)) : vb === undefined ? h("span.diff-del.diff-text", text(va))
        : inlineDiff(text(va), text(vb))));
  });
  // unchanged fields fold away: the differences are what a comparison is read for
  const sameRows = rows.filter((r) => r.classList.contains("same"));
  const toggle = same ? h("button.tree-btn", { type: "button", onclick: () => {
    const hidden = sameRows[0].hidden;
    sameRows.forEach((r) => { r.hidden = !hidden; });
    toggle.textContent = hidden ? `hide the ${same} unchanged` : `show the ${same} unchanged`;
  } }, `show the ${same} unchanged`) : null;
  sameRows.forEach((r) => { r.hidden = true; });
  return h(`div.field-diff.diff-${what}`,
    h("div.muted.small", `${changed.length} of ${keys.length} ${what === "inputs" ? "inputs" : "fields"} differ `, toggle),
    h(`table.compare.${what === "state" ? "state" : "inputs-diff"}`,
      h("thead", h("tr", h("th", "field"), h("th", "A → B"))), h("tbody", rows)));
}

function text(v) {
  return typeof v === "string" ? v : JSON.stringify(v, null, 1) ?? "undefined";
}

function preview(v) {
  const t = text(v).replace(/\s+/g, " ");
  return t.length > 90 ? t.slice(0, 89) + "…" : t;
}

const MAX_CELLS = 2_500_000;

/** Word-level inline diff of two texts (line-level when they are long). */
export function inlineDiff(a, b) {
  let ta = a.split(/(\s+)/), tb = b.split(/(\s+)/);
  if (ta.length * tb.length > MAX_CELLS) { ta = a.split(/(\n)/); tb = b.split(/(\n)/); }
  if (ta.length * tb.length > MAX_CELLS) {
    return h("div.diff-text", h("div.diff-del", a.slice(0, 5000)), h("div.diff-ins", b.slice(0, 5000)));
  }
  const ops = lcsDiff(ta, tb);
  const out = h("div.diff-text");
  for (const [op, s] of ops) out.append(op === 0 ? s : h(op < 0 ? "span.diff-del" : "span.diff-ins", s));
  return out;
}

/** [op, text] runs: 0 same, -1 only in A, +1 only in B (a longest common subsequence). */
function lcsDiff(a, b) {
  const n = a.length, m = b.length;
  const w = m + 1;
  const dp = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i * w + j] = a[i] === b[j] ? dp[(i + 1) * w + j + 1] + 1 : Math.max(dp[(i + 1) * w + j], dp[i * w + j + 1]);
    }
  }
  const ops = [];
  const push = (op, s) => {
    const last = ops[ops.length - 1];
    if (last && last[0] === op) last[1] += s; else ops.push([op, s]);
  };
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { push(0, a[i]); i++; j++; }
    else if (dp[(i + 1) * w + j] >= dp[i * w + j + 1]) push(-1, a[i++]);
    else push(1, b[j++]);
  }
  while (i < n) push(-1, a[i++]);
  while (j < m) push(1, b[j++]);
  return ops;
}
