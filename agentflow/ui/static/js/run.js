// The run page: the answer with its status and checks at the top, feedback, the declared graph
// with the path taken beside the details panel (opened on the node that answered), the timeline,
// the answer's citations, and the inputs and final state as searchable trees.
import { answerWithMarkers, renderCitations } from "./citations.js";
import { renderGraph } from "./graph.js";
import { buildModel } from "./model.js";
import { Panel } from "./panel.js";
import { checkHelp, hasFuse } from "./scores.js";
import { renderTimeline } from "./timeline.js";
import { jsonTree } from "./tree.js";
import { api, fill, fmtCost, fmtDuration, fmtInt, fmtTime, h, navigate, outcomeBadge, outcomeOf, post, shortId } from "./util.js";

export async function runPage(root, runId) {
  const run = (await prefetched()) || await api(`/api/runs/${encodeURIComponent(runId)}`);
  const model = buildModel(run);
  document.title = `${run.workflow} ${shortId(run.run_id)} · agentflow traces`;

  const panelEl = h("aside.panel#panel");
  const panel = new Panel(panelEl, model);
  let timeline = null;
  const select = (el) => {
    root.querySelectorAll(".g-node.selected").forEach((n) => n.classList.remove("selected"));
    if (el) el.classList.add("selected");
  };
  const handlers = {
    onNode: (name) => { select(root.querySelector(`.g-node[data-node="${CSS.escape(name)}"]`)); return panel.showNode(name); },
    onSpan: (seq, { focus = false } = {}) => {
      const s = model.bySeq.get(seq);
      const nodeName = s && (s.kind === "node" ? s.name : (model.byId.get(s.parent_id) || {}).name);
      select(nodeName ? root.querySelector(`.g-node[data-node="${CSS.escape(nodeName)}"]`) : null);
      if (focus && timeline) timeline.focusSpan(seq);
      return panel.showSpan(seq);
    },
  };

  const graph = renderGraph(run.graph, model, { ...handlers, onSpan: (seq) => handlers.onSpan(seq, { focus: true }) });
  timeline = renderTimeline(model, handlers);
  const citations = h("div#citations-slot");
  fill(root,
    header(run),
    run.db && !run.db.shown ? h("div.note-box", `This run is in another trace database: ${run.db.path}`) : null,
    run.error ? h("div.error-box.run-error", run.error) : null,
    summary(run, model),
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
        h("div.io-inputs", h("h4", "Inputs"), jsonTree(run.inputs ?? {}, { open: 2, label: "inputs" })),
        h("div.io-state", h("h4", run.status === "ok" ? "Final state" : "State"),
          run.output === null ? h("div.muted", "not recorded: the run did not finish")
            : jsonTree(run.output, { open: 1, label: "final state" })))));
  timeline.draw();
  // the panel opens on the node that answered once the page is drawn: its content is a request
  // of its own, and a node run a thousand times builds a long menu
  panel.clear("loading…");
  const first = defaultNode(model, run);
  setTimeout(() => { if (first) handlers.onNode(first); else panel.clear(); }, 0);
  renderCitations(run.run_id, { fused: hasFuse(run.graph && run.graph.steps) }).then((section) => {
    if (section) { citations.replaceWith(section); section.highlight(); }
    else citations.remove();
  }).catch(() => citations.remove());
  return model;
}

/** The node the panel opens on: the one that failed, else the last that wrote the answer (as the
 * declared graph says), else the last that called a model, else the last. */
function defaultNode(model, run) {
  const nodes = [...model.nodes.values()];
  if (!nodes.length) return null;
  const failed = nodes.find((n) => n.error);
  if (failed) return failed.name;
  const last = (list) => list.reduce((a, b) => (b.spans[b.spans.length - 1].start > a.spans[a.spans.length - 1].start ? b : a));
  const state = run.output && typeof run.output === "object" ? run.output : {};
  const field = ANSWER_KEYS.find((k) => typeof state[k] === "string");
  const writers = new Set();
  const walk = (step) => {
    if (!step || typeof step !== "object") return;
    if (Array.isArray(step)) { step.forEach(walk); return; }
    if (step.kind === "node" && Array.isArray(step.writes) && step.writes.includes(field)) writers.add(step.name);
    Object.values(step).forEach((v) => { if (v && typeof v === "object") walk(v); });
  };
  if (field && run.graph) walk(run.graph.steps);
  // a node that only passes the answer on (a finalize step) comes after the one that wrote it
  const answering = nodes.filter((n) => writers.has(n.name) && n.calls);
  if (answering.length) return last(answering).name;
  const calling = nodes.filter((n) => n.calls);
  return last(calling.length ? calling : nodes).name;
}

/** The data if index.html started fetching it for this very page load. */
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
  const tags = Object.entries(run.tags || {});
  return h("div.run-header",
    h("div.run-title", h("a.back", { href: "/", "data-nav": "" }, "← runs"),
      h("h1", run.workflow), outcomeBadge(outcomeOf(run)),
      h("code.run-id", { title: run.run_id }, shortId(run.run_id)),
      h("span.muted", fmtTime(run.started)),
      tags.map(([k, v]) => h(`span.tag${k === "origin" ? ".origin" : ""}`, { title: `tag ${k}=${v}` }, k === "origin" ? v : `${k}=${v}`))),
    h("div.stats", stats.map(([k, v]) => h("div.stat", h("div.stat-v", v), h("div.stat-k", k)))),
    h("div.run-actions", compare));
}

const QUESTION_KEYS = ["question", "query", "message", "input", "text", "prompt"];
const ANSWER_KEYS = ["answer", "reply", "response", "output", "final_answer"];

