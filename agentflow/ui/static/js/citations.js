// An answer's citations beside the passages they point to, rendered as the documents show them
// (Markdown), with the quoted sentence highlighted even across hard-wrapped lines; a quote missing
// from its passage is flagged, which is how an invented citation shows.
import { highlightQuote, renderInline, renderMarkdown } from "./markdown.js";
import { passageScoreHelp } from "./scores.js";
import { api, h } from "./util.js";

export async function renderCitations(runId, { fused = false } = {}) {
  const view = await api(`/api/runs/${runId}/citations`);
  if (!view.citations.length) return null;
  const rows = view.citations.map((c, i) => citationRow(c, i, fused));
  const answer = h("div.answer", answerWithMarkers(view.answer, (marker) => {
    const targets = rows.filter((r) => r.dataset.marker === marker);
    for (const r of targets) { r.classList.remove("flash"); void r.offsetWidth; r.classList.add("flash"); }
    if (targets[0]) targets[0].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }));
  const section = h("section.card-section#citations",
    h("h2", "Answer & citations"),
    view.answer_field ? h("div.muted.small", `from the final state's "${view.answer_field}"`) : null,
    answer,
    h("div.cite-grid", h("div.cite-col-head", "Citation"), h("div.cite-col-head", "Passage it points to"), rows),
    view.attribution ? attributionBlock(view.attribution) : null);
  // marks are placed once the passages are in the document (ranges need attached nodes)
  section.highlight = () => {
    for (const row of rows) {
      const text = row.querySelector(".cite-text");
      if (!text || !row.quote) continue;
      const marks = highlightQuote(text, row.quote);
      row.dataset.highlighted = marks.length ? "yes" : "no";
      if (marks.length && row.classList.contains("cite-unsupported")) {
        // the browser's looser match (line breaks, Markdown) found what the strict check missed
        row.querySelector(".cite-state").append(h("span.muted", " (found ignoring line breaks and formatting)"));
      }
    }
  };
  return section;
}

/** The answer's text with each [DOC n] as a button that flashes its citation. */
export function answerWithMarkers(text, onMarker) {
  const out = [];
  const re = /\[DOC\s*(\d+)\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(renderInline(text.slice(last, m.index)));
    const marker = `[DOC ${m[1]}]`;
    out.push(onMarker ? h("button.cite-marker", { onclick: () => onMarker(marker) }, marker) : h("span.cite-marker", marker));
    last = m.index + m[0].length;
  }
  out.push(renderInline(text.slice(last)));
  return out;
}

function citationRow(c, i, fused) {
  const state = c.passage === null ? "missing" : c.quote_found === false ? "unsupported"
    : c.quote_found ? "supported" : "unknown";
  const label = { missing: "passage not found", unsupported: "quote not in passage",
    supported: "quote found in passage", unknown: "no quote to check" }[state];
  const p = c.passage;
  const passage = p
    ? h("div.cite-passage",
        h("div.cite-source", { title: p.source || c.source || "" }, baseName(p.source || c.source || ""),
          p.heading ? h("span.muted", ` · ${p.heading}`) : null,
          typeof p.score === "number"
            ? h("span.score-help", { title: passageScoreHelp(c.passage_from === "state", fused) },
              ` · ${c.passage_from === "state" && fused ? "fused score" : "score"} ${p.score.toFixed(3)}`) : null),
        h("div.cite-text", renderMarkdown(String(p.text || ""))))
    : h("div.cite-passage.none", "No passage of this run matches this citation.");
  const row = h(`div.cite-row.cite-${state}`, { dataset: { marker: c.marker, index: i } },
    h("div.cite-claim",
      h("span.cite-marker.static", c.marker || `#${i + 1}`),
      h(`span.cite-state.${state}`, label),
      typeof c.attribution_weight === "number"
        ? h(`span.cite-attribution${c.attribution_supports === false ? ".unsupported" : ""}`,
            { title: "ContextCite: how much this document drove the sentences citing it (the weight of a " +
                "sparse linear model of the answer's log-probability over random ablations of the documents)" },
            ` · attribution ${c.attribution_weight.toFixed(2)}${c.attribution_supports === false ? ", not supported" : ""}`)
        : null,
      c.quote ? h("blockquote", c.quote) : null,
      c.source ? h("div.muted.small", { title: c.source }, baseName(c.source)) : null),
    passage);
  row.quote = c.quote;
  return row;
}

/** ContextCite's answer: per sentence, the documents that caused it and the flags. */
function attributionBlock(a) {
  const head = `Attribution (ContextCite${a.ablations ? `, ${a.ablations} ablations` : ""}` +
    `${a.model ? `, ${a.model}` : ""})`;
  const rows = (a.sentences || []).map((s) => {
    const sources = (s.sources || []).filter((w) => w.weight > 0).slice(0, 3)
      .map((w) => h("span.attr-source", { title: w.text || "" }, `[DOC ${w.doc}] ${w.weight.toFixed(2)}`));
    const flags = [
      ...(s.unsupported_citations || []).map((d) => h("span.attr-flag", `cites [DOC ${d}], which did not drive it`)),
      ...(s.uncited_sources || []).map((d) => h("span.attr-flag", `[DOC ${d}] drove it, uncited`)),
    ];
    return h("div.attr-row", h("div.attr-sentence", renderInline(String(s.sentence || ""))),
      h("div.attr-sources", sources.length ? sources : h("span.muted", "no document stands out")), flags);
  });
  return h("div.attribution", h("h3", head),
    a.reason ? h("div.muted.small", a.reason) : null, rows);
}

function baseName(path) {
  const parts = String(path).split(/[\\/]/);
  return parts.length > 2 ? `…/${parts.slice(-2).join("/")}` : path;
}
