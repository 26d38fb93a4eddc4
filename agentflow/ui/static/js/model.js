// A run's spans indexed for drawing: per declared step (node, loop, map, route, parallel) what ran,
// how it ended and what it cost. One pass over the spans; fast for runs of many thousands.
import { rowsToSpans } from "./util.js";

const CHILD_KINDS = new Set(["model_call", "retrieval", "check", "custom"]);

export function buildModel(run) {
  const spans = rowsToSpans(run.span_fields, run.spans);
  const bySeq = new Map();
  const byId = new Map();
  const children = new Map();
  let tEnd = run.ended || run.started;
  for (const s of spans) {
    if (s.end !== null && s.end > tEnd) tEnd = s.end;
    else if (s.start > tEnd) tEnd = s.start;
  }
  const nodes = new Map();
  const loops = new Map();
  const maps = new Map();
  const routes = new Map();
  const pars = new Map();
  const stat = (name) => {
    let n = nodes.get(name);
    if (!n) {
      n = { name, spans: [], ok: 0, error: 0, incomplete: 0, duration: 0, cost: null, tokens: 0,
            calls: 0, children: 0 };
      nodes.set(name, n);
    }
    return n;
  };
  const push = (map, key, value) => {
    const list = map.get(key);
    if (list) list.push(value); else map.set(key, [value]);
  };

  for (const s of spans) {
    s.open = s.end === null;
    s.shownEnd = s.open ? tEnd : s.end;
    bySeq.set(s.seq, s);
    byId.set(s.span_id, s);
    push(children, s.parent_id, s);
    switch (s.kind) {
      case "node": {
        const n = stat(s.name);
        n.spans.push(s);
        if (s.status === "ok") n.ok++;
        else if (s.status === "error") n.error++;
        else n.incomplete++;
        n.duration += s.shownEnd - s.start;
        break;
      }
      case "loop": push(loops, s.name, { span: s, passes: [] }); break;
      case "map": push(maps, s.name, s); break;
      case "route": push(routes, s.name, s); break;
      case "branch": push(pars, s.name, s); break;
      default: break;
    }
  }
  // second pass: things that need their parent
  for (const s of spans) {
    if (s.kind === "loop_pass") {
      const loop = byId.get(s.parent_id);
      const runs = loops.get(s.name) || [];
      const entry = runs.find((e) => e.span === loop);
      if (entry) entry.passes.push(s);
    } else if (CHILD_KINDS.has(s.kind)) {
      const parent = byId.get(s.parent_id);
      if (parent && parent.kind === "node") {
        const n = stat(parent.name);
        n.children++;
        if (s.kind === "model_call") {
          n.calls++;
          const info = s.summary || {};
          if (typeof info.cost === "number") n.cost = (n.cost || 0) + info.cost;
          if (typeof info.tokens === "number") n.tokens += info.tokens;
        }
      }
    }
  }
  for (const list of loops.values()) for (const e of list) e.passes.sort((a, b) => a.pass_index - b.pass_index);
  return { run, spans, bySeq, byId, children, nodes, loops, maps, routes, pars,
           t0: run.started, tEnd };
}

/** Whether anything of a declared step ran (a node, or any node inside a composite). */
export function executed(step, model) {
  if (!step) return false;
  if (step._ran !== undefined) return step._ran;
  let ran = false;
  switch (step.kind) {
    case "node": ran = model.nodes.has(step.name); break;
    case "sequence": ran = step.steps.some((s) => executed(s, model)); break;
    case "route": ran = model.routes.has(step.name) ||
      Object.values(step.cases).some((s) => executed(s, model)) || executed(step.default, model); break;
    case "loop": ran = model.loops.has(step.name) || executed(step.body, model); break;
    case "parallel": ran = model.pars.has(step.name) || step.branches.some((s) => executed(s, model)); break;
    case "map": ran = model.maps.has(step.name) || executed(step.node, model); break;
    default: ran = false;
  }
  step._ran = ran;
  return ran;
}

/** Aggregate status of a declared step: error beats incomplete beats ok. */
export function stepStatus(step, model) {
  if (!executed(step, model)) return "skipped";
  if (step.kind === "node") {
    const n = model.nodes.get(step.name);
    return n.error ? "error" : n.incomplete ? "incomplete" : "ok";
  }
  const kids = step.kind === "sequence" ? step.steps
    : step.kind === "route" ? [...Object.values(step.cases), step.default]
    : step.kind === "loop" ? [step.body]
    : step.kind === "parallel" ? step.branches : [step.node];
  const states = kids.filter(Boolean).map((k) => stepStatus(k, model));
  if (states.includes("error")) return "error";
  if (states.includes("incomplete")) return "incomplete";
  return "ok";
}

/** Spans of a run at a given node, with the spans under it (model calls, retrievals, checks). */
export function nodeDetail(model, name) {
  const n = model.nodes.get(name);
  if (!n) return null;
  return { ...n, executions: n.spans.map((s) => ({ span: s, children: model.children.get(s.span_id) || [] })) };
}
