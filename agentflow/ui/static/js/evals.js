// Evaluations: the folders `agentflow eval` wrote, listed with their metrics; one evaluation's
// items (question, expected, answer, scores, checks, a link to each item's trace) with filters on
// failures; and two evaluations side by side, each difference tested on the items both scored,
// with a warning where it is within noise or comes from a cache.
import { api, fill, fmtCost, fmtDuration, fmtInt, fmtTime, h, navigate, query } from "./util.js";

const fmtNum = (v, d = 3) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toFixed(d) : String(v));

export async function evalsPage(root) {
  const { evals } = await api("/api/evals");
  document.title = "evaluations · agentflow traces";
  const selected = new Set();
  const compareBtn = h("button#eval-compare.primary", { disabled: true, onclick: () => {
    const [a, b] = [...selected];
    navigate(`/evals/compare?a=${a}&b=${b}`);
  } }, "compare 2 selected");
  const rows = evals.map((e) => h("tr.eval-row", { dataset: { eval: e.id, name: e.name }, onclick: (ev) => {
    if (!ev.target.closest("input")) navigate(`/evals/${e.id}`);
  } },
  h("td", h("input", { type: "checkbox", title: "select to compare", onchange: (ev) => {
    if (ev.target.checked) selected.add(e.id); else selected.delete(e.id);
    if (selected.size > 2) {
      const drop = [...selected][0];
      selected.delete(drop);
      root.querySelector(`tr[data-eval="${drop}"] input`).checked = false;
    }
    compareBtn.disabled = selected.size !== 2;
  } })),
  h("td", h("a", { href: `/evals/${e.id}`, "data-nav": "" }, h("b", e.name)), h("div.muted.small", { title: e.folder }, e.folder)),
  h("td", e.error ? h("span.badge.st-error", "unreadable") : [h("div", e.workflow), h("div.muted.small", `${e.format}/${e.split}${e.profile ? " · " + e.profile : ""}`)]),
  h("td.small", (e.overrides || []).map((o) => h("div.mono", o))),
  h("td.num", e.items ? `${fmtInt(e.items.finished)} / ${fmtInt(e.items.planned)}` : "–",
    e.items && e.items.errors ? h("div.small.m-low", `${e.items.errors} errors`) : null),
  h("td", Object.entries(e.metrics || {}).map(([k, v]) => h("span.m-chip", h("span.m-k", `${(e.labels || {})[k] || k} `),
    k.startsWith("cost") ? fmtCost(v) : k.startsWith("latency") ? fmtDuration(v) : fmtNum(v)))),
  h("td.mono.small", e.written ? fmtTime(e.written) : "–")));
  fill(root,
    h("div.toolbar", h("h1", "Evaluations"), h("span.muted.small", "what agentflow eval wrote: .agentflow/eval/runs/ beside each trace database, and the folders given with agentflow ui --evals DIR"),
      h("span.spacer"), compareBtn),
    evals.length
      ? h("table.evals", h("thead", h("tr", ["", "evaluation", "workflow · dataset", "--set", "items", "metrics", "written"].map((c) => h("th", c)))), h("tbody", rows))
      : h("div.empty", "No evaluations found. Run `agentflow eval WORKFLOW --dataset PATH --format NAME` (its results go to .agentflow/eval/runs/), or start the viewer with --evals DIR."));
}

