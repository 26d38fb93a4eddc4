// Passages as their documents show them: a small, safe Markdown renderer (headings, paragraphs
// whose hard-wrapped lines join, lists, quotes, code blocks, tables, inline code, bold, italics,
// links) that builds DOM nodes, never HTML strings; and a quote finder that highlights a quoted
// sentence in the rendered text even where it crosses a line break, a code span or bold text.
import { h } from "./util.js";

/** A Markdown text as a DOM fragment. */
export function renderMarkdown(text) {
  const root = h("div.md");
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) root.append(h("p", inline(para.join(" "))));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line);
    if (fence) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      root.append(h("pre.md-code", h("code", { dataset: { lang: fence[2] || "" } }, body.join("\n"))));
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      flush();
      root.append(h(`h${Math.min(6, heading[1].length + 2)}.md-h`, inline(heading[2])));
      i++;
      continue;
    }
    if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|?[\s:|-]+\|?\s*$/.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      flush();
      const cells = (l) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
      const head = cells(line);
      i += 2;
      const body = [];
      while (i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i])) body.push(cells(lines[i++]));
      root.append(h("table.md-table", h("thead", h("tr", head.map((c) => h("th", inline(c))))),
        h("tbody", body.map((r) => h("tr", r.map((c) => h("td", inline(c))))))));
      continue;
    }
    const item = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (item) {
      flush();
      const ordered = /\d/.test(item[2]);
      const list = h(ordered ? "ol" : "ul");
      while (i < lines.length) {
        const m = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]);
        if (!m) {
          // a wrapped continuation line of the item before
          if (lines[i].trim() && /^\s+/.test(lines[i]) && list.lastChild) {
            list.lastChild.append(" ", ...inline(lines[i].trim()));
            i++;
            continue;
          }
          break;
        }
        list.append(h("li", inline(m[3])));
        i++;
      }
      root.append(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
      root.append(h("blockquote.md-quote", inline(body.join(" "))));
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    para.push(line.trim());
    i++;
  }
  flush();
  return root;
}

const INLINE = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)[^)]*\)/g;

/** Inline Markdown (code, bold, italics, links) of one line, as DOM nodes. */
export function renderInline(text) {
  return inline(String(text ?? ""));
}

function inline(text) {
  const out = [];
  let last = 0;
  let m;
  const re = new RegExp(INLINE); // its own lastIndex: bold and links recurse into inline()
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1]) out.push(h("code", m[2]));
    else if (m[3] || m[4]) out.push(h("strong", inline(m[3] || m[4])));
    else if (m[5]) out.push(h("em", inline(m[5])));
    else if (m[6]) {
      const safe = /^(https?:|#|\/|\.{0,2}\/?[\w.-])/.test(m[7]) && !/^\s*javascript:/i.test(m[7]);
      out.push(safe ? h("a.md-link", { href: m[7], title: m[7], target: "_blank", rel: "noopener noreferrer" }, inline(m[6]))
        : h("span", inline(m[6])));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// --- finding a quote in rendered text --------------------------------------------------------

const DROP = /[`*]/;
const BLOCKS = new Set(["P", "LI", "H1", "H2", "H3", "H4", "H5", "H6", "PRE", "TD", "TH", "BLOCKQUOTE", "DIV", "TR"]);

/** The text of ``s`` as quotes are compared: lower case, Markdown marks dropped, whitespace folded. */
export function normQuote(s) {
  return String(s).toLowerCase().replace(/[`*]/g, "").replace(/\s+/g, " ").trim();
}

/**
 * Wrap the first occurrence of ``quote`` in ``root``'s text in <mark> elements (one per text node
 * it spans). Whitespace, line breaks, Markdown marks and case are ignored; a trailing full stop
 * may be missing on either side. Returns the marks (empty when the quote is not there).
 */
export function highlightQuote(root, quote) {
  const needle = normQuote(quote);
  if (!needle) return [];
  // one normalised string over every text node, with where each of its characters came from
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const chars = [];
  const where = [];
  let prevBlock = null;
  let space = true;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let block = node.parentNode;
    while (block && block !== root && !BLOCKS.has(block.nodeName)) block = block.parentNode;
    if (prevBlock && block !== prevBlock && !space) { chars.push(" "); where.push(null); space = true; }
    prevBlock = block;
    const text = node.nodeValue;
    for (let k = 0; k < text.length; k++) {
      const c = text[k];
      if (DROP.test(c)) continue;
      if (/\s/.test(c)) {
        if (space) continue;
        chars.push(" "); where.push([node, k]); space = true;
      } else {
        chars.push(c.toLowerCase()); where.push([node, k]); space = false;
      }
    }
  }
  const hay = chars.join("");
  let at = hay.indexOf(needle);
  let len = needle.length;
  if (at < 0 && /[.!?]$/.test(needle)) { len = needle.length - 1; at = hay.indexOf(needle.slice(0, -1)); }
  if (at < 0) return [];
  // the text nodes and offsets the match covers, wrapped from the last so offsets stay valid
  const pieces = new Map();
  for (let k = at; k < at + len; k++) {
    const w = where[k];
    if (!w) continue;
    const [node, off] = w;
    const p = pieces.get(node);
    if (p) { p[0] = Math.min(p[0], off); p[1] = Math.max(p[1], off + 1); } else pieces.set(node, [off, off + 1]);
  }
  const marks = [];
  for (const [node, [from, to]] of [...pieces.entries()].reverse()) {
    const range = document.createRange();
    range.setStart(node, from);
    range.setEnd(node, to);
    const mark = h("mark.quote");
    range.surroundContents(mark);
    marks.unshift(mark);
  }
  return marks;
}
