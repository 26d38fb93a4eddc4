// The runs list: filter by workflow and status, sort by time, latency or cost, pick two to compare.
import { api, fmtCost, fmtDuration, fmtInt, fmtTime, h, navigate, query, shortId, statusBadge, fill } from "./util.js";

const SORTS = [["time", "time"], ["latency", "latency"], ["cost", "cost"]];
const STATUSES = ["", "ok", "error", "incomplete", "running"];

export async function runsPage(root) {
  const q = query();
  const params = new URLSearchParams();
  for (const k of ["workflow", "status", "sort", "order"]) if (q[k]) params.set(k, q[k]);
  const data = await api(`/api/runs?${params}`);
  document.title = "runs · agentflow traces";
  const selected = new Set();

  const setParam = (k, v) => {
    const next = new URLSearchParams(location.search);
    if (v) next.set(k, v); else next.delete(k);
    navigate(`/?${next}`);
  };
  const workflow = h("select#f-workflow", { onchange: (e) => setParam("workflow", e.target.value) },
    h("option", { value: "" }, "all workflows"),
    data.workflows.map((w) => h("option", { value: w, selected: w === q.workflow }, w)));
  const status = h("select#f-status", { onchange: (e) => setParam("status", e.target.value) },
    STATUSES.map((s) => h("option", { value: s, selected: s === (q.status || "") }, s || "any status")));
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
    return h("tr.run-row", { dataset: { run: r.run_id, status: r.status },
      onclick: () => navigate(`/runs/${r.run_id}`) },
      h("td", box),
      h("td.mono", fmtTime(r.started)),
      h("td", r.workflow),
      h("td", statusBadge(r.status)),
      h("td.num", fmtDuration(r.duration_s)),
      h("td.num", fmtInt(r.nodes)),
      h("td.num", fmtInt(r.tokens)),
      h("td.num", fmtCost(r.cost)),
      h("td.mono.muted", shortId(r.run_id)),
      h("td.err-cell", { title: r.error || "" }, r.error ? r.error.slice(0, 90) : ""));
  });

  fill(root, 
    h("div.toolbar", h("h1", "Runs"), workflow, status, h("span.muted", "sort:"), sortButtons,
      h("span.spacer"), compareBtn),
    data.runs.length
      ? h("table.runs", h("thead", h("tr", ["", "started", "workflow", "status", "latency", "nodes",
          "tokens", "cost", "run", "error"].map((c) => h("th", c)))), h("tbody", rows))
      : h("div.empty", data.workflows.length ? "No runs match these filters."
        : `No runs recorded yet in ${data.db}. Run a workflow (agentflow run ...) and reload.`));
}
