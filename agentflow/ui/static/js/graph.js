// The declared graph, drawn top to bottom, with the path the run took drawn over it: nodes coloured
// by how they ended, loops with one chip per pass and its verdict, maps with their fan-out, routes
// with the case taken. Every composite is a box that collapses and expands in place.
import { executed, stepStatus } from "./model.js";
import { fmtCost, fmtDuration, fmtInt, h } from "./util.js";

const KIND_ICON = { route: "◇", loop: "↻", parallel: "⇉", map: "⋔" };

export function renderGraph(graph, model, handlers = {}) {
  if (!graph || !graph.steps) {
    return h("div.empty", "This run has no declared graph recorded; see the timeline below.");
  }
  const root = h("div.graph", { dataset: { flow: graph.flow || "" } },
    h("div.g-terminal.start", "start"),
    edge(true),
    renderStep(graph.steps, model, handlers),
    edge(executed(graph.steps, model)),
    h(`div.g-terminal.end.st-${model.run.status}`, model.run.status === "ok" ? "end" : model.run.status));
  return root;
}

function edge(taken) {
  return h(`div.g-edge${taken ? ".taken" : ""}`);
}

function renderStep(step, model, handlers) {
  if (!step) return h("div.g-empty", "(nothing)");
  switch (step.kind) {
    case "node": return renderNode(step, model, handlers);
    case "sequence": return renderSequence(step, model, handlers);
    case "route": return renderRoute(step, model, handlers);
    case "loop": return renderLoop(step, model, handlers);
    case "parallel": return renderParallel(step, model, handlers);
    case "map": return renderMap(step, model, handlers);
    default: return h("div.g-empty", `unknown step ${step.kind}`);
  }
}

function renderNode(step, model, handlers) {
  const stats = model.nodes.get(step.name);
  const status = stepStatus(step, model);
  const meta = [];
  if (stats) {
    const runs = stats.spans.length;
    if (runs > 1) meta.push(h("span.g-count", `×${runs}`));
    meta.push(fmtDuration(stats.duration));
    if (stats.tokens) meta.push(`${fmtInt(stats.tokens)} tok`);
    if (stats.cost !== null) meta.push(fmtCost(stats.cost));
    if (stats.error) meta.push(h("span.g-err", `${stats.error} failed`));
  } else {
    meta.push("not run");
  }
  const el = h(`div.g-node.st-${status}`, {
    tabindex: 0, role: "button", title: `${step.name} (${step.type})`,
    dataset: { node: step.name, status },
    onclick: (e) => { e.stopPropagation(); handlers.onNode && handlers.onNode(step.name); },
    onkeydown: (e) => { if (e.key === "Enter") handlers.onNode && handlers.onNode(step.name); },
  },
  h("div.g-title", h("span.g-name", step.name), h("span.g-type", step.type)),
  h("div.g-meta", meta.flatMap((m, i) => (i ? [" · ", m] : [m]))));
  return el;
}

function renderSequence(step, model, handlers) {
  const el = h("div.g-seq");
  step.steps.forEach((child, i) => {
    if (i) el.append(edge(executed(step.steps[i - 1], model) && executed(child, model)));
    el.append(renderStep(child, model, handlers));
  });
  return el;
}

function box(step, model, head, body, { collapsed = false } = {}) {
  const status = stepStatus(step, model);
  const el = h(`div.g-box.g-${step.kind}.st-${status}`, { dataset: { step: step.name || "", kind: step.kind } });
  const toggle = h("button.g-toggle", { title: "collapse / expand", "aria-label": "collapse or expand" });
  const header = h("div.g-head", toggle, h("span.g-icon", KIND_ICON[step.kind] || ""), head);
  header.addEventListener("click", (e) => {
    if (e.target.closest(".g-pass")) return;
    el.classList.toggle("collapsed");
  });
  el.append(header, h("div.g-body", body));
  if (collapsed) el.classList.add("collapsed");
  return el;
}

