"""Tracing cost and trace-viewer speed, measured side by side.

    python benchmarks/tracing.py [--quick]

1. ``tracing_overhead_ratio``: time per node of the same flows run with the SQLite trace store
   attached over the same flows run with no hook at all (budget <= 1.3), rounds interleaved. The
   traced side includes waiting for the store to write everything (``flush``), so the writer
   thread's work is counted. Workloads: a 50-node chain, and a map over 100 items whose node
   records a model call with its prompt (what a RAG node records). Both wall-clock and CPU time
   (this process, all threads) are measured. The headline is the CPU-time ratio of the worse
   workload, taken as the median over rounds of each traced round's CPU time over that of the
   untraced round run next to it: on a shared machine the wall clock mostly measures the
   neighbours (and the store's thread shares the GIL with the run, so on an idle machine wall
   time follows CPU time), and the machine's speed drifts for seconds at a time, which a pair of
   neighbouring rounds sees alike. Also printed: the ratio of each side's fastest round (other
   processes only ever add time, but the two fastest rounds may come from different phases)
   and the ratio of the medians.
2. ``render_5000_spans_ms``: a real run of 5,001 spans (a map over 1,000 items, each a node with a
   model call, a retrieval and a check) stored, then its run page loaded in headless Chromium, from
   navigation start to drawn (goal <= 1,000 ms): the first visit (empty cache) and the median of
   the visits after it.

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import operator
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import agentflow as af
from agentflow.tracing import SQLiteTraceStore

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]


class Chain(TypedDict, total=False):
    x: int


class Fan(TypedDict, total=False):
    items: list[int]
    item: int
    out: Annotated[list[str], operator.add]


@af.node("tb_inc", reads=("x",), writes=("x",))
async def inc(state: Chain, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    return {"x": state.get("x", 0) + 1}


@af.node("tb_answer", reads=("item",), writes=("out",))
async def answer(state: Fan, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """What a generate node records: one model call with its prompt, parameters and usage."""
    item = state["item"]
    t0 = time.time()
    text = f"answer {item} [DOC 1]"
    ctx.tracer.record("model_call", "large", started=t0, data={
        "alias": "large", "model": "offline/extractive",
        "messages": [{"role": "system", "content": "Answer from the documents; cite [DOC n]."},
                     {"role": "user", "content": f"[DOC 1] passage {item} " * 20 + "Question?"}],
        "sampling": {"temperature": 0.2, "top_p": 1.0, "seed": 1}, "response": text,
        "tokens": {"prompt": 120, "completion": 12, "total": 132, "estimated": False},
        "cost": 0.0004,
        "latency": 0.0, "retries": 0, "cache_hit": False})
    return {"out": [text]}


@af.node("tb_work", reads=("item",), writes=("out",))
async def work(state: Fan, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """A node with a model call, a retrieval and a check: 4 spans, 5 with its map item."""
    item = state["item"]
    t0 = time.time()
    ctx.tracer.record("model_call", "large", started=t0, data={
        "alias": "large", "model": "m", "messages": [{"role": "user", "content": f"q{item}"}],
        "response": f"a{item}",
        "tokens": {"prompt": 10, "completion": 5, "total": 15, "estimated": False},
        "cost": 0.0001})
    ctx.tracer.record("retrieval", "docs", started=t0, data={
        "queries": [f"q{item}"], "hits": [{"id": f"d{item}", "text": "passage", "score": 0.5}]})
    ctx.tracer.record("check", "faithfulness", started=t0,
                      data={"score": 0.9, "verdict": "pass", "reason": "supported"})
    return {"out": [f"a{item}"]}


def chain_flow(n: int) -> af.Flow:
    return af.Flow("chain", state=Chain, inputs=("x",), steps=[inc(f"n{i}") for i in range(n)])


def fan_flow() -> af.Flow:
    return af.Flow("fan", state=Fan, inputs=("items",),
                   steps=af.map(over="items", item="item", node=answer("answer"), max_concurrency=8))


# 1. overhead ------------------------------------------------------------------------------------
async def timed_round(flow: af.Flow, inputs: dict[str, Any], runs: int,
                      store: SQLiteTraceStore | None) -> tuple[float, float]:
    """Wall time and CPU time (all threads of this process, the store's writer included)."""
    hooks = [store] if store is not None else []
    gc.collect()  # start each round with the same heap, so collections land alike on both sides
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(runs):
        await flow.arun(inputs, hooks=hooks)
    if store is not None:
        store.flush()
    return time.perf_counter() - w0, time.process_time() - c0


async def overhead(name: str, flow: af.Flow, inputs: dict[str, Any], nodes: int, runs: int,
                   rounds: int, db: Path) -> dict[str, float]:
    store = SQLiteTraceStore(db)
    await timed_round(flow, inputs, 2, None)  # warm up both sides
    await timed_round(flow, inputs, 2, store)
    plain, traced = [], []
    for i in range(rounds):  # interleaved, alternating who goes first: drifts hit both alike
        pair = [(plain, None), (traced, store)]
        for bucket, hook in pair if i % 2 == 0 else pair[::-1]:
            bucket.append(await timed_round(flow, inputs, runs, hook))
    store.close()
    per = runs * nodes
    # the fastest round of each side: interference from other processes only ever adds time
    wall_plain, wall_traced = min(w for w, _ in plain) / per, min(w for w, _ in traced) / per
    cpu_plain, cpu_traced = min(c for _, c in plain) / per, min(c for _, c in traced) / per
    median_cpu = statistics.median(c for _, c in traced) / statistics.median(c for _, c in plain)
    # each traced round over the untraced round run just before or after it: the two saw the same
    # machine, so a neighbour that slows this one for a while cancels out (the fastest rounds of
    # the two sides may come from different phases of a shared machine)
    paired = statistics.median(t / p for (_, p), (_, t) in zip(plain, traced, strict=True))
    print(f"{name:<10} untraced {wall_plain * 1e6:7.1f} us/node ({cpu_plain * 1e6:6.1f} CPU)   "
          f"traced to SQLite {wall_traced * 1e6:7.1f} us/node ({cpu_traced * 1e6:6.1f} CPU)   "
          f"ratio {wall_traced / wall_plain:.3f} wall, {cpu_traced / cpu_plain:.3f} CPU "
          f"(medians: {median_cpu:.3f} CPU; paired rounds: {paired:.3f} CPU)", flush=True)
    return {"untraced_us_per_node": wall_plain * 1e6, "traced_us_per_node": wall_traced * 1e6,
            "untraced_cpu_us_per_node": cpu_plain * 1e6, "traced_cpu_us_per_node": cpu_traced * 1e6,
            "ratio": wall_traced / wall_plain, "cpu_ratio": cpu_traced / cpu_plain,
            "median_cpu_ratio": median_cpu, "paired_cpu_ratio": paired}


# 2. render --------------------------------------------------------------------------------------
def record_big_run(db: Path, items: int) -> tuple[str, int]:
    flow = af.Flow("big", state=Fan, inputs=("items",),
                   steps=af.map(over="items", item="item", node=work("work"), max_concurrency=16))
    store = SQLiteTraceStore(db)
    result = asyncio.run(flow.arun({"items": list(range(items))}, hooks=[store]))
    store.close()
    from agentflow.tracing import TraceReader

    with TraceReader(db) as reader:
        return result.run_id, reader.summary(result.run_id).spans


def render_times(db: Path, run_id: str, loads: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from agentflow.ui.server import ServerThread

    times: list[float] = []
    with ServerThread(db) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        warmup = browser.new_page()  # a browser that has drawn a page before, as a user's has
        warmup.goto(f"{server.url}/")
        warmup.wait_for_selector("body[data-ready='1']", timeout=30_000)
        warmup.close()
        # a context of its own: an empty cache, so the first load fetches every file
        page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        for _ in range(loads + 1):
            page.goto(f"{server.url}/runs/{run_id}")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            times.append(page.evaluate("window.__afRender.sinceNavigation"))
        lanes = int(page.locator(".timeline").get_attribute("data-lanes") or 0)
        browser.close()
    cold, warm = times[0], times[1:]
    print(f"run page of the {run_id[:8]} run: first visit {cold:.0f} ms, again: median "
          f"{statistics.median(warm):.0f} ms (max {max(warm):.0f} ms), {lanes} timeline lanes",
          flush=True)
    return {"cold_ms": cold, "warm_median_ms": statistics.median(warm), "warm_max_ms": max(warm),
            "lanes": lanes}


def main(quick: bool) -> dict[str, Any]:
    runs, rounds = (4, 21) if quick else (6, 41)
    print(f"agentflow tracing benchmark ({'quick' if quick else 'full'}) on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "traces.db"
        chain = asyncio.run(overhead("chain50", chain_flow(50), {"x": 0}, 50, runs, rounds, db))
        fan = asyncio.run(overhead("fan100", fan_flow(), {"items": list(range(100))}, 100,
                                   max(2, runs // 2), rounds, db))
        big_db = Path(tmp) / "big.db"
        t0 = time.perf_counter()
        run_id, spans = record_big_run(big_db, 1_000)
        print(f"recorded a run of {spans} spans in {time.perf_counter() - t0:.2f} s", flush=True)
        render: dict[str, float] = {}
        result: list[dict[str, float]] = []
        # Playwright's sync API runs its own event loop: keep it off any loop of ours
        worker = threading.Thread(target=lambda: result.append(render_times(big_db, run_id,
                                                                            3 if quick else 7)))
        worker.start()
        worker.join()
        render = result[0]
    return {
        "tracing_overhead_ratio": round(max(chain["paired_cpu_ratio"],
                                            fan["paired_cpu_ratio"]), 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "tracing_cpu_ratio_chain": round(chain["cpu_ratio"], 3),
        "tracing_cpu_ratio_fan_model_calls": round(fan["cpu_ratio"], 3),
        "tracing_wall_ratio_chain": round(chain["ratio"], 3),
        "tracing_wall_ratio_fan_model_calls": round(fan["ratio"], 3),
        "tracing_median_cpu_ratio_chain": round(chain["median_cpu_ratio"], 3),
        "tracing_median_cpu_ratio_fan_model_calls": round(fan["median_cpu_ratio"], 3),
        "tracing_paired_cpu_ratio_chain": round(chain["paired_cpu_ratio"], 3),
        "tracing_paired_cpu_ratio_fan_model_calls": round(fan["paired_cpu_ratio"], 3),
        "chain_untraced_us_per_node": round(chain["untraced_us_per_node"], 1),
        "chain_traced_us_per_node": round(chain["traced_us_per_node"], 1),
        "chain_untraced_cpu_us_per_node": round(chain["untraced_cpu_us_per_node"], 1),
        "chain_traced_cpu_us_per_node": round(chain["traced_cpu_us_per_node"], 1),
        "fan_untraced_us_per_node": round(fan["untraced_us_per_node"], 1),
        "fan_traced_us_per_node": round(fan["traced_us_per_node"], 1),
        "fan_untraced_cpu_us_per_node": round(fan["untraced_cpu_us_per_node"], 1),
        "fan_traced_cpu_us_per_node": round(fan["traced_cpu_us_per_node"], 1),
        "render_spans": spans,
        "render_5000_spans_ms": round(render["warm_median_ms"]),
        "render_5000_spans_cold_ms": round(render["cold_ms"]),
        "render_5000_spans_max_ms": round(render["warm_max_ms"]),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 60 s)")
    args = parser.parse_args()
    start = time.perf_counter()
    out = main(args.quick)
    out["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))
    sys.exit(0)
