// Two runs side by side: their numbers, node by node, their final states, and their graphs.
import { renderGraph } from "./graph.js";
import { buildModel } from "./model.js";
import { api, fmtCost, fmtDuration, fmtInt, h, navigate, query, shortId, statusBadge, fill } from "./util.js";

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

  fill(root, 
    h("div.toolbar", h("a.back", { href: "/", "data-nav": "" }, "← runs"), h("h1", "Compare runs")),
    h("table.compare.metrics",
      h("thead", h("tr", h("th", ""), runHead(ra, open(ra)), runHead(rb, open(rb)), h("th", "Δ (B − A)"))),
      h("tbody",
        metric("status", statusBadge(ra.status), statusBadge(rb.status)),
        numeric("latency", ra.duration_s, rb.duration_s, fmtDuration),
        numeric("cost", ra.cost, rb.cost, fmtCost),
        numeric("tokens", ra.tokens, rb.tokens, fmtInt),
        numeric("nodes run", ra.nodes, rb.nodes, fmtInt),
        numeric("model calls", ra.model_calls, rb.model_calls, fmtInt),
        numeric("spans", ra.spans.length, rb.spans.length, fmtInt),
        loopRows(ma, mb))),
    h("h2", "Node by node"),
    nodeTable(ma, mb),
    h("h2", "Final state"),
    stateDiff(ra.output || {}, rb.output || {}),
    h("h2", "Graphs"),
    h("div.compare-graphs",
      h("div", h("h4", `A · ${shortId(ra.run_id)}`), renderGraph(ra.graph, ma)),
      h("div", h("h4", `B · ${shortId(rb.run_id)}`), renderGraph(rb.graph, mb))));
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

function stateDiff(sa, sb) {
  const keys = [...new Set([...Object.keys(sa), ...Object.keys(sb)])];
  return h("table.compare.state",
    h("thead", h("tr", h("th", "field"), h("th", "A"), h("th", "B"))),
    h("tbody", keys.map((k) => {
      const va = JSON.stringify(sa[k], null, 1), vb = JSON.stringify(sb[k], null, 1);
      return h(`tr${va === vb ? ".same" : ".changed"}`, { dataset: { field: k } },
        h("th", k), h("td", h("pre.json", va ?? "–")), h("td", h("pre.json", vb ?? "–")));
    })));
}