/** The answer, its status and its checks, first thing on the page; and the feedback on it. */
function summary(run, model) {
  const inputs = run.inputs && typeof run.inputs === "object" ? run.inputs : {};
  const state = run.output && typeof run.output === "object" ? run.output : {};
  const qKey = QUESTION_KEYS.find((k) => typeof inputs[k] === "string");
  const aKey = ANSWER_KEYS.find((k) => typeof state[k] === "string");
  const outcome = outcomeOf(run);
  const facts = [];
  if (state.answer_status) facts.push(h("span.fact", h("span.fact-k", "answer status "), outcomeBadge(state.answer_status === "passed" ? "ok" : state.answer_status), state.answer_status === "passed" ? h("span.muted.small", " passed") : null));
  if (typeof state.route === "string" && state.route) facts.push(h("span.fact", h("span.fact-k", "route "), h("code", state.route)));
  for (const [name, runs] of model.loops) {
    const last = runs[runs.length - 1];
    const stop = (last.span.summary || {}).stop_reason;
    facts.push(h("span.fact", h("span.fact-k", `loop ${name} `), `${last.passes.length} pass${last.passes.length === 1 ? "" : "es"}`, stop ? h(`span.g-stop.stop-${stop}`, stop) : null));
  }
  return h("section.card-section.summary#summary", { dataset: { outcome } },
    h("div.summary-main",
      qKey ? h("div.sum-q", h("span.sum-label", qKey), inputs[qKey]) : null,
      aKey ? h("div.sum-a", { dataset: { field: aKey } }, answerWithMarkers(state[aKey], (marker) => {
        const row = document.querySelector(`#citations .cite-row[data-marker="${CSS.escape(marker)}"]`);
        if (row) { row.scrollIntoView({ block: "center", behavior: "smooth" }); row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
      }))
        : h("div.sum-a.muted", run.status === "ok" ? "This run's final state has no answer field." : "No answer: the run did not finish."),
      h("div.facts", facts),
      checksSummary(state, model)),
    feedbackBox(run));
}

/** The checks of the answer: from the final state's ``checks`` when it has them, else the last
 * check spans of the run, each with its score and what the score means on hover. */
function checksSummary(state, model) {
  const list = [];
  if (state.checks && typeof state.checks === "object" && !Array.isArray(state.checks)) {
    for (const [name, c] of Object.entries(state.checks)) {
      if (c && typeof c === "object") list.push({ name, kind: c.kind || name, score: c.score, passed: c.passed, threshold: c.threshold, reason: c.reason, severity: c.severity });
    }
  } else {
    const last = new Map();
    for (const s of model.spans) if (s.kind === "check") last.set(s.name, s);
    for (const [name, s] of last) {
      const info = s.summary || {};
      const passed = info.passed ?? (info.verdict === undefined ? undefined : info.verdict === "pass" || info.verdict === true);
      list.push({ name, kind: name, score: info.score, passed, threshold: info.threshold, seq: s.seq });
    }
  }
  if (!list.length) return null;
  const passed = list.filter((c) => c.passed).length;
  return h("div.checks-sum",
    h("span.fact-k", `checks ${passed}/${list.length} passed `),
    list.map((c) => h(`span.check-chip.${c.passed ? "pass" : c.passed === false ? (c.severity === "warn" ? "warn" : "fail") : "unknown"}`,
      { title: checkHelp(c.kind, c), dataset: { check: c.name } },
      c.passed ? "✓ " : c.passed === false ? "✗ " : "", c.name,
      typeof c.score === "number" ? h("b", ` ${c.score.toFixed(2)}`) : null)));
}

/** Thumbs up or down and a comment, stored with the run; earlier feedback listed. */
function feedbackBox(run) {
  const list = h("div.fb-list");
  const showList = (items) => {
    fill(list, items.length ? items.slice().reverse().map((f) => h("div.fb-item", { dataset: { score: f.score } },
      h("span", f.score > 0 ? "▲" : "▼"), " ", f.comment ? h("span.fb-comment", f.comment) : h("span.muted", "(no comment)"),
      h("span.muted.small", ` · ${f.source}${f.user_id ? " · " + f.user_id : ""} · ${fmtTime(f.created)}`)))
      : h("div.muted.small", "No feedback yet."));
  };
  const counts = h("span.fb-counts");
  const setCounts = (items) => {
    const up = items.filter((f) => f.score > 0).length, down = items.length - up;
    counts.textContent = items.length ? `▲ ${up} · ▼ ${down}` : "";
  };
  let items = run.feedback || [];
  showList(items);
  setCounts(items);
  const comment = h("textarea#fb-comment", { rows: 2, placeholder: "What is right or wrong with this answer? (optional)", maxlength: 10000 });
  const status = h("span.fb-status.muted.small");
  const send = async (score) => {
    status.textContent = "saving…";
    try {
      const { feedback } = await post(`/api/runs/${run.run_id}/feedback`, { score, comment: comment.value });
      items = [...items, feedback];
      showList(items);
      setCounts(items);
      comment.value = "";
      status.textContent = "saved";
    } catch (err) {
      status.textContent = `not saved: ${err.message}`;
    }
  };
  return h("div.feedback#feedback",
    h("div.fb-head", h("b", "Feedback "), counts),
    h("div.fb-buttons",
      h("button.fb-btn#fb-up", { type: "button", title: "a good answer", onclick: () => send("up") }, "▲ good"),
      h("button.fb-btn#fb-down", { type: "button", title: "a bad answer", onclick: () => send("down") }, "▼ bad"),
      status),
    comment,
    list);
}
