// The details panel: a node's executions and, for the one picked, its state change and what ran
// inside it: model calls (rendered prompt, model and parameters, response, tokens, cost),
// retrievals (queries, hits, scores) and checks (score, verdict, reason).
import { renderMarkdown } from "./markdown.js";
import { checkHelp, RETRIEVAL_SCORE } from "./scores.js";
import { api, fmtCost, fmtDuration, fmtInt, h, jsonBlock, statusBadge, fill } from "./util.js";

const MODEL_KEYS = new Set(["alias", "model", "messages", "sampling", "response", "tokens", "cost",
  "latency", "latency_s", "retries", "cache_hit", "duration_s"]);

const MAX_TABS = 24;

export class Panel {
  constructor(el, model) {
    this.el = el;
    this.model = model;
    this.runId = model.run.run_id;
    this.token = 0;
  }

  clear(message = "Click a node in the graph, or a bar in the timeline, to see what it did.") {
    fill(this.el, h("div.panel-empty", message));
  }

  where(s) {
    const parts = [];
    if (s.pass_index) parts.push(`pass ${s.pass_index}`);
    if (s.branch !== null && s.branch !== undefined) parts.push(`branch ${s.branch}`);
    if (s.item_index !== null && s.item_index !== undefined) parts.push(`item ${s.item_index}`);
    return parts.join(" · ");
  }

  /** A node of the graph: its executions as tabs, the first (or the given one) opened. */
  async showNode(name, seq = null) {
    const token = ++this.token;
    const stats = this.model.nodes.get(name);
    if (!stats) {
      fill(this.el, h("div.panel-head", h("h3", name)),
        h("div.panel-empty", "This node did not run in this run."));
      this.el.dataset.node = name;
      return;
    }
    const tabs = h("div.exec-tabs");
    const body = h("div.exec-body");
    const pick = async (span, tab) => {
      tabs.querySelectorAll(".active").forEach((t) => t.classList.remove("active"));
      tab.classList.add("active");
      await this.fillExecution(body, span, this.token);
    };
    let first = null;
    if (stats.spans.length > MAX_TABS) {
      // a node run a thousand times (a map's items) gets a menu, not a thousand buttons
      const menu = h("select.exec-menu", { "aria-label": "execution" }, stats.spans.map((span, i) =>
        h("option", { value: i }, `${this.where(span) || `run ${i + 1}`} · ${span.status}`)));
      const fake = h("span.active");
      menu.addEventListener("change", () => pick(stats.spans[Number(menu.value)], fake));
      tabs.append(menu, fake);
      const at = seq === null ? 0 : Math.max(0, stats.spans.findIndex((sp) => sp.seq === seq));
      menu.value = String(at);
      first = [stats.spans[at], fake];
    } else {
      stats.spans.forEach((span, i) => {
        const label = this.where(span) || `run ${i + 1}`;
        const tab = h(`button.exec-tab.st-${span.status}`, { dataset: { seq: span.seq } }, label);
        tab.addEventListener("click", () => pick(span, tab));
        tabs.append(tab);
        if (span.seq === seq || (!first && seq === null)) first = [span, tab];
      });
    }
    const totals = [`${stats.spans.length} execution${stats.spans.length > 1 ? "s" : ""}`,
      fmtDuration(stats.duration)];
    if (stats.tokens) totals.push(`${fmtInt(stats.tokens)} tokens`);
    if (stats.cost !== null) totals.push(fmtCost(stats.cost));
    this.el.dataset.node = name;
    fill(this.el, 
      h("div.panel-head", h("h3", name), h("span.muted", stats.spans[0].step_type)),
      h("div.muted.small", totals.join(" · ")),
      stats.spans.length > 1 ? tabs : null, body);
    if (first) await pick(...first);
  }

