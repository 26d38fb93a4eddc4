"""An answer's citations, each matched with the passage it points to.

Citations come as data in a run's final state, ``citations: [{...}]``, each naming its document by
chunk id (``id``/``chunk_id``), by the ``n`` of its ``[DOC n]`` marker (``doc``/``doc_index``/``n``),
or only by ``source``, and quoting it (``quote``/``text``). Passages come from the run itself: the
hits of its retrieval spans and the documents kept in its final state (``documents``, ``chunks``,
``context``, ``passages``; ``[DOC n]`` is the n-th of these). A quote that cannot be found in its
passage is flagged, which is how a made-up citation shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ANSWER_FIELDS = ("answer", "reply", "response", "output", "final_answer")
DOC_FIELDS = ("documents", "chunks", "context", "passages", "docs", "sources")
_DOC_KEYS = ("doc", "doc_index", "doc_number", "n", "index", "number")
_ID_KEYS = ("id", "chunk_id", "doc_id", "document_id")
_QUOTE_KEYS = ("quote", "text", "sentence", "span", "evidence")
_SPACE = re.compile(r"\s+")


@dataclass(slots=True)
class ResolvedCitation:
    """One citation and, when found, the passage it points to."""

    marker: str
    """How the answer refers to it: ``[DOC 2]``, or the chunk id."""
    source: str
    quote: str
    passage: dict[str, Any] | None
    quote_found: bool | None
    """Whether the quote occurs in the passage (``None`` without a quote or a passage)."""
    passage_from: str | None = None
    """Where the passage was found: ``state`` (the documents the answer was written from) or
    ``retrieval`` (a retrieval span's hits)."""
    attribution_weight: float | None = None
    """With an ``attribution`` check in the run: the largest weight ContextCite gave this
    document for a sentence that cites it (0 when it gave none)."""
    attribution_supports: bool | None = None
    """Whether the attribution supports this citation (False: flagged as unsupported)."""


@dataclass(slots=True)
class CitationView:
    answer_field: str | None
    answer: str
    citations: list[ResolvedCitation]
    attribution: dict[str, Any] | None = None
    """The run's ContextCite attribution (its ``attribution`` check): per answer sentence, the
    documents that caused it with their weights, and the flags."""

    def to_dict(self) -> dict[str, Any]:
        return {"answer_field": self.answer_field, "answer": self.answer,
                "citations": [asdict(c) for c in self.citations],
                "attribution": self.attribution}

    def add_attribution(self, check: Mapping[str, Any] | None) -> CitationView:
        """Put an ``attribution`` check's result beside the citations (see
        :mod:`agentflow.checks.attribution`): each ``[DOC n]`` citation gets the weight the
        attribution gave document n for the sentences citing it, and whether it was flagged."""
        details = (check or {}).get("details")
        if not isinstance(details, Mapping) or not isinstance(details.get("sentences"), list):
            return self
        sentences = [s for s in details["sentences"] if isinstance(s, Mapping)]
        for c in self.citations:
            number = _doc_number(c.marker) if c.marker.startswith("[DOC") else None
            citing = [s for s in sentences if number in (s.get("cited") or [])]
            if number is None or not citing:
                continue
            weights = [float((s.get("doc_weights") or {}).get(str(number), 0.0)) for s in citing]
            c.attribution_weight = round(max(weights), 4)
            c.attribution_supports = not any(number in (s.get("unsupported_citations") or [])
                                             for s in citing)
        self.attribution = {
            "score": check.get("score") if check else None,
            "passed": check.get("passed") if check else None,
            "reason": check.get("reason") if check else None,
            "model": details.get("model"), "ablations": details.get("ablations"),
            "sentences": [{k: s.get(k) for k in ("sentence", "cited", "sources", "doc_weights",
                                                 "unsupported_citations", "uncited_sources")}
                          for s in sentences],
        }
        return self


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def _as_passage(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return dict(value)
    if isinstance(value, str):
        return {"text": value}
    return None


def state_documents(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The documents the answer was written from, in ``[DOC n]`` order (first list found)."""
    for key in DOC_FIELDS:
        value = state.get(key)
        if isinstance(value, list) and value:
            docs = [_as_passage(v) for v in value]
            if all(d is not None for d in docs):
                return [d for d in docs if d is not None]
    return []


def _doc_number(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        match = re.search(r"\d+", raw)
        return int(match.group()) if match else None
    return None


def resolve(state: Mapping[str, Any] | None, hits: Sequence[Mapping[str, Any]]) -> CitationView:
    """Match the citations of a final state with passages from the state and retrieval hits."""
    state = state or {}
    answer_field = next((k for k in ANSWER_FIELDS if isinstance(state.get(k), str)), None)
    answer = str(state.get(answer_field, "")) if answer_field else ""
    raw = state.get("citations")
    if not isinstance(raw, list):
        return CitationView(answer_field, answer, [])
    docs = state_documents(state)
    by_id: dict[str, dict[str, Any]] = {}
    for passage in [*docs, *(_as_passage(h) for h in hits)]:
        if passage is not None and passage.get("id") is not None:
            by_id.setdefault(str(passage["id"]), passage)
    candidates = [*docs, *(p for p in (_as_passage(h) for h in hits) if p is not None)]
    return CitationView(answer_field, answer,
                        [_resolve_one(c, docs, by_id, candidates) for c in raw if c is not None])


def _resolve_one(citation: Any, docs: list[dict[str, Any]], by_id: dict[str, dict[str, Any]],
                 candidates: list[dict[str, Any]]) -> ResolvedCitation:
    if not isinstance(citation, Mapping):
        citation = {"doc": citation} if isinstance(citation, (int, str)) else {}
    quote = str(_first(citation, _QUOTE_KEYS) or "")
    source = str(citation.get("source") or "")
    number = _doc_number(_first(citation, _DOC_KEYS))
    chunk_id = _first(citation, _ID_KEYS)
    passage: dict[str, Any] | None = None
    if chunk_id is not None:
        passage = by_id.get(str(chunk_id))
    if passage is None and number is not None and 1 <= number <= len(docs):
        passage = docs[number - 1]
    if passage is None:
        passage = _by_quote(quote, source, candidates)
    marker = f"[DOC {number}]" if number is not None else (str(chunk_id) if chunk_id else source)
    found = None
    if quote and passage is not None:
        found = _norm(quote) in _norm(str(passage.get("text", "")))
    origin = None if passage is None else (
        "state" if any(passage is d for d in docs) else "retrieval")
    return ResolvedCitation(marker, source or str((passage or {}).get("source", "")), quote,
                            passage, found, origin)


def _by_quote(quote: str, source: str, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first candidate from ``source`` that contains the quote, else the first from ``source``."""
    same_source = [c for c in candidates if not source or c.get("source") == source]
    if quote:
        needle = _norm(quote)
        for c in same_source:
            if needle in _norm(str(c.get("text", ""))):
                return c
    return same_source[0] if source and same_source else None
