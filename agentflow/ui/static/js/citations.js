// An answer's citations beside the passages they point to; a quote missing from its passage is
// flagged, which is how an invented citation shows.
import { api, h } from "./util.js";

export async function renderCitations(runId) {
  const view = await api(`/api/runs/${runId}/citations`);
  if (!view.citations.length) return null;
  const rows = view.citations.map((c, i) => citationRow(c, i));
  const answer = h("div.answer", highlightMarkers(view.answer, (marker) => {
    const targets = rows.filter((r) => r.dataset.marker === marker);
    for (const r of targets) { r.classList.remove("flash"); void r.offsetWidth; r.classList.add("flash"); }
    if (targets[0]) targets[0].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }));
  return h("section.card-section#citations",
    h("h2", "Answer & citations"),
    view.answer_field ? h("div.muted.small", `from the final state's "${view.answer_field}"`) : null,
    answer,
    h("div.cite-grid", h("div.cite-col-head", "Citation"), h("div.cite-col-head", "Passage it points to"), rows));
}

function highlightMarkers(text, onMarker) {
  const out = [];
  const re = /\[DOC\s*(\d+)\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const marker = `[DOC ${m[1]}]`;
    out.push(h("button.cite-marker", { onclick: () => onMarker(marker) }, marker));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function citationRow(c, i) {
  const state = c.passage === null ? "missing" : c.quote_found === false ? "unsupported"
    : c.quote_found ? "supported" : "unknown";
  const label = { missing: "passage not found", unsupported: "quote not in passage",
    supported: "quote found in passage", unknown: "no quote to check" }[state];
  const passage = c.passage
    ? h("div.cite-passage",
        h("div.cite-source", c.passage.source || c.source || "", c.passage.id ? h("span.muted", ` · ${c.passage.id}`) : null,
          typeof c.passage.score === "number" ? h("span.muted", ` · score ${c.passage.score.toFixed(3)}`) : null),
        h("div.cite-text", markQuote(String(c.passage.text || ""), c.quote)))
    : h("div.cite-passage.none", "No passage of this run matches this citation.");
  return h(`div.cite-row.cite-${state}`, { dataset: { marker: c.marker, index: i } },
    h("div.cite-claim",
      h("span.cite-marker.static", c.marker || `#${i + 1}`),
      h(`span.cite-state.${state}`, label),
      c.quote ? h("blockquote", c.quote) : null,
      c.source ? h("div.muted.small", c.source) : null),
    passage);
}

function markQuote(text, quote) {
  if (!quote) return text;
  const norm = (s) => s.replace(/\s+/g, " ").toLowerCase();
  const hay = norm(text);
  const at = hay.indexOf(norm(quote).trim());
  if (at < 0 || hay.length !== text.length) {
    return at < 0 ? text : simpleMark(text, quote);
  }
  const len = norm(quote).trim().length;
  return [text.slice(0, at), h("mark", text.slice(at, at + len)), text.slice(at + len)];
}

function simpleMark(text, quote) {
  const at = text.toLowerCase().indexOf(quote.toLowerCase());
  if (at < 0) return text;
  return [text.slice(0, at), h("mark", text.slice(at, at + quote.length)), text.slice(at + quote.length)];
}