  /** Any span: nodes open as nodes; the rest show their own payload. */
  async showSpan(seq) {
    const s = this.model.bySeq.get(seq);
    if (!s) return;
    if (s.kind === "node") return this.showNode(s.name, seq);
    const parent = this.model.byId.get(s.parent_id);
    if (parent && parent.kind === "node" && ["model_call", "retrieval", "check", "custom"].includes(s.kind)) {
      await this.showNode(parent.name, parent.seq);
      const card = this.el.querySelector(`[data-card-seq="${seq}"]`);
      if (card) { card.classList.add("flash"); card.scrollIntoView({ block: "nearest" }); }
      return;
    }
    this.el.dataset.node = "";
    const token = ++this.token;
    const { span, children } = await api(`/api/runs/${this.runId}/spans/${seq}`);
    if (token !== this.token) return; // another click came first
    const kids = this.model.children.get(s.span_id) || [];
    const inKids = unionLength(kids, s);
    const dur = s.shownEnd - s.start;
    fill(this.el, 
      h("div.panel-head", h("h3", `${span.kind.replace("_", " ")} ${span.name}`), statusBadge(span.status)),
      h("div.muted.small", [this.where(span), fmtDuration(span.end === null ? null : span.end - span.start)]
        .filter(Boolean).join(" · ")),
      span.error ? h("div.error-box", span.error) : null,
      kids.length ? h("div.small.own-time", `own time ${fmtDuration(Math.max(dur - inKids, 0))} · in the ${kids.length} span(s) inside ${fmtDuration(inKids)}`) : null,
      spanFacts(span),
      children.length ? h("div.small.muted", `${children.length} span(s) directly inside`) : null);
  }

  async fillExecution(body, span, token = this.token) {
    fill(body, h("div.muted", "loading…"));
    const { span: full, children } = await api(`/api/runs/${this.runId}/spans/${span.seq}`);
    if (token !== this.token || !body.isConnected) return; // another node was opened meanwhile
    const kids = this.model.children.get(span.span_id) || [];
    const inKids = unionLength(kids, span);
    const dur = span.shownEnd - span.start;
    const data = full.data || {};
    const parts = [
      h("div.exec-meta", statusBadge(full.status), " ",
        [this.where(full), fmtDuration(full.end === null ? null : full.end - full.start)].filter(Boolean).join(" · "),
        kids.length ? h("span.own-time", ` · own ${fmtDuration(Math.max(dur - inKids, 0))}, in model calls and other spans inside ${fmtDuration(inKids)}`) : null),
      full.error ? h("div.error-box", full.error) : null,
      h("h4", "State change"),
      stateChange(data.update),
    ];
    for (const child of children) parts.push(card(child));
    fill(body, ...parts);
  }
}

/** Seconds of ``span`` covered by any of ``kids`` (overlaps counted once). */
function unionLength(kids, span) {
  const list = kids.map((k) => [Math.max(k.start, span.start), Math.min(k.shownEnd, span.shownEnd)])
    .filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0, end = -Infinity;
  for (const [a, b] of list) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

function stateChange(update) {
  if (!update || typeof update !== "object" || !Object.keys(update).length) {
    return h("div.muted.small", "no fields written");
  }
  return h("table.kv.state-change", Object.entries(update).map(([k, v]) =>
    h("tr", h("th", k), h("td", jsonBlock(v)))));
}

function spanFacts(span) {
  const data = { ...(span.data || {}) };
  delete data.duration_s;
  return Object.keys(data).length ? jsonBlock(data) : null;
}

export function card(span) {
  const make = { model_call: modelCard, retrieval: retrievalCard, check: checkCard }[span.kind] || customCard;
  const el = make(span);
  el.dataset.cardSeq = span.seq;
  return el;
}

function chip(label, value) {
  return h("span.chip", h("span.chip-k", label), " ", value);
}

function modelCard(span) {
  const d = span.data || {};
  const tokens = d.tokens && typeof d.tokens === "object" ? d.tokens : null;
  const chips = [chip("model", d.model || "?")];
  if (tokens) {
    // {prompt, completion, total} as the router records them; provider spellings also read
    const p = tokens.prompt ?? tokens.prompt_tokens ?? tokens.input_tokens;
    const c = tokens.completion ?? tokens.completion_tokens ?? tokens.output_tokens;
    const est = tokens.estimated ? " (estimated)" : "";
    chips.push(chip("tokens", `${fmtInt(p)} in · ${fmtInt(c)} out${est}`));
  } else if (typeof d.tokens === "number") chips.push(chip("tokens", fmtInt(d.tokens)));
  if (d.cost !== undefined) chips.push(chip("cost", fmtCost(d.cost)));
  chips.push(chip("latency", fmtDuration(d.latency ?? d.latency_s ?? d.duration_s)));
  if (d.retries) chips.push(chip("retries", d.retries));
  if (d.cache_hit) chips.push(h("span.chip.hit", "cache hit"));
  const messages = Array.isArray(d.messages) ? d.messages : [];
  const extra = Object.fromEntries(Object.entries(d).filter(([k]) => !MODEL_KEYS.has(k)));
  return h(`div.card.k-model_call.st-${span.status}`,
    h("div.card-head", h("b", "model call"), " ", h("span.alias", d.alias || span.name), " → ",
      h("code", d.model || "?"), statusBadge(span.status)),
    span.error ? h("div.error-box", span.error) : null,
    h("div.chips", chips),
    d.sampling ? h("details.params", { open: true }, h("summary", "Parameters"),
      h("table.kv", Object.entries(d.sampling).map(([k, v]) => h("tr", h("th", k), h("td", JSON.stringify(v)))))) : null,
    h("div.section-label", "Prompt"),
    h("div.messages", messages.map((m) =>
      h(`div.msg.role-${m.role || "user"}`, h("div.msg-role", m.role || "?"),
        h("div.msg-content", typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2))))),
    h("div.section-label", "Response"),
    h("div.response", typeof d.response === "string" ? d.response : JSON.stringify(d.response, null, 2)),
    Object.keys(extra).length ? h("details", h("summary", "More"), jsonBlock(extra)) : null);
}

