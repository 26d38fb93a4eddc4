"""ContextCite's attribution beside the citations: a run with an ``attribution`` check shows, per
``[DOC n]`` citation, the weight the attribution gave that document and whether it was flagged,
and per answer sentence the documents that drove it (in the API and in headless Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentflow.tracing import SQLiteTraceStore
from agentflow.tracing.events import Event
from agentflow.ui.server import ServerThread

from .fixtures import QUOTE_ACROSS_LINES, reference_run

RUN = "f1" * 16
SENTENCE = QUOTE_ACROSS_LINES.replace("forever.", "forever [DOC 1].")
ATTRIBUTION = {
    "kind": "attribution", "score": 0.5, "passed": False, "verdict": "fail", "threshold": 1.0,
    "reason": "1 of 2 citations supported by the attribution", "severity": "warn", "error": None,
    "details": {"model": "hosted_vllm/smollm2-135m", "ablations": 32, "sentences": [
        {"index": 0, "sentence": SENTENCE, "cited": [1], "tokens": 30,
         "sources": [{"source": 1, "doc": 2, "weight": 0.61, "text": "A map runs one node per item"},
                     {"source": 0, "doc": 1, "weight": 0.05, "text": "Every loop is bounded"}],
         "doc_weights": {"1": 0.05, "2": 0.61}, "unsupported_citations": [1], "uncited_sources": [2]}],
        "answer_sources": []}}


@pytest.fixture(scope="module")
def attributed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("attr") / "traces.db"
    store = SQLiteTraceStore(db)
    events = reference_run(RUN, question="Are loops bounded?", answer_status="caveat",
                           t0=1_765_200_000.0, tags={"origin": "run"})
    last = events[-1]
    node = f"{RUN}/node:check"
    events.insert(-1, Event("check", RUN, f"{node}/check:2", node, "attribution", "",
                            last.time - 0.001, status="ok", data=ATTRIBUTION))
    for event in events:
        store.on_event(event=event)
    store.close()
    with ServerThread(db) as server:
        yield server.url


def test_the_citations_api_puts_the_attribution_beside_each_citation(attributed: str) -> None:
    view = httpx.get(f"{attributed}/api/runs/{RUN}/citations").json()
    (cite,) = view["citations"]
    assert (cite["marker"], cite["attribution_weight"], cite["attribution_supports"]) == (
        "[DOC 1]", 0.05, False)
    (sentence,) = view["attribution"]["sentences"]
    assert sentence["uncited_sources"] == [2] and sentence["sources"][0]["doc"] == 2
    assert view["attribution"]["ablations"] == 32


@pytest.mark.browser
def test_the_run_page_shows_what_drove_each_sentence_and_flags_the_citation(
        browser: Any, attributed: str) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{attributed}/runs/{RUN}")
        page.wait_for_selector("#citations .attribution", timeout=10_000)
        chip = page.locator("#citations .cite-attribution").inner_text()
        assert "attribution 0.05" in chip and "not supported" in chip
        block = page.locator("#citations .attribution").inner_text()
        assert "ContextCite, 32 ablations" in block
        assert "[DOC 2] 0.61" in block
        assert "cites [DOC 1], which did not drive it" in block and "[DOC 2] drove it, uncited" in block
    finally:
        context.close()
    assert errors == []
