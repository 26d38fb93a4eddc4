"""A trace store with the demo runs and one 5,000-span run, served by the real viewer on 127.0.0.1."""

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
from tracing.demo import record_demo_runs, synthetic_events

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
BIG_RUN = "b" * 32
BIG_ITEMS = 1_000  # 1 map + 1,000 x (item, node, model call, retrieval, check) = 5,001 spans


@dataclass
class Viewer:
    url: str
    db: Path
    ids: dict[str, str]


@pytest.fixture(scope="session")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    db = tmp_path_factory.mktemp("ui") / "traces.db"
    store = SQLiteTraceStore(db)
    ids: dict[str, str] = {}
    # on a thread of its own: Playwright's sync API may already run an event loop on this one
    worker = threading.Thread(target=lambda: ids.update(asyncio.run(record_demo_runs(store))))
    worker.start()
    worker.join()
    assert set(ids) == {"ok", "chat", "failed"}
    for event in synthetic_events(BIG_ITEMS, run_id=BIG_RUN):
        store.on_event(event=event)
    store.close()
    ids["big"] = BIG_RUN
    with ServerThread(db) as server:
        assert server.host == "127.0.0.1"
        yield Viewer(server.url, db, ids)


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