function retrievalCard(span) {
  const d = span.data || {};
  const hits = Array.isArray(d.hits) ? d.hits : [];
  const queries = Array.isArray(d.queries) ? d.queries : [];
  return h(`div.card.k-retrieval.st-${span.status}`,
    h("div.card-head", h("b", "retrieval"), " ", span.name, statusBadge(span.status)),
    span.error ? h("div.error-box", span.error) : null,
    h("div.section-label", `Queries (${queries.length})`),
    h("ul.queries", queries.map((q) => h("li", typeof q === "string" ? q : JSON.stringify(q)))),
    h("div.section-label", `Hits (${hits.length})`),
    h("table.hits", h("tr", h("th", "#"), h("th.score-help", { title: RETRIEVAL_SCORE }, "score"), h("th", "source"), h("th", "text")),
      hits.map((hit, i) => {
        // hits are whole chunks, or only their ids beside "scores" and "sources" lists
        const obj = hit && typeof hit === "object" ? hit : { id: hit };
        const score = typeof obj.score === "number" ? obj.score : (d.scores || [])[i];
        return h("tr",
          h("td", i + 1),
          h("td.num", { title: RETRIEVAL_SCORE }, typeof score === "number" ? score.toFixed(3) : "–"),
          h("td", { title: obj.source || (d.sources || [])[i] || "" }, obj.source || (d.sources || [])[i] || obj.id || ""),
          h("td.hit-text", obj.text ? renderMarkdown(obj.text) : h("span.muted.mono", String(obj.id ?? JSON.stringify(hit)))));
      })));
}

function checkCard(span) {
  const d = span.data || {};
  const verdict = d.verdict ?? (d.passed === undefined ? "?" : d.passed ? "pass" : "fail");
  const ok = verdict === "pass" || verdict === true || verdict === "passed";
  return h(`div.card.k-check.st-${span.status}`,
    h("div.card-head", h("b", "check"), " ", span.name,
      h(`span.verdict.${ok ? "pass" : "fail"}`, String(verdict))),
    h("div.chips", typeof d.score === "number" ? h("span.score-help", { title: checkHelp(span.name, d) }, chip("score", d.score.toFixed(3))) : null,
      d.threshold !== undefined ? chip("threshold", d.threshold) : null),
    d.reason ? h("div.reason", d.reason) : null);
}

function customCard(span) {
  const d = { ...(span.data || {}) };
  delete d.duration_s;
  return h(`div.card.k-${span.kind}.st-${span.status}`,
    h("div.card-head", h("b", span.kind.replace("_", " ")), " ", span.name, statusBadge(span.status)),
    span.error ? h("div.error-box", span.error) : null,
    Object.keys(d).length ? jsonBlock(d) : null);
}
