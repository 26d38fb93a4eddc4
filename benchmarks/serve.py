"""Served workflows, measured: warm requests over HTTP beside the warm CLI, and 1,000 concurrent requests.

(a) The reference workflow (``graphs/agentic_rag.yaml``, offline profile) in a fresh project folder: the
    warm ``agentflow run`` (a new process per question, as the CLI runs) beside warm requests to
    ``agentflow serve`` (one process, services built once): p50 and p95 latency of ``POST
    /workflows/agentic_rag/runs`` from a client on the same machine. Goal: p50 <= 150 ms.
(b) 1,000 concurrent requests of a 6-node flow whose nodes await 200 ms (python nodes, tracing to SQLite
    on, as served by default), with 1 and 2 workers, beside 1,000 concurrent ``ainvoke`` of the same graph
    on raw LangGraph in one process (and ``Flow.arun`` in one process). Efficiency = ideal wall time
    (6 x 200 ms) / measured wall time. The load comes from a plain asyncio HTTP/1.1 client in this process,
    one connection per request. Goal: 2 workers >= 1.5x raw LangGraph's efficiency.

    python benchmarks/serve.py [--quick]

Last line: JSON with warm_p50_ms, warm_p95_ms, cli_warm_s, efficiency_1_worker, efficiency_2_workers,
raw_efficiency, efficiency_vs_raw_2_workers, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "graphs" / "agentic_rag.yaml"
QUESTIONS = [
    "What does the trace viewer show for a run?",
    "How does agentflow keep loops bounded?",
    "Can a map keep going when one of its items fails?",
    "How do I switch to the OpenAI profile?",
    "What is hybrid search and how is it fused?",
    "How do I resume a failed run?",
    "What does the offline profile use for answers?",
    "How are citations checked?",
]
NODES, NODE_S, CONCURRENT = 6, 0.2, 1000

SLEEPY_STEPS = "import asyncio\n\n\nasync def nap(inputs):\n    await asyncio.sleep(0.2)\n    return {'x': (inputs.get('x') or 0) + 1}\n"
SLEEPY = "version: 1\nname: sleepy\ninputs:\n  x: {type: integer, default: 0}\noutputs: [x]\nnodes:\n" + "".join(
    f"  s{i}: {{type: python, function: af_bench_steps:nap, reads: [x], writes: [x]}}\n" for i in range(NODES)
) + f"flow: [{', '.join(f's{i}' for i in range(NODES))}]\n"


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENTFLOW_EMBEDDING_CACHE", "AGENTFLOW_TRACES_DB")}
    env["AGENTFLOW_EMBEDDING_CACHE"] = str(project / ".agentflow" / "embeddings.db")
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_run(question: str, project: Path, sets: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", str(WORKFLOW), "-i", f"question={question}",
                           "-q", *sets], cwd=project, env=_env(project), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"agentflow run failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


class Server:
    """``agentflow serve`` as a child process group."""

    def __init__(self, project: Path, files: list[str], *options: str) -> None:
        self.port = _port()
        self.log = project / f"serve-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "agentflow.cli", "serve", *files, "--port", str(self.port),
                                      *options], cwd=project, env=_env(project), stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 600
        while not _healthy(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"agentflow serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


def _healthy(port: int) -> bool:
    try:
        status, _ = asyncio.run(post(port, "/health", None, method="GET"))
    except OSError:
        return False
    return status == 200


async def post(port: int, path: str, body: Any, *, method: str = "POST") -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection: ``(status, body)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        payload = b"" if body is None else json.dumps(body).encode()
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        data = await (reader.readexactly(length) if length is not None else reader.read())
        return status, data
    finally:
        writer.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# (a) ---------------------------------------------------------------------------------------------
def warm(project: Path, requests: int, cli_runs: int, sets: list[str]) -> dict[str, float]:
    cold = cli_run(QUESTIONS[0], project, sets)  # ingests the documents and loads every model once
    cli = [cli_run(QUESTIONS[1 + i % (len(QUESTIONS) - 1)], project, sets) for i in range(cli_runs)]
    server = Server(project, [str(WORKFLOW)], *sets)
    try:
        async def measure() -> list[float]:
            for question in QUESTIONS:  # warm-up: each question once, as the CLI's warm runs had theirs
                await post(server.port, "/workflows/agentic_rag/runs", {"inputs": {"question": question}})
            times = []
            for i in range(requests):
                started = time.perf_counter()
                status, data = await post(server.port, "/workflows/agentic_rag/runs",
                                          {"inputs": {"question": QUESTIONS[i % len(QUESTIONS)]}})
                times.append(time.perf_counter() - started)
                if status != 200:
                    raise SystemExit(f"request failed ({status}): {data[:500]!r}")
            return times

        times = asyncio.run(measure())
    finally:
        server.stop()
    slowest = max(range(len(times)), key=times.__getitem__)
    print(f"(a) slowest request: {times[slowest]:.2f} s, {QUESTIONS[slowest % len(QUESTIONS)]!r}", flush=True)
    out = {"cold_cli_s": cold, "cli_warm_s": statistics.median(cli), "warm_p50_ms": 1000 * _pct(times, 0.5),
           "warm_p95_ms": 1000 * _pct(times, 0.95)}
    print(f"(a) reference workflow, offline: agentflow run cold {cold:.2f} s, warm median {out['cli_warm_s']:.2f} s "
          f"({cli_runs} runs); served, {requests} warm requests: p50 {out['warm_p50_ms']:.0f} ms, "
          f"p95 {out['warm_p95_ms']:.0f} ms (goal p50 <= 150 ms)", flush=True)
    return out


# (b) ---------------------------------------------------------------------------------------------
class Chain(TypedDict, total=False):
    x: int


async def raw_langgraph(runs: int) -> float:
    from langgraph.graph import END, START, StateGraph

    async def nap(state: Chain) -> dict[str, int]:
        await asyncio.sleep(NODE_S)
        return {"x": state.get("x", 0) + 1}

    g = StateGraph(Chain)
    for i in range(NODES):
        g.add_node(f"s{i}", nap)
        g.add_edge(START if i == 0 else f"s{i - 1}", f"s{i}")
    g.add_edge(f"s{NODES - 1}", END)
    graph = g.compile()
    started = time.perf_counter()
    results = await asyncio.gather(*(graph.ainvoke({"x": 0}) for _ in range(runs)))
    assert all(r["x"] == NODES for r in results)
    return time.perf_counter() - started


async def in_process(project: Path, runs: int) -> float:
    """The same YAML flow with ``Flow.arun`` in this process, traced to SQLite as served runs are."""
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.load import load_workflow
    from agentflow.tracing.defaults import default_hooks, flush_default_hooks

    os.chdir(project)
    sys.path.insert(0, str(project))
    allow_modules(["af_bench_steps"])
    flow = load_workflow(project / "sleepy.yaml").flow
    hooks = default_hooks(project)
    started = time.perf_counter()
    results = await asyncio.gather(*(flow.arun({"x": 0}, hooks=hooks) for _ in range(runs)))
    elapsed = time.perf_counter() - started
    assert all(r["x"] == NODES for r in results)
    flush_default_hooks()
    return elapsed


def concurrent(project: Path, workers: int, runs: int) -> dict[str, float]:
    server = Server(project, ["sleepy.yaml"], "--workers", str(workers))
    try:
        async def measure() -> tuple[float, list[float], int]:
            await asyncio.gather(*(post(server.port, "/workflows/sleepy/runs", {"inputs": {}}) for _ in range(20)))
            latencies: list[float] = []
            errors = 0

            async def one() -> None:
                nonlocal errors
                started = time.perf_counter()
                try:
                    status, data = await post(server.port, "/workflows/sleepy/runs", {"inputs": {"x": 0}})
                    ok = status == 200 and json.loads(data)["outputs"]["x"] == NODES
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(runs)))
            return time.perf_counter() - started, latencies, errors

        wall, latencies, errors = asyncio.run(measure())
    finally:
        server.stop()
    ideal = NODES * NODE_S
    out = {"wall_s": wall, "efficiency": ideal / wall, "throughput_rps": runs / wall,
           "p50_s": _pct(latencies, 0.5), "p99_s": _pct(latencies, 0.99), "errors": errors}
    print(f"(b) {runs} concurrent requests, {workers} worker(s): {wall:.2f} s (ideal {ideal:.2f} s), efficiency "
          f"{out['efficiency']:.3f}, {out['throughput_rps']:.0f} req/s, p50 {out['p50_s']:.2f} s, p99 "
          f"{out['p99_s']:.2f} s, errors {errors}", flush=True)
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 warm requests, 2 warm CLI runs, the documents of docs/how-to only (under 3 minutes)")
    parser.add_argument("--part", choices=("a", "b", "all"), default="all",
                        help="only (a) warm requests or (b) concurrency; the other's keys are null")
    args = parser.parse_args()
    requests, cli_runs = (20, 2) if args.quick else (100, 5)
    sets = ["--set", f"collections.knowledge.source={ROOT / 'docs' / 'how-to'}"] if args.quick else []
    none: dict[str, Any] = {"warm_p50_ms": None, "warm_p95_ms": None, "cli_warm_s": None, "efficiency": None,
                            "errors": 0}
    with tempfile.TemporaryDirectory(prefix="agentflow-serve-bench-") as tmp:
        project = Path(tmp) / "reference"
        project.mkdir()
        a = warm(project, requests, cli_runs, sets) if args.part in ("a", "all") else none
        if args.part == "a":
            print(json.dumps({k: _round(a.get(k)) for k in ("warm_p50_ms", "warm_p95_ms", "cli_warm_s")}
                             | {"efficiency_1_worker": None, "efficiency_2_workers": None, "raw_efficiency": None,
                                "efficiency_vs_raw_2_workers": None, "errors": 0}))
            return
        sleepy = Path(tmp) / "sleepy"
        sleepy.mkdir()
        (sleepy / "af_bench_steps.py").write_text(SLEEPY_STEPS)
        (sleepy / "sleepy.yaml").write_text(SLEEPY)
        (sleepy / "agentflow.yaml").write_text("python: {allow: [af_bench_steps]}\n")
        raw = asyncio.run(raw_langgraph(CONCURRENT))
        ideal = NODES * NODE_S
        print(f"(b) raw LangGraph, {CONCURRENT} concurrent ainvoke in one process: {raw:.2f} s, efficiency "
              f"{ideal / raw:.3f}", flush=True)
        one = concurrent(sleepy, 1, CONCURRENT)
        two = concurrent(sleepy, 2, CONCURRENT)
        local = asyncio.run(in_process(sleepy, CONCURRENT))
        print(f"(b) agentflow Flow.arun in one process (traced): {local:.2f} s, efficiency {ideal / local:.3f}",
              flush=True)
    raw_eff = ideal / raw
    result = {
        "warm_p50_ms": _round(a["warm_p50_ms"]), "warm_p95_ms": _round(a["warm_p95_ms"]),
        "cli_warm_s": _round(a["cli_warm_s"], 2),
        "efficiency_1_worker": round(one["efficiency"], 3), "efficiency_2_workers": round(two["efficiency"], 3),
        "raw_efficiency": round(raw_eff, 3),
        "efficiency_vs_raw_2_workers": round(two["efficiency"] / raw_eff, 2),
        "errors": int(one["errors"] + two["errors"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