export async function evalPage(root, evalId) {
  const e = await api(`/api/evals/${encodeURIComponent(evalId)}`);
  document.title = `${e.name} · evaluations · agentflow traces`;
  const s = e.summary;
  const items = e.items;
  const checkKinds = [...new Set(items.flatMap((i) => Object.keys(i.checks)))].sort();
  const q = query();
  const filter = h("select#item-filter", { title: "show only the items that failed in some way" },
    h("option", { value: "" }, `all items (${items.length})`),
    h("option", { value: "error" }, `run failed (${items.filter((i) => i.status !== "ok").length})`),
    h("option", { value: "checks" }, `failing a check (${items.filter((i) => i.failing_checks.length).length})`),
    checkKinds.map((k) => h("option", { value: `check:${k}` }, `failing ${k} (${items.filter((i) => i.failing_checks.includes(k)).length})`)),
    e.item_metrics.filter((m) => m.direction === "higher").map((m) => h("option", { value: `low:${m.name}` },
      `${m.label} below 0.5 (${items.filter((i) => typeof i.metrics[m.name] === "number" && i.metrics[m.name] < 0.5).length})`)),
    h("option", { value: "abstained" }, `abstained (${items.filter((i) => i.abstained).length})`));
  filter.value = q.filter || "";
  const search = h("input#item-search", { type: "search", placeholder: "search questions and answers…", size: 30, value: q.q || "" });
  const body = h("tbody");
  const count = h("span.muted.small");
  const draw = () => {
    const f = filter.value;
    const text = search.value.trim().toLowerCase();
    const shown = items.filter((i) => keep(i, f) && (!text || `${i.question} ${i.answer ?? ""} ${i.expected} ${i.id}`.toLowerCase().includes(text)));
    count.textContent = `${shown.length} of ${items.length} items`;
    fill(body, shown.map((i) => itemRow(i, e.item_metrics)));
    const next = new URLSearchParams(location.search);
    if (f) next.set("filter", f); else next.delete("filter");
    if (text) next.set("q", text); else next.delete("q");
    history.replaceState(null, "", `${location.pathname}${next.toString() ? "?" + next : ""}`);
  };
  filter.addEventListener("change", draw);
  search.addEventListener("input", draw);
  const metrics = e.metric_rows.filter((m) => m.value !== null && m.value !== undefined);
  fill(root,
    h("div.toolbar", h("a.back", { href: "/evals", "data-nav": "" }, "← evaluations"), h("h1", e.name),
      h("span.muted", `${s.workflow} on ${s.format}/${s.split}${s.profile ? " · profile " + s.profile : ""}`)),
    h("div.muted.small", { title: e.folder }, e.folder, (s.overrides || []).length ? [" · --set ", s.overrides.join(" ")] : null),
    h("section.card-section",
      h("h2", "Metrics ", h("span.muted.small", `${fmtInt((s.items || {}).finished)} of ${fmtInt((s.items || {}).planned)} items finished, ${fmtInt((s.items || {}).errors)} with errors`)),
      h("table.eval-metrics", h("thead", h("tr", h("th", "metric"), h("th.num", "value"), h("th.num", "items scored"), h("th", "better when"))),
        h("tbody", metrics.map((m) => h("tr", { dataset: { metric: m.name } }, h("td", m.label),
          h("td.num", m.name.startsWith("cost") ? fmtCost(m.value) : m.name.startsWith("latency") ? fmtDuration(m.value) : fmtNum(m.value, 4)),
          h("td.num", m.count ?? ""), h("td.muted.small", m.direction)))))),
    h("section.card-section",
      h("div.toolbar", h("h2", "Items"), filter, search, count),
      h("table.eval-items",
        h("colgroup", [4, 22, 15, 25, 14, 12, 8].map((w) => h("col", { style: { width: `${w}%` } }))),
        h("thead", h("tr", ["#", "question", "expected", "answer", "scores", "checks", "trace"].map((c) => h("th", c)))), body)));
  draw();
}

function keep(i, f) {
  if (!f) return true;
  if (f === "error") return i.status !== "ok";
  if (f === "checks") return i.failing_checks.length > 0;
  if (f === "abstained") return !!i.abstained;
  if (f.startsWith("check:")) return i.failing_checks.includes(f.slice(6));
  if (f.startsWith("low:")) { const v = i.metrics[f.slice(4)]; return typeof v === "number" && v < 0.5; }
  return true;
}

