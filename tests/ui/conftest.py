"""A trace store with the demo runs, runs of the reference workflow's shape (a caveat, an
abstention, a pass; tagged by origin), one 5,000-span run, a second trace database in a
sub-folder and two evaluation folders, served by the real viewer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentflow.tracing import SQLiteTraceStore
from agentflow.ui.server import ServerThread
from agentflow.ui.stores import path_id
from tracing.demo import record_demo_runs, synthetic_events

from .fixtures import reference_run, write_eval

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
BIG_RUN = "b" * 32
BIG_ITEMS = 1_000  # 1 map + 1,000 x (item, node, model call, retrieval, check) = 5,001 spans


CAVEAT_RUN, ABSTAINED_RUN, PASSED_RUN, OTHER_RUN = "c" * 32, "a" * 32, "d" * 32, "e" * 32
QUESTIONS = {"caveat": "How does a loop decide when to stop?",
             "abstained": "Which model does a loop pick?",
             "passed": "Are loops bounded in agentflow?"}


@dataclass
class Viewer:
    url: str
    db: Path
    ids: dict[str, str]
    root: Path
    other_db: Path
    evals: dict[str, str]


@pytest.fixture(scope="session")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    root = tmp_path_factory.mktemp("ui")
    db = root / ".agentflow" / "traces.db"
    db.parent.mkdir()
    store = SQLiteTraceStore(db)
    ids: dict[str, str] = {}
    # on a thread of its own: Playwright's sync API may already run an event loop on this one
    worker = threading.Thread(target=lambda: ids.update(asyncio.run(record_demo_runs(store))))
    worker.start()
    worker.join()
    assert set(ids) == {"ok", "chat", "failed"}
    for event in synthetic_events(BIG_ITEMS, run_id=BIG_RUN):
        store.on_event(event=event)
    t0 = 1_765_100_000.0
    for key, run_id, origin, model in (("passed", PASSED_RUN, "eval", "large"),
                                       ("abstained", ABSTAINED_RUN, "serve", "small"),
                                       ("caveat", CAVEAT_RUN, "run", "small")):
        tags = {"origin": origin, **({"variant": "b"} if origin == "serve" else {})}
        for event in reference_run(run_id, question=QUESTIONS[key], answer_status=key, t0=t0,
                                   tags=tags, model=model):
            store.on_event(event=event)
        ids[key] = run_id
        t0 += 10
    store.close()
    ids["big"] = BIG_RUN
    # a second project in a sub-folder, with its own traces
    other_db = root / "project_b" / ".agentflow" / "traces.db"
    other_db.parent.mkdir(parents=True)
    other = SQLiteTraceStore(other_db)
    for event in reference_run(OTHER_RUN, question="A question asked in project B?",
                               answer_status="passed", t0=t0, tags={"origin": "run"}):
        other.on_event(event=event)
    other.close()
    # two evaluations of the same 12 items: the second with a warm embedding cache
    runs = root / ".agentflow" / "eval" / "runs"
    scores = [1.0, 0.8, 0.2, 0.0, 1.0, 0.5, 0.9, 0.1, 0.7, 1.0, 0.4, 0.6]
    write_eval(runs / "baseline", run_ids=[PASSED_RUN, CAVEAT_RUN, ABSTAINED_RUN], latency=2.0,
               embedded=340, f1=scores)
    write_eval(runs / "warm-cache", run_ids=[PASSED_RUN], latency=0.4, embedded=0,
               f1=[min(1.0, v + (0.1 if i % 3 == 0 else -0.05 if i % 3 == 1 else 0.0))
                   for i, v in enumerate(scores)], name_suffix="-v2")
    evals = {"baseline": path_id(runs / "baseline"), "warm": path_id(runs / "warm-cache")}
    with ServerThread(db, discover=root) as server:
        assert server.host == "127.0.0.1"
        yield Viewer(server.url, db, ids, root, other_db, evals)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, viewer: Viewer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    # offline: any request that leaves the viewer fails the test (a listener, not a route: routes
    # turn the browser's cache off, and the cache is part of what is measured)
    outside: list[str] = []
    context.on("request", lambda r: None if r.url.startswith((viewer.url, "data:"))
               else outside.append(r.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert outside == [], f"the viewer reached outside 127.0.0.1: {outside}"
    assert errors == [], f"errors in the page: {errors}"
