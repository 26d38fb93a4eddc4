"""Engine overhead: the same graphs built with agentflow and with raw LangGraph, side by side.

    python benchmarks/engine.py [--quick]

Graphs: a 50-node chain, a fan-out of 100 items through map, a loop of 20 passes, and 1,000
concurrent runs of a 6-node flow whose nodes await 200 ms. agentflow runs with a tracing hook active
(every event is recorded). Ratios are agentflow's time per node over raw LangGraph's (budget <= 1.3);
``concurrency_efficiency`` is the ideal wall time over the measured one (goal >= 0.5 on 2 cores).
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import platform
import statistics
from collections import deque
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

import agentflow as af
from agentflow.tracing.events import Event


class ChainState(TypedDict, total=False):
    x: int


class FanState(TypedDict, total=False):
    items: list[int]
    item: int
    out: Annotated[list[int], operator.add]


class CountingHook:
    """A tracing hook that buffers every event, as a trace store's write buffer would.

    The buffer is bounded (a store flushes it in batches), so the benchmark does not measure a
    memory leak.
    """

    def __init__(self) -> None:
        self.events: deque[Event] = deque(maxlen=4096)
        self.count = 0

    def on_event(self, *, event: Event, **kwargs: Any) -> None:
        self.events.append(event)
        self.count += 1


# agentflow node types --------------------------------------------------------------------------
@af.node("bench_inc", reads=("x",), writes=("x",))
async def inc(state: ChainState, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    return {"x": state.get("x", 0) + 1}


@af.node("bench_square", reads=("item",), writes=("out",))
async def square(state: FanState, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    return {"out": [state["item"] ** 2]}


class SleepConfig(af.NodeConfig):
    seconds: float = 0.2


@af.node("bench_sleep", reads=("x",), writes=("x",))
async def sleep(state: ChainState, cfg: SleepConfig, ctx: af.RunContext) -> dict[str, Any]:
    await asyncio.sleep(cfg.seconds)
    return {"x": state.get("x", 0) + 1}


# raw LangGraph ---------------------------------------------------------------------------------
async def raw_inc(state: ChainState) -> dict[str, Any]:
    return {"x": state.get("x", 0) + 1}


async def raw_square(state: FanState) -> dict[str, Any]:
    return {"out": [state["item"] ** 2]}


async def raw_sleep(state: ChainState) -> dict[str, Any]:
    await asyncio.sleep(0.2)
    return {"x": state.get("x", 0) + 1}


async def passthrough(state: Any) -> dict[str, Any]:
    return {}


def raw_chain(n: int, fn: Callable[[ChainState], Awaitable[dict[str, Any]]] = raw_inc) -> Any:
    g = StateGraph(ChainState)
    for i in range(n):
        g.add_node(f"n{i}", fn)
        g.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    g.add_edge(f"n{n - 1}", END)
    return g.compile()


def raw_fanout() -> Any:
    g = StateGraph(FanState)
    g.add_node("dispatch", passthrough)
    g.add_node("square", raw_square)
    g.add_node("join", passthrough)
    g.add_edge(START, "dispatch")
    g.add_conditional_edges(
        "dispatch", lambda s: [Send("square", {"item": i}) for i in s["items"]], ["square"]
    )
    g.add_edge("square", "join")
    g.add_edge("join", END)
    return g.compile()


def raw_loop(passes: int) -> Any:
    g = StateGraph(ChainState)
    g.add_node("body", raw_inc)
    g.add_node("check", passthrough)
    g.add_edge(START, "body")
    g.add_edge("body", "check")
    g.add_conditional_edges("check", lambda s: "body" if s["x"] < passes else END, ["body", END])
    return g.compile()


# agentflow -------------------------------------------------------------------------------------
def af_chain(n: int) -> af.Flow:
    return af.Flow("chain", state=ChainState, inputs=("x",),
                   steps=[inc(f"n{i}") for i in range(n)])


def af_fanout() -> af.Flow:
    return af.Flow("fanout", state=FanState, inputs=("items",),
                   steps=af.map(over="items", item="item", node=square("square")))


def af_loop(passes: int) -> af.Flow:
    return af.Flow("loop", state=ChainState, inputs=("x",),
                   steps=af.loop(inc("body"), until=lambda s: s["x"] >= passes,
                                 max_iterations=passes))


# timing ----------------------------------------------------------------------------------------
async def best_of(repeats: int, fn: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def compare(name: str, nodes: int, raw: Any, flow: af.Flow, inputs: dict[str, Any],
                  repeats: int) -> dict[str, float]:
    hook = CountingHook()
    services = af.Services(hooks=(hook,))
    await raw.ainvoke(inputs, {"recursion_limit": 10_000})  # warm up both
    await flow.arun(inputs, services=services)
    t_raw = t_af = 0.0
    for _ in range(3):  # interleave, so drifts in machine speed hit both sides alike
        t_raw += await best_of(repeats, lambda: raw.ainvoke(inputs, {"recursion_limit": 10_000}))
        t_af += await best_of(repeats, lambda: flow.arun(inputs, services=services))
    t_raw, t_af = t_raw / 3, t_af / 3
    row = {"raw_ms": t_raw * 1e3, "agentflow_ms": t_af * 1e3,
           "raw_us_per_node": t_raw / nodes * 1e6, "agentflow_us_per_node": t_af / nodes * 1e6,
           "ratio": t_af / t_raw}
    print(f"{name:<10} raw {row['raw_ms']:8.2f} ms ({row['raw_us_per_node']:7.1f} us/node)   "
          f"agentflow {row['agentflow_ms']:8.2f} ms ({row['agentflow_us_per_node']:7.1f} us/node)"
          f"   ratio {row['ratio']:.2f}", flush=True)
    return row


async def concurrency(runs: int, nodes: int) -> dict[str, float]:
    flow = af.Flow("sleepy", state=ChainState, inputs=("x",),
                   steps=[sleep(f"s{i}") for i in range(nodes)])
    raw = raw_chain(nodes, raw_sleep)
    services = af.Services(hooks=(CountingHook(),))
    ideal = nodes * 0.2
    t0 = time.perf_counter()
    await asyncio.gather(*(raw.ainvoke({"x": 0}) for _ in range(runs)))
    t_raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = await asyncio.gather(*(flow.arun({"x": 0}, services=services) for _ in range(runs)))
    t_af = time.perf_counter() - t0
    assert all(r["x"] == nodes for r in results)
    print(f"concurrency: {runs} runs x {nodes} nodes x 200 ms: ideal {ideal:.2f} s, raw LangGraph "
          f"{t_raw:.2f} s, agentflow {t_af:.2f} s", flush=True)
    return {"ideal_s": ideal, "raw_s": t_raw, "agentflow_s": t_af,
            "concurrency_efficiency": ideal / t_af, "raw_concurrency_efficiency": ideal / t_raw}


async def main(quick: bool) -> dict[str, Any]:
    repeats = 5 if quick else 15
    print(f"agentflow engine benchmark ({'quick' if quick else 'full'}) on {platform.machine()}, "
          f"Python {platform.python_version()}", flush=True)
    chain = await compare("chain50", 50, raw_chain(50), af_chain(50), {"x": 0}, repeats)
    items = list(range(100))
    fan = await compare("fanout100", 100, raw_fanout(), af_fanout(), {"items": items}, repeats)
    loop = await compare("loop20", 20, raw_loop(20), af_loop(20), {"x": 0}, repeats)
    conc = await concurrency(1000, 6)
    return {
        "overhead_ratio_chain": round(chain["ratio"], 3),
        "overhead_ratio_fanout": round(fan["ratio"], 3),
        "overhead_ratio_loop": round(loop["ratio"], 3),
        "concurrency_efficiency": round(conc["concurrency_efficiency"], 3),
        "raw_concurrency_efficiency": round(conc["raw_concurrency_efficiency"], 3),
        "chain_us_per_node": round(chain["agentflow_us_per_node"], 1),
        "raw_chain_us_per_node": round(chain["raw_us_per_node"], 1),
        "fanout_us_per_node": round(fan["agentflow_us_per_node"], 1),
        "raw_fanout_us_per_node": round(fan["raw_us_per_node"], 1),
        "concurrent_runs_s": round(conc["agentflow_s"], 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 60 s)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    out = asyncio.run(main(args.quick))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    sys.exit(0)