function itemRow(i, metricDefs) {
  const failed = i.status !== "ok" || i.failing_checks.length;
  return h(`tr.item-row${failed ? ".failed" : ""}`, { dataset: { item: i.id, status: i.status } },
    h("td.num.muted", (i.index ?? 0) + 1),
    h("td", h("div", i.question), h("div.muted.small", i.id)),
    h("td.small", i.expected || h("span.muted", "–")),
    h("td", i.status === "ok" ? (i.answer ?? h("span.muted", "(no answer)")) : h("span.m-low", `error: ${i.error}`),
      i.answer_status && i.answer_status !== "passed" ? h("div", h(`span.badge.st-${i.answer_status}`, i.answer_status)) : null,
      i.route ? h("div.muted.small", `route ${i.route}`) : null),
    h("td", metricDefs.filter((m) => typeof i.metrics[m.name] === "number").map((m) => {
      const v = i.metrics[m.name];
      const low = m.direction === "higher" ? v < 0.5 : v > 0.5;
      return h("div.m-chip", h("span.m-k", `${m.label} `), h(low ? "b.m-low" : "b", v.toFixed(2)));
    })),
    h("td", Object.entries(i.checks).map(([k, c]) => h(`div.check-chip.${c.passed ? "pass" : c.passed === false ? "fail" : "unknown"}`,
      { title: `${k}${c.computed ? " (computed by the evaluation)" : ""}: ${c.reason || ""}` },
      c.passed ? "✓ " : c.passed === false ? "✗ " : "", k, typeof c.score === "number" ? ` ${c.score.toFixed(2)}` : ""))),
    h("td.small", i.run_id ? h("a.trace-link", { href: `/runs/${i.run_id}`, "data-nav": "", title: i.run_id }, `trace ${i.run_id.slice(0, 8)}`) : h("span.muted", "no trace"),
      i.feedback_up || i.feedback_down ? h("div.item-fb", { title: "feedback given on this item's run" },
        i.feedback_up ? h("span.fb-up", `▲ ${i.feedback_up}`) : null, i.feedback_down ? h("span.fb-down", `▼ ${i.feedback_down}`) : null) : null,
      h("div.muted", fmtDuration(i.latency_s)), i.tokens ? h("div.muted", `${fmtInt(i.tokens)} tok`) : null));
}

const VERDICT_CLASS = { better: "better", worse: "worse", "within noise": "noise", "too few items": "few", cache: "cache" };
const VERDICT_HELP = {
  better: "B is better, and the paired test says it is more than noise (p < 0.05)",
  worse: "B is worse, and the paired test says it is more than noise (p < 0.05)",
  "within noise": "the difference is within noise: the paired test over the shared items cannot tell A and B apart (p ≥ 0.05)",
  "too few items": "too few items in both evaluations to test the difference",
  cache: "a cache one side used and the other did not explains this difference: not the workflow's doing",
};

