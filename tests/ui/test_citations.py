"""Matching an answer's citations with the passages they point to."""

from __future__ import annotations

from agentflow.ui.citations import resolve

DOCS = [{"id": "a#0", "source": "a.md", "text": "Loops are bounded by max_iterations."},
        {"id": "b#3", "source": "b.md", "text": "Maps run items concurrently, at most K at once."}]


def test_citations_resolve_by_doc_number_chunk_id_and_source() -> None:
    state = {"answer": "Loops are bounded [DOC 1]. Maps are concurrent [DOC 2].", "documents": DOCS,
             "citations": [{"doc": 1, "quote": "bounded by max_iterations"},
                           {"id": "b#3", "quote": "at most K at once"},
                           {"source": "b.md", "quote": "Maps run items concurrently"}]}
    view = resolve(state, hits=[])
    assert view.answer_field == "answer" and view.answer.startswith("Loops")
    first, second, third = view.citations
    assert (first.marker, first.passage["id"], first.quote_found) == ("[DOC 1]", "a#0", True)
    assert (second.marker, second.passage["source"], second.quote_found) == ("b#3", "b.md", True)
    assert (third.passage["id"], third.quote_found) == ("b#3", True)
    assert first.source == "a.md"  # taken from the passage when the citation has none


def test_a_quote_missing_from_its_passage_is_flagged_and_retrieval_hits_are_searched() -> None:
    hits = [{"id": "z#1", "source": "z.md", "text": "Routes pick one case by label.", "score": 0.7}]
    state = {"reply": "x", "citations": [{"doc_index": "DOC 1", "quote": "Loops never end"},
                                         {"chunk_id": "z#1", "text": "pick one case"},
                                         {"doc": 9, "quote": "nothing like this"}]}
    view = resolve({**state, "chunks": DOCS}, hits)
    made_up, from_hit, missing = view.citations
    assert made_up.passage["id"] == "a#0" and made_up.quote_found is False
    assert from_hit.passage["score"] == 0.7 and from_hit.quote_found is True
    assert missing.passage is None and missing.quote_found is None and missing.marker == "[DOC 9]"


def test_no_citations_field_means_no_citations() -> None:
    assert resolve({"answer": "hi"}, []).citations == []
    assert resolve(None, []).to_dict() == {"answer_field": None, "answer": "", "citations": [],
                                           "attribution": None}
