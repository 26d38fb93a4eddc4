"""The trace viewer as people use it, driven in headless Chromium: the timeline zooms, pans and
focuses; runs are found by their question and show caveats; the run page leads with the answer,
highlights quotes across line breaks and keeps feedback; compare diffs; evaluations are listed,
filtered and compared. Set AGENTFLOW_SCREENSHOTS=1 to refresh the screenshots in docs/images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentflow.eval import report
from agentflow.eval.compare import load, render
from agentflow.eval.results import latest_by_id, read_results

from .conftest import Viewer
from .fixtures import QUOTE_ACROSS_LINES
from .test_browser import open_page, shots_dir

pytestmark = pytest.mark.browser


def view(page: Any) -> tuple[float, float]:
    tl = page.locator(".timeline")
    return float(tl.get_attribute("data-view-start")), float(tl.get_attribute("data-view-end"))


def wait_view_change(page: Any, before: tuple[float, float]) -> tuple[float, float]:
    page.wait_for_function("([a, b]) => { const tl = document.querySelector('.timeline');"
                           " return +tl.dataset.viewStart !== a || +tl.dataset.viewEnd !== b; }",
                           arg=list(before), timeout=5_000)
    return view(page)


def test_the_timeline_zooms_with_the_wheel_and_a_brush_pans_and_fits(page: Any, viewer: Viewer) -> None:
    open_page(page, viewer, f"/runs/{viewer.ids['ok']}")
    whole = view(page)
    assert whole[0] == 0 and page.locator(".tl-range").inner_text().startswith("whole run")
    ticks = [t.inner_text() for t in page.locator(".tl-tick").all()]
    assert ticks[0] == "0" and all(t.endswith(" ms") for t in ticks[1:]), ticks  # one unit, from the start
    bars_before = page.locator(".tl-bar").count()

    # ctrl + wheel over the lanes zooms in around the pointer; the visible range shrinks
    page.locator(".tl-toolbar").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, document.querySelector('.tl-toolbar').getBoundingClientRect().top - 10)")
    track = page.locator(".tl-lane[data-lane='main'] .tl-track").bounding_box()
    page.mouse.move(track["x"] + track["width"] * 0.5, track["y"] + 10)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    zoomed = wait_view_change(page, whole)
    page.wait_for_timeout(100)
    zoomed = view(page)
    assert zoomed[1] - zoomed[0] < (whole[1] - whole[0]) * 0.5
    assert page.locator(".tl-bar").count() < bars_before  # bars out of range leave the DOM
    assert "×" in page.locator(".tl-range").inner_text()
    # a plain wheel over the lanes scrolls the page, it does not zoom
    page.mouse.wheel(0, 100)
    page.wait_for_timeout(150)
    assert view(page) == zoomed

    # shift + wheel pans: the same width, later
    page.keyboard.down("Shift")
    page.mouse.wheel(0, 200)
    page.keyboard.up("Shift")
    panned = wait_view_change(page, zoomed)
    assert panned[0] > zoomed[0] and panned[1] - panned[0] == pytest.approx(zoomed[1] - zoomed[0])

    # drag on the lanes pans back
    page.mouse.move(track["x"] + 300, track["y"] + 10)
    page.mouse.down()
    page.mouse.move(track["x"] + 500, track["y"] + 10, steps=5)
    page.mouse.up()
    dragged = wait_view_change(page, panned)
    assert dragged[0] < panned[0]

    # a range brushed on the overview is the new view (from the whole run: the box covers it all)
    page.click("#tl-fit")
    dragged = wait_view_change(page, dragged)
    box = page.locator(".tl-overview").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 10, steps=6)
    page.mouse.up()
    brushed = wait_view_change(page, dragged)
    total = whole[1]
    assert brushed[0] == pytest.approx(0.2 * total, rel=0.05)
    assert brushed[1] == pytest.approx(0.4 * total, rel=0.05)

    # dragging the box pans it
    inside = page.locator(".tl-brush").bounding_box()
    page.mouse.move(inside["x"] + inside["width"] / 2, inside["y"] + 10)
    page.mouse.down()
    page.mouse.move(inside["x"] + inside["width"] / 2 + box["width"] * 0.1, inside["y"] + 10, steps=4)
    page.mouse.up()
    moved = wait_view_change(page, brushed)
    assert moved[0] == pytest.approx(0.3 * total, rel=0.05) and moved[1] - moved[0] == pytest.approx(
        brushed[1] - brushed[0])
    # fit shows the whole run again
    page.click("#tl-fit")
    assert wait_view_change(page, moved) == pytest.approx(whole)


def test_bars_keep_a_readable_width_and_their_labels_never_collide(page: Any, viewer: Viewer) -> None:
    open_page(page, viewer, f"/runs/{viewer.ids['ok']}")
    found = page.evaluate("""() => {
        const bars = [...document.querySelectorAll('.tl-bar')];
        const widths = bars.map((b) => b.getBoundingClientRect().width);
        const labelled = bars.filter((b) => b.querySelector('span')).map((b) => b.getBoundingClientRect());
        let overlaps = 0;
        for (let i = 0; i < labelled.length; i++) for (let j = i + 1; j < labelled.length; j++) {
          const a = labelled[i], c = labelled[j];
          if (a.left < c.right - 0.5 && c.left < a.right - 0.5 && a.top < c.bottom - 0.5 && c.top < a.bottom - 0.5) overlaps++;
        }
        // a label is the bar's name (cut with "…" by CSS where it does not fit) or its short form
        const short = /^([0-9]+ ?[✓✗]|b[0-9]+)$/;
        const cut = bars.filter((b) => { const t = b.querySelector('span')?.textContent;
          return t && !b.title.includes(t) && !short.test(t); });
        return { min: Math.min(...widths), overlaps, labelled: labelled.length, cut: cut.length,
                 titles: bars.every((b) => b.title.length > 0) };
    }""")
    assert found["min"] >= 4 and found["overlaps"] == 0 and found["labelled"] > 10, found
    assert found["titles"] and found["cut"] == 0, found  # every label is in its bar's full title
    # loop passes read as passes with their verdicts, not "p p p"
    passes = [p.inner_text() for p in page.locator(".tl-bar.k-loop_pass").all()]
    assert passes == ["pass 1 ✗", "pass 2 ✓"]
    # a node's own time and its children's: a darker band, and both in its title
    node = page.locator(".tl-bar.k-node", has_text="answer").first
    assert node.locator(".tl-kid").count() >= 1
    assert "own " in node.get_attribute("title") and "in child spans" in node.get_attribute("title")


def test_lane_names_are_whole_and_a_lane_or_a_loop_pass_is_focused_by_a_click(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, f"/runs/{viewer.ids['ok']}")
    label = page.locator(".tl-label", has_text="checks · branch 1 · pass 2")
    assert label.inner_text() == "checks · branch 1 · pass 2"  # not cut
    assert label.get_attribute("title").startswith("checks · branch 1 · pass 2")
    # the names' column widens by dragging its edge, and stays so
    page.evaluate("window.scrollBy(0, document.querySelector('.tl-toolbar').getBoundingClientRect().top - 10)")
    before = page.locator(".tl-label").first.bounding_box()["width"]
    grip = page.locator(".tl-resize").bounding_box()
    page.mouse.move(grip["x"] + 3, grip["y"] + 5)
    page.mouse.down()
    page.mouse.move(grip["x"] + 123, grip["y"] + 5, steps=4)
    page.mouse.up()
    page.wait_for_timeout(100)
    assert page.locator(".tl-label").first.bounding_box()["width"] == pytest.approx(before + 120, abs=3)

    whole = view(page)
    label.scroll_into_view_if_needed()
    label.click()
    focused = wait_view_change(page, whole)
    lane = page.locator(".tl-lane.focused")
    assert lane.locator(".tl-label").inner_text() == "checks · branch 1 · pass 2"
    assert focused[1] - focused[0] < (whole[1] - whole[0]) * 0.3
    # the focused lane's bars span most of the track
    box = lane.locator(".tl-track").bounding_box()
    bar = lane.locator(".tl-bar").first.bounding_box()
    assert bar["width"] > box["width"] * 0.5

    page.click("#tl-fit")
    wait_view_change(page, focused)
    # a loop pass chip in the graph focuses that pass in the timeline and opens it
    page.locator(".g-box[data-step='refine'] .g-pass", has_text="2").click()
    page.wait_for_selector("#panel h3:has-text('loop pass refine')")
    passed = view(page)
    assert page.locator(".tl-lane.focused .tl-label").inner_text() == "loop refine"
    assert passed[1] - passed[0] < (whole[1] - whole[0]) * 0.6
    page.locator(".timeline-card").screenshot(path=str(shots_dir(tmp_path) / "trace-timeline-zoom.png"))


def test_a_search_finds_a_run_by_its_question_and_a_caveat_run_shows_caveat(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, "/")
    assert page.locator("#db-path").inner_text() == str(viewer.db.resolve())
    caveat = page.locator(f"tr.run-row[data-run='{viewer.ids['caveat']}']")
    assert caveat.locator(".q-link").inner_text() == "How does a loop decide when to stop?"
    assert caveat.locator(".badge").inner_text() == "caveat"
    assert "knowledge" in caveat.inner_text() and caveat.locator(".tag.origin").inner_text() == "run"
    abstained = page.locator(f"tr.run-row[data-run='{viewer.ids['abstained']}']")
    assert abstained.locator(".badge").inner_text() == "abstained"
    assert abstained.locator(".tag.origin").inner_text() == "serve" and "variant=b" in abstained.inner_text()
    assert page.locator(f"tr.run-row[data-run='{viewer.ids['ok']}'] .tag.origin").inner_text() == "test"
    page.screenshot(path=str(shots_dir(tmp_path) / "trace-runs.png"))

    page.fill("#f-q", "decide when")
    page.press("#f-q", "Enter")
    page.wait_for_selector("body[data-ready='1']")
    rows = page.locator("tr.run-row")
    assert rows.count() == 1 and rows.first.get_attribute("data-run") == viewer.ids["caveat"]
    assert "q=decide+when" in page.url

    page.fill("#f-q", "")
    page.press("#f-q", "Enter")
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("#f-status", "caveat")
    page.wait_for_selector("body[data-ready='1']")
    assert [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()] == [viewer.ids["caveat"]]
    page.select_option("#f-status", "")
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("#f-tag", "origin=eval")
    page.wait_for_selector("body[data-ready='1']")
    assert [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()] == [viewer.ids["passed"]]


def test_another_trace_database_is_picked_in_the_page(page: Any, viewer: Viewer) -> None:
    open_page(page, viewer, "/")
    options = page.locator("#f-db option")
    assert [o.inner_text() for o in options.all()] == [str(viewer.db.resolve()), str(viewer.other_db.resolve())]
    page.select_option("#f-db", index=1)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.querySelector('#db-path')?.innerText.includes('project_b')")
    assert [q.inner_text() for q in page.locator(".q-link").all()] == ["A question asked in project B?"]
    page.select_option("#f-db", index=0)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.querySelectorAll('tr.run-row').length > 1")


def test_the_run_page_leads_with_the_answer_and_highlights_a_quote_across_line_breaks(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, f"/runs/{viewer.ids['caveat']}")
    summary = page.locator("#summary")
    assert summary.get_attribute("data-outcome") == "caveat"
    assert page.locator(".run-header .badge").first.inner_text() == "caveat"
    assert summary.locator(".sum-q").inner_text().endswith("How does a loop decide when to stop?")
    assert summary.locator(".sum-a").inner_text().startswith("Every loop is bounded")
    assert summary.locator(".sum-a code").first.inner_text() == "until"  # inline Markdown
    chip = summary.locator(".check-chip[data-check='faithfulness']")
    assert "fail" in chip.get_attribute("class") and "0.42" in chip.inner_text()
    assert "share of the answer's claims that the documents support" in chip.get_attribute("title")
    assert "passes at 0.8 or more" in chip.get_attribute("title")
    assert "checks 1/2 passed" in summary.inner_text()
    # the panel is not empty before a click: it opens on the node that answered
    page.wait_for_selector("#panel .card.k-model_call")
    assert page.locator("#panel").get_attribute("data-node") == "answer"  # not "check", called later

    # the passage as Markdown, the quote marked though it spans two hard-wrapped lines
    page.wait_for_selector("#citations .cite-row[data-highlighted]")
    row = page.locator("#citations .cite-row").first
    assert row.get_attribute("data-highlighted") == "yes"
    assert row.locator(".cite-text h5").inner_text() == "Loops are bounded"
    assert row.locator(".cite-text li").count() == 2 and row.locator(".cite-text code").count() >= 3
    marked = " ".join(m.inner_text() for m in row.locator("mark.quote").all())
    assert " ".join(marked.split()) == QUOTE_ACROSS_LINES.replace("`", "")
    score = row.locator(".score-help")
    assert "fused score 0.033" in score.inner_text()
    assert "reciprocal rank fusion" in score.get_attribute("title")
    page.locator("#citations").screenshot(path=str(shots_dir(tmp_path) / "trace-citations.png"))
    page.locator("#summary").screenshot(path=str(shots_dir(tmp_path) / "trace-summary.png"))


def test_the_final_state_is_a_tree_that_folds_and_is_searched(page: Any, viewer: Viewer) -> None:
    open_page(page, viewer, f"/runs/{viewer.ids['caveat']}")
    state = page.locator(".io-state")
    # folded: the chunks' long texts are not on the page until opened
    assert "whichever comes first" not in state.locator(".tree-body").inner_text().split("answer:")[0]
    chunks = state.locator("details.tree-node[data-key='chunks']")
    assert not chunks.evaluate("d => d.open")
    chunks.locator(":scope > summary").click()
    # the children are built on the toggle event, which the browser fires after the click returns
    page.wait_for_function("document.querySelectorAll(\".io-state details.tree-node[data-key='chunks'] > .tree-kids > details\").length > 0")
    assert chunks.locator(":scope > .tree-kids > details").count() == 2
    state.locator(".tree-search").fill("exhausted")
    page.wait_for_function("document.querySelector('.io-state .tree-count').innerText.includes('match')")
    assert state.locator(".tree-count").inner_text() == "1 match"
    assert state.locator("mark.tree-hit").inner_text() == "exhausted"
    assert state.locator("[data-key='answer_status']").count() == 0  # branches without a match hide
    state.locator(".tree-search").fill("zzz-nothing")
    page.wait_for_function("document.querySelector('.io-state .tree-count').innerText === 'no match'")


def test_feedback_given_on_a_run_page_survives_a_reload_and_shows_in_the_list(
        page: Any, viewer: Viewer) -> None:
    run = viewer.ids["abstained"]
    open_page(page, viewer, f"/runs/{run}")
    assert "No feedback yet." in page.locator("#feedback").inner_text()
    page.fill("#fb-comment", "right to abstain: the docs say nothing about it")
    page.click("#fb-up")
    page.wait_for_function("document.querySelector('.fb-status').innerText === 'saved'")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    item = page.locator("#feedback .fb-item").first
    assert "right to abstain: the docs say nothing about it" in item.inner_text()
    assert item.get_attribute("data-score") == "1" and "ui" in item.inner_text()
    assert page.locator(".fb-counts").inner_text() == "▲ 1 · ▼ 0"
    open_page(page, viewer, "/")
    assert page.locator(f"tr.run-row[data-run='{run}'] .fb-up").inner_text() == "▲ 1"


def test_compare_diffs_inputs_settings_and_state_inline_with_graphs_side_by_side(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, f"/compare?a={viewer.ids['caveat']}&b={viewer.ids['passed']}")
    question = page.locator(".diff-inputs tr[data-field='question']")
    assert "changed" in question.get_attribute("class")
    assert question.locator(".diff-del").first.inner_text().strip() and question.locator(".diff-ins").first.inner_text().strip()
    setting = page.locator(".config-diff tr[data-setting='answer.model']")
    assert setting.locator("td").all_inner_texts() == ['"small"', '"large"']
    models = page.locator("table.metrics tr[data-row='models']")
    assert "changed" in models.get_attribute("class")
    assert "large → offline/small ×1" in models.locator("td").nth(0).inner_text()
    assert "large → offline/large ×1" in models.locator("td").nth(1).inner_text()
    status = page.locator("table.state tr[data-field='answer_status']")
    assert status.locator(".diff-del").inner_text() == "caveat" and status.locator(".diff-ins").inner_text() == "passed"
    # unchanged fields fold away
    assert not page.locator("table.state tr[data-field='route']").is_visible()
    assert page.locator(".compare-graphs .graph").count() == 2
    page.screenshot(path=str(shots_dir(tmp_path) / "trace-compare.png"), full_page=True)


def test_evaluations_are_listed_filtered_by_failures_and_link_to_their_traces(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, "/evals")
    rows = page.locator("tr.eval-row")
    assert sorted(r.get_attribute("data-name") for r in rows.all()) == ["baseline", "warm-cache"]
    base = page.locator("tr.eval-row[data-name='baseline']")
    assert "token F1 0.65" in base.inner_text() and "11 / 12" not in base.inner_text()
    assert "12 / 12" in base.inner_text() and "1 errors" in base.inner_text()
    page.screenshot(path=str(shots_dir(tmp_path) / "trace-evals.png"))
    base.locator("a").first.click()
    page.wait_for_selector("body[data-ready='1'] table.eval-items")
    items = page.locator("tr.item-row")
    assert items.count() == 12
    first = items.first
    assert "How does feature 0 work?" in first.inner_text() and "feature 0 works" in first.inner_text()
    assert "token F1 1.00" in first.inner_text()
    page.select_option("#item-filter", "checks")
    assert [r.get_attribute("data-item") for r in page.locator("tr.item-row").all()] == ["q2", "q5", "q7", "q10"]
    page.select_option("#item-filter", "error")
    assert [r.get_attribute("data-item") for r in page.locator("tr.item-row").all()] == ["q3"]
    page.select_option("#item-filter", "low:token_f1")
    assert page.locator("tr.item-row").count() == 3  # 0.2, 0.1, 0.4 (the failed run has no score)
    page.select_option("#item-filter", "")
    page.screenshot(path=str(shots_dir(tmp_path) / "trace-eval-items.png"), full_page=True)
    page.locator("tr.item-row[data-item='q0'] a.trace-link").click()
    page.wait_for_selector("body[data-ready='1'] .run-header")
    assert page.url.endswith(f"/runs/{viewer.ids['passed']}")


def test_two_evaluations_compare_with_significance_and_a_warm_cache_warning(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    open_page(page, viewer, "/evals")
    page.check("tr.eval-row[data-name='baseline'] input")
    page.check("tr.eval-row[data-name='warm-cache'] input")
    page.click("#eval-compare")
    page.wait_for_selector("body[data-ready='1'] table.eval-rows")
    assert "warm embedding cache" in page.locator(".cache-warning").inner_text()
    latency = page.locator("tr[data-metric='latency_p50_s']")
    assert latency.get_attribute("data-verdict") == "cache"
    assert "better" not in latency.inner_text()
    f1 = page.locator("tr[data-metric='token_f1']")
    assert f1.get_attribute("data-verdict") == "within noise" and "n=11" in f1.inner_text()
    assert page.locator(".changed-items tr[data-item='q6']").count() == 1
    page.screenshot(path=str(shots_dir(tmp_path) / "trace-eval-compare.png"), full_page=True)


def test_the_static_report_and_compare_page_fit_a_1500_pixel_window(
        page: Any, viewer: Viewer, tmp_path: Path) -> None:
    folder = viewer.root / ".agentflow" / "eval" / "runs"
    base = load(folder / "baseline")
    records = sorted(latest_by_id(read_results(folder / "baseline")).values(), key=lambda r: r["index"])
    for record in records:  # long unbroken text is what overflowed the items table
        record["prediction"] = (record.get("prediction") or "") + " " + "x" * 300
        record["metrics"] = {**(record.get("metrics") or {}), "recall@5": 0.5, "recall@10": 0.5,
                             "ndcg@10": 0.4, "faithfulness": 0.9, "relevancy": 0.8}
    pages = {"report": report.render(base.summary, records),
             "compare": render(base, load(folder / "warm-cache"))}
    for name, html in pages.items():
        page.set_content(html)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1500, (name, width)
    assert "within noise" in page.content() and "Caches differ" in page.content()


def test_the_runs_list_pages_through_older_runs(page: Any, viewer: Viewer) -> None:
    open_page(page, viewer, "/?limit=3")
    first = [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()]
    assert len(first) == 3 and page.locator("#page-range").inner_text() == "runs 1–3"
    assert page.locator("#newer").is_disabled()
    page.click("#older")
    page.wait_for_selector("body[data-ready='1']")
    second = [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()]
    assert len(second) == 3 and not set(first) & set(second)
    assert page.locator("#page-range").inner_text() == "runs 4–6" and "offset=3" in page.url
    page.click("#older")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("tr.run-row").count() == 1 and page.locator("#older").is_disabled()
    page.select_option("#f-status", "ok")  # a new filter starts at the newest
    page.wait_for_selector("body[data-ready='1']")
    assert "offset" not in page.url
