// The run page: summary, the declared graph with the path taken, the details panel, the timeline,
// the answer's citations, and the run's inputs and final state.
import { renderCitations } from "./citations.js";
import { renderGraph } from "./graph.js";
import { buildModel } from "./model.js";
import { Panel } from "./panel.js";
import { renderTimeline } from "./timeline.js";
import { api, fmtCost, fmtDuration, fmtInt, fmtTime, h, jsonBlock, navigate, shortId, statusBadge, fill } from "./util.js";

export async function runPage(root, runId) {
  const run = (await prefetched()) || await api(`/api/runs/${encodeURIComponent(runId)}`);
  const model = buildModel(run);
  document.title = `${run.workflow} ${shortId(run.run_id)} · agentflow traces`;

  const panelEl = h("aside.panel#panel");
  const panel = new Panel(panelEl, model);
  panel.clear();
  const select = (el) => {
    root.querySelectorAll(".g-node.selected").forEach((n) => n.classList.remove("selected"));
    if (el) el.classList.add("selected");
  };
  const handlers = {
    onNode: (name) => { select(root.querySelector(`.g-node[data-node="${CSS.escape(name)}"]`)); panel.showNode(name); },
    onSpan: (seq) => {
      const s = model.bySeq.get(seq);
      const nodeName = s && (s.kind === "node" ? s.name : (model.byId.get(s.parent_id) || {}).name);
      select(nodeName ? root.querySelector(`.g-node[data-node="${CSS.escape(nodeName)}"]`) : null);
      panel.showSpan(seq);
    },
  };

  const graph = renderGraph(run.graph, model, handlers);
  const timeline = renderTimeline(model, handlers);
  const citations = h("div#citations-slot");
  fill(root, 
    header(run),
    run.error ? h("div.error-box.run-error", run.error) : null,
    h("div.run-grid",
      h("section.card-section.graph-card", h("h2", "Graph ", h("span.muted.small", "declared steps, with the path this run took")), graph),
      panelEl),
    h("section.card-section.timeline-card",
      h("h2", "Timeline ", h("span.muted.small", `${fmtInt(run.spans.length)} spans · ${timeline.laneCount} lanes: parallel branches and map items each get their own`)),
      timeline),
    citations,
    h("section.card-section.io",
      h("h2", "Inputs & final state"),
      h("div.io-grid",
        h("div", h("h4", "Inputs"), jsonBlock(run.inputs ?? {})),
        h("div", h("h4", run.status === "ok" ? "Final state" : "State"), run.output === null ? h("div.muted", "not recorded: the run did not finish") : jsonBlock(run.output)))));
  timeline.draw();
  renderCitations(run.run_id).then((section) => {
    if (section) citations.replaceWith(section);
  }).catch(() => citations.remove());
  return model;
}

/** The run's data if index.html started fetching it for this very page load. */
async function prefetched() {
  const pre = window.__afPrefetch;
  window.__afPrefetch = null;
  if (!pre || pre.path !== location.pathname) return null;
  try { return await pre.data; } catch { return null; }
}

function header(run) {
  const stats = [
    ["duration", fmtDuration(run.duration_s)],
    ["nodes", fmtInt(run.nodes)],
    ["model calls", fmtInt(run.model_calls)],
    ["tokens", fmtInt(run.tokens)],
    ["cost", fmtCost(run.cost)],
    ["spans", fmtInt(run.spans.length)],
  ];
  const compare = h("input.compare-with", { placeholder: "compare with run id…", size: 22,
    onkeydown: (e) => { if (e.key === "Enter" && e.target.value.trim()) navigate(`/compare?a=${run.run_id}&b=${encodeURIComponent(e.target.value.trim())}`); } });
  return h("div.run-header",
    h("div.run-title", h("a.back", { href: "/", "data-nav": "" }, "← runs"),
      h("h1", run.workflow), statusBadge(run.status),
      h("code.run-id", { title: run.run_id }, shortId(run.run_id)),
      h("span.muted", fmtTime(run.started))),
    h("div.stats", stats.map(([k, v]) => h("div.stat", h("div.stat-v", v), h("div.stat-k", k)))),
    h("div.run-actions", compare));
}
