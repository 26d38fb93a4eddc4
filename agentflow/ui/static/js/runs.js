// The runs list: the question each run was asked, its outcome (caveat and abstained apart from
// ok), route, latency, tokens, cost, feedback and origin; search and filters by workflow, status,
// tag and text; pick two to compare. Filters live in the URL, so a filtered list can be shared.
import { api, fill, fmtCost, fmtDuration, fmtInt, fmtTime, h, navigate, outcomeBadge, query, shortId } from "./util.js";

const SORTS = [["time", "time"], ["latency", "latency"], ["cost", "cost"]];
const STATUSES = ["", "ok", "caveat", "abstained", "error", "incomplete", "running"];
const ORIGINS = ["run", "eval", "test", "serve", "python"];
const PAGE = 100;

export async function runsPage(root) {
  const q = query();
  const params = new URLSearchParams();
  for (const k of ["workflow", "status", "sort", "order", "tag", "q", "offset"]) if (q[k]) params.set(k, q[k]);
  const page = Math.min(Math.max(Number(q.limit) || PAGE, 1), 1000);
  params.set("limit", String(page));
  const [data, info] = await Promise.all([api(`/api/runs?${params}`), api("/api/info")]);
  document.title = "runs · agentflow traces";
  const selected = new Set();

  const setParam = (k, v) => {
    const next = new URLSearchParams(location.search);
    if (v) next.set(k, v); else next.delete(k);
    if (k !== "offset") next.delete("offset"); // a new filter starts at the newest
    navigate(`/?${next}`);
  };
  const workflow = h("select#f-workflow", { title: "workflow", onchange: (e) => setParam("workflow", e.target.value) },
    h("option", { value: "" }, "all workflows"),
    data.workflows.map((w) => h("option", { value: w, selected: w === q.workflow }, w)));
  const status = h("select#f-status", { title: "outcome", onchange: (e) => setParam("status", e.target.value) },
    STATUSES.map((s) => h("option", { value: s, selected: s === (q.status || "") }, s || "any status")));
  const tagOptions = [];
  for (const [key, values] of Object.entries(data.tags || {})) {
    if (key === "origin") continue;
    for (const v of values) tagOptions.push(`${key}=${v}`);
  }
  const origins = [...new Set([...ORIGINS, ...((data.tags || {}).origin || [])])];
  const tag = h("select#f-tag", { title: "origin or tag", onchange: (e) => setParam("tag", e.target.value) },
    h("option", { value: "" }, "any origin"),
    h("optgroup", { label: "origin" }, origins.map((o) => h("option", { value: `origin=${o}`, selected: q.tag === `origin=${o}` }, o))),
    tagOptions.length ? h("optgroup", { label: "tags" }, tagOptions.map((t) => h("option", { value: t, selected: q.tag === t }, t))) : null,
    q.tag && !q.tag.startsWith("origin=") && !tagOptions.includes(q.tag) ? h("option", { value: q.tag, selected: true }, q.tag) : null);
  const search = h("input#f-q", { type: "search", value: q.q || "", size: 34,
    placeholder: "search questions, answers, errors, run ids…", "aria-label": "search runs",
    onkeydown: (e) => { if (e.key === "Enter") setParam("q", e.target.value.trim()); },
    onsearch: (e) => { if (!e.target.value) setParam("q", ""); } });
  const sort = q.sort || "time";
  const order = q.order || "desc";
  const sortButtons = SORTS.map(([key, label]) =>
    h(`button.sort${sort === key ? ".active" : ""}`, {
      dataset: { sort: key },
      title: `sort by ${label}`,
      onclick: () => {
        const next = new URLSearchParams(location.search);
        next.set("sort", key);
        next.set("order", sort === key && order === "desc" ? "asc" : "desc");
        next.delete("offset");
        navigate(`/?${next}`);
      },
    }, label, sort === key ? (order === "desc" ? " ↓" : " ↑") : ""));
  const compareBtn = h("button#compare.primary", { disabled: true, onclick: () => {
    const [a, b] = [...selected];
    navigate(`/compare?a=${a}&b=${b}`);
  } }, "compare 2 selected");

  const rows = data.runs.map((r) => {
    const box = h("input", { type: "checkbox", title: "select to compare",
      onclick: (e) => e.stopPropagation(),
      onchange: (e) => {
        if (e.target.checked) selected.add(r.run_id); else selected.delete(r.run_id);
        if (selected.size > 2) {
          const drop = [...selected][0];
          selected.delete(drop);
          root.querySelector(`tr[data-run="${drop}"] input`).checked = false;
        }
        compareBtn.disabled = selected.size !== 2;
      } });
    const tags = r.tags || {};
    const extra = Object.entries(tags).filter(([k]) => k !== "origin");
    return h("tr.run-row", { dataset: { run: r.run_id, status: r.status, outcome: r.outcome },
      onclick: (e) => { if (!e.target.closest("a")) navigate(`/runs/${r.run_id}`); } },
      h("td", box),
      h("td.q-cell", h("a.q-link", { href: `/runs/${r.run_id}`, "data-nav": "", title: r.question || "" },
        r.question || h("span.muted", "(no question)")),
        r.answer ? h("div.a-line", { title: r.answer }, r.answer) : null,
        r.error ? h("div.err-line", { title: r.error }, r.error.slice(0, 140)) : null),
      h("td", outcomeBadge(r.outcome)),
      h("td.mono.small", r.route || h("span.muted", "–")),
      h("td", h("div", r.workflow), h("div.tag-line",
        tags.origin ? h("span.tag.origin", { title: "origin: where the run came from" }, tags.origin) : null,
        extra.map(([k, v]) => h("span.tag", { title: `tag ${k}=${v}` }, `${k}=${v}`)))),
      h("td.mono.small", { title: r.run_id }, fmtTime(r.started), h("div.muted", shortId(r.run_id))),
      h("td.num", fmtDuration(r.duration_s)),
      h("td.num", fmtInt(r.tokens)),
      h("td.num", fmtCost(r.cost)),
      h("td.fb-cell", feedbackCell(r)));
  });

  fill(root,
    dbBar(info),
    h("div.toolbar", h("h1", "Runs"), search, workflow, status, tag, h("span.muted", "sort:"), sortButtons,
      h("span.spacer"), compareBtn),
    data.runs.length
      ? h("table.runs", h("thead", h("tr", ["", "question", "status", "route", "workflow · origin", "started · run",
          "latency", "tokens", "cost", "feedback"].map((c, i) => h(`th${i >= 6 && i <= 8 ? ".num" : ""}`, c)))), h("tbody", rows))
      : h("div.empty", data.workflows.length ? "No runs match these filters."
        : `No runs recorded yet in ${data.db}. Run a workflow (agentflow run ...) and reload, or pick another database above.`),
    pager(q, data.runs.length, page, setParam));
}