function renderRoute(step, model, handlers) {
  const takenCases = new Set();
  const labels = [];
  for (const s of model.routes.get(step.name) || []) {
    const info = s.summary || {};
    takenCases.add(info.case);
    labels.push(info.label);
  }
  const cases = Object.entries(step.cases).map(([label, sub]) => [label, sub]);
  if (step.default) cases.push(["__default__", step.default]);
  const taken = [];
  const untaken = [];
  for (const [label, sub] of cases) {
    const took = takenCases.has(label) || executed(sub, model);
    const name = label === "__default__" ? "default" : label;
    const caseEl = h(`div.g-case${took ? ".taken" : ".untaken"}`, { dataset: { case: name } },
      h("div.g-case-label", { title: took ? "case taken" : "case not taken: click to expand" },
        took ? "✓ " : "", name),
      h("div.g-case-body", renderStep(sub, model, handlers)));
    if (took) taken.push(caseEl);
    else {
      caseEl.classList.add("collapsed");
      caseEl.firstChild.addEventListener("click", () => caseEl.classList.toggle("collapsed"));
      untaken.push(caseEl);
    }
  }
  // cases not taken stay folded in a column of their own, out of the way of the path taken
  const body = h("div.g-cases", taken, untaken.length ? h("div.g-untaken", untaken) : null);
  const chosen = labels.length ? h("span.g-chosen", `label ${[...new Set(labels)].map((l) => JSON.stringify(l)).join(", ")}`) : null;
  return box(step, model, [h("b", step.name), h("span.g-sub", `on ${step.on}`), chosen], body);
}

function renderLoop(step, model, handlers) {
  const runs = model.loops.get(step.name) || [];
  const chips = [];
  const shown = runs.slice(0, 6);
  shown.forEach((entry, i) => {
    if (runs.length > 1) chips.push(h("span.g-exec", `#${i + 1}`));
    for (const p of entry.passes) {
      const info = p.summary || {};
      const ok = p.status === "ok" && info.passed;
      const cls = ok ? "pass-ok" : p.status === "ok" ? "pass-fail" : "pass-error";
      chips.push(h(`button.g-pass.${cls}`, {
        title: `pass ${p.pass_index}: ${ok ? "passed" : "did not pass"}${info.reason ? " — " + info.reason : ""}`,
        dataset: { seq: p.seq, pass: p.pass_index },
        onclick: (e) => { e.stopPropagation(); handlers.onSpan && handlers.onSpan(p.seq); },
      }, `${p.pass_index} ${ok ? "✓" : "✗"}`));
    }
    const stop = (entry.span.summary || {}).stop_reason;
    if (stop) chips.push(h(`span.g-stop.stop-${stop}`, stop));
  });
  if (runs.length > shown.length) chips.push(h("span.g-more", `+${runs.length - shown.length} more`));
  const head = [h("b", step.name), h("span.g-sub", `until ${step.until} · max ${step.max_iterations}`),
    h("span.g-passes", chips)];
  return box(step, model, head, renderStep(step.body, model, handlers));
}

function renderParallel(step, model, handlers) {
  const body = h("div.g-branches", step.branches.map((b, i) =>
    h("div.g-branch", h("div.g-branch-label", `branch ${i}`), renderStep(b, model, handlers))));
  const runs = (model.pars.get(step.name) || []).length / Math.max(1, step.branches.length);
  const head = [h("b", step.name), h("span.g-sub", `${step.branches.length} branches`),
    runs > 1 ? h("span.g-count", `×${runs}`) : null];
  return box(step, model, head, body);
}

function renderMap(step, model, handlers) {
  const runs = model.maps.get(step.name) || [];
  let count = 0, failed = 0, inFlight = 0;
  for (const s of runs) {
    const info = s.summary || {};
    count += info.count || 0;
    failed += info.failed || 0;
    inFlight = Math.max(inFlight, info.max_in_flight || 0);
  }
  const facts = [`over ${step.over}`];
  if (step.max_concurrency) facts.push(`≤${step.max_concurrency} at once`);
  const head = [h("b", step.name), h("span.g-sub", facts.join(" · ")),
    runs.length ? h("span.g-fan", { title: "items run · most in flight at once" },
      `×${count} items`, inFlight ? ` · ${inFlight} in flight` : "", runs.length > 1 ? ` · ${runs.length} maps` : "") : null,
    failed ? h("span.g-err", `${failed} failed`) : null];
  const body = h(`div.g-stack${count > 1 ? ".many" : ""}`, renderStep(step.node, model, handlers));
  return box(step, model, head, body);
}