export async function evalComparePage(root) {
  const { a, b } = query();
  if (!a || !b) { fill(root, h("div.empty", "Pick two evaluations to compare: tick them in the list.")); return; }
  const c = await api(`/api/evals/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  document.title = `${c.a.name} vs ${c.b.name} · evaluations · agentflow traces`;
  const notes = Object.values(c.cache.notes || {});
  const fmtV = (name, v) => (name.startsWith("cost") ? fmtCost(v) : name.startsWith("latency") ? fmtDuration(v) : fmtNum(v, 4));
  fill(root,
    h("div.toolbar", h("a.back", { href: "/evals", "data-nav": "" }, "← evaluations"), h("h1", `Compare: ${c.a.name} vs ${c.b.name}`)),
    h("table.compare.eval-sides", h("thead", h("tr", h("th", ""), h("th", "folder"), h("th", "workflow"), h("th", "dataset"), h("th", "profile"), h("th", "--set"), h("th.num", "items"), h("th", "feedback on its runs"))),
      h("tbody", [["A", c.a], ["B", c.b]].map(([tag, e]) => h("tr", { dataset: { side: tag } }, h("th", tag), h("td.mono.small", e.folder), h("td", e.workflow),
        h("td", `${e.format}/${e.split}`), h("td", e.profile || "–"), h("td.mono.small", (e.overrides || []).join(" ") || "–"),
        h("td.num", fmtInt((e.items || {}).finished)),
        h("td.eval-fb", e.feedback && e.feedback.runs_rated ? `▲ ${e.feedback.up} · ▼ ${e.feedback.down} (${e.feedback.runs_rated} runs rated)` : h("span.muted", "none")))))),
    h("div.muted.small", `${c.shared} items in both, matched by id; each metric is tested on them, item by item (B − A).`,
      c.same_items.length ? ` What differs: ${c.same_items.join("; ")}.` : ""),
    notes.map((n) => h("div.warn-box.cache-warning", h("b", "Caches differ: "), n,
      ". Latency, tokens and cost differences a cache explains are marked ", h("b", "cache"), ", not better or worse.")),
    h("h2", "Metrics"),
    h("table.compare.eval-rows",
      h("thead", h("tr", h("th", "metric"), h("th.num", "A"), h("th.num", "B"), h("th.num", "B − A"), h("th", "95% interval of B − A"), h("th.num", "p"), h("th", "verdict"))),
      h("tbody", c.rows.map((r) => {
        const t = r.test || {};
        const interval = t.ci_low === null || t.ci_low === undefined ? "–" : `${fmtNum(t.ci_low, 4)} … ${fmtNum(t.ci_high, 4)}`;
        return h("tr", { dataset: { metric: r.name, verdict: r.verdict } },
          h("td", r.label), h("td.num", fmtV(r.name, r.a)), h("td.num", fmtV(r.name, r.b)),
          h("td.num", r.delta === null ? "–" : `${r.delta >= 0 ? "+" : ""}${fmtNum(r.delta, 4)}`),
          h("td.small", { title: t.method || "" }, interval, t.n ? h("span.muted", ` (n=${t.n})`) : null),
          h("td.num", t.p_value === null || t.p_value === undefined ? "–" : t.p_value.toFixed(3)),
          h(`td.verdict-${VERDICT_CLASS[r.verdict] || "none"}`, { title: [VERDICT_HELP[r.verdict] || "", ...(r.cache_notes || [])].filter(Boolean).join("\n") }, r.verdict || ""));
      }))),
    h("h2", "Items that scored differently ", h("span.muted.small", c.items.primary ? `by ${c.items.primary_label} and every other metric` : "")),
    c.items.list.length
      ? h("table.eval-items.changed-items",
        h("colgroup", [10, 22, 25, 25, 18].map((w) => h("col", { style: { width: `${w}%` } }))),
        h("thead", h("tr", ["item", "question", "A", "B", "A → B"].map((x) => h("th", x)))),
        h("tbody", c.items.list.map((i) => h("tr", { dataset: { item: i.id } },
          h("td.small", i.id), h("td", i.question),
          h("td", i.a.answer ?? "–", i.a.run_id ? h("div", h("a.trace-link", { href: `/runs/${i.a.run_id}`, "data-nav": "" }, `trace ${i.a.run_id.slice(0, 8)}`)) : null),
          h("td", i.b.answer ?? "–", i.b.run_id ? h("div", h("a.trace-link", { href: `/runs/${i.b.run_id}`, "data-nav": "" }, `trace ${i.b.run_id.slice(0, 8)}`)) : null),
          h("td.small", Object.entries(i.changed).map(([k, [va, vb]]) => h("div", `${k}: ${fmtNum(va, 2)} → ${fmtNum(vb, 2)}`)),
            i.a.status !== i.b.status ? h("div", `status: ${i.a.status} → ${i.b.status}`) : null)))))
      : h("div.muted", "No item scored differently."),
    c.items.more ? h("div.muted.small", `${c.items.more} more not shown`) : null);
}