/** Newer and older pages of the list. */
function pager(q, count, size, setParam) {
  const offset = Number(q.offset || 0);
  if (!offset && count < size) return null;
  return h("div.pager",
    h("button.sort#newer", { disabled: offset <= 0, onclick: () => setParam("offset", offset - size > 0 ? String(offset - size) : "") }, "← newer"),
    h("span.muted.small#page-range", `runs ${offset + 1}–${offset + count}`),
    h("button.sort#older", { disabled: count < size, onclick: () => setParam("offset", String(offset + size)) }, "older →"));
}

function feedbackCell(r) {
  const up = r.feedback_up || 0, down = r.feedback_down || 0;
  if (!up && !down) return h("span.muted", "–");
  return [up ? h("span.fb-up", { title: `${up} thumbs up` }, `▲ ${up}`) : null,
    down ? h("span.fb-down", { title: `${down} thumbs down` }, `▼ ${down}`) : null];
}

/** Which trace database this is, and a picker for the others the viewer found. */
export function dbBar(info) {
  const others = info.databases.filter((d) => d.id !== info.db.id);
  const pick = h("select#f-db", { title: "show another trace database",
    onchange: (e) => {
      document.cookie = `${info.cookie}=${e.target.value}; path=/; SameSite=Strict`;
      navigate("/");
    } },
  info.databases.map((d) => h("option", { value: d.id, selected: d.id === info.db.id }, d.path + (d.exists ? "" : " (no runs yet)"))));
  return h("div.db-bar", h("span.muted", "traces from "), h("code#db-path", info.db.path),
    others.length ? [h("span.muted", ` · ${others.length} other database${others.length > 1 ? "s" : ""} found: `), pick]
      : h("span.muted.small", " · runs made from another folder are in that folder's .agentflow/traces.db: start agentflow ui there, or pass --db PATH"));
}
