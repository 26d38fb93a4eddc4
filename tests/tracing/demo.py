"""A traced agentic-RAG-shaped flow for the tracing and UI tests (and the docs screenshots).

Its nodes record what the real model, retrieval and check nodes record (``model_call``,
``retrieval`` and ``check`` spans through ``ctx.tracer.record``) with scripted values, so the tests
can assert exactly what the store and the viewer show. Shapes: a route, a map with a concurrency
limit, a loop whose first pass fails its checks, and parallel checks inside the loop.
"""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, Any

from pydantic import BaseModel

import agentflow as af
from agentflow.graph.registry import NodeRegistry

REG = NodeRegistry()

PASSAGES = {
    "loops.md": "A loop repeats its body until a check passes. Every loop is bounded by "
                "max_iterations, so a workflow always ends.",
    "maps.md": "A map runs one node per item of a list. At most max_concurrency items run at "
               "once, and the limit is shown in the trace.",
    "routes.md": "A route runs one case, chosen by a label from a classify node.",
}
API_KEY = "sk-demo-0123456789abcdefghijklmnop"


class Rag(BaseModel):
    question: str
    route: str = ""
    queries: list[str] = []
    query: str = ""
    hits: Annotated[list[dict[str, Any]], operator.add] = []
    documents: list[dict[str, Any]] = []
    answer: str = ""
    citations: list[dict[str, Any]] = []
    attempt: int = 0
    verdicts: Annotated[list[str], operator.add] = []
    passed: bool = False


async def _call(ctx: af.RunContext, alias: str, model: str, messages: list[dict[str, str]],
                response: str, *, prompt: int, completion: int, cost: float, **extra: Any) -> None:
    t0 = time.time()
    await asyncio.sleep(0.004)
    ctx.tracer.record("model_call", alias, started=t0, data={
        "alias": alias, "model": model, "messages": messages,
        "sampling": {"temperature": 0.0 if alias == "small" else 0.3, "top_p": 1.0, "seed": 7,
                     "max_tokens": 256},
        "response": response,
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "cost": cost, "latency": 0.004, "retries": extra.pop("retries", 0),
        "cache_hit": extra.pop("cache_hit", False),
        "headers": {"Authorization": f"Bearer {API_KEY}"}, "api_key": API_KEY, **extra})


@af.node("demo_classify", reads=("question",), writes=("route",), registry=REG)
async def classify(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    label = "knowledge" if state.question.endswith("?") else "chit_chat"
    await _call(ctx, "small", "offline/classifier",
          [{"role": "system", "content": "Classify: knowledge, chit_chat or out_of_scope."},
           {"role": "user", "content": state.question}], label,
          prompt=24, completion=1, cost=0.00001)
    return {"route": label}


@af.node("demo_queries", reads=("question",), writes=("queries",), registry=REG)
async def multi_query(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    queries = [f"{state.question} definition", "loop max_iterations", "map max_concurrency"]
    await _call(ctx, "small", "offline/query-writer",
          [{"role": "user", "content": f"Write 3 search queries for: {state.question}"}],
          "\n".join(queries), prompt=30, completion=18, cost=0.00002, cache_hit=True)
    return {"queries": queries}


@af.node("demo_search", reads=("query",), writes=("hits",), registry=REG)
async def search(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    t0 = time.time()
    await asyncio.sleep(0.01)
    words = set(state.query.lower().split())
    hits = [{"id": f"{src}#0", "source": src, "text": text,
             "score": round(len(words & set(text.lower().split())) / 10 + 0.1, 3)}
            for src, text in PASSAGES.items()]
    hits.sort(key=lambda h: -h["score"])
    ctx.tracer.record("retrieval", "docs", started=t0, data={
        "collection": "docs", "queries": [state.query], "hits": hits[:2],
        "scores": [h["score"] for h in hits[:2]], "top_k": 2})
    return {"hits": hits[:2]}


@af.node("demo_fuse", reads=("hits",), writes=("documents",), registry=REG)
async def fuse(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    seen: dict[str, dict[str, Any]] = {}
    for hit in state.hits:
        seen.setdefault(hit["id"], hit)
    return {"documents": sorted(seen.values(), key=lambda h: h["source"])}


@af.node("demo_answer", reads=("documents", "attempt"), writes=("answer", "citations", "attempt"),
         registry=REG)
async def answer(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    attempt = state.attempt + 1
    docs = "\n".join(f"[DOC {i}] ({d['source']}) {d['text']}"
                     for i, d in enumerate(state.documents, 1))
    if attempt == 1:  # the first draft cites a sentence that is not in the document
        text = "A loop runs forever until stopped [DOC 1]."
        citations = [{"doc": 1, "source": state.documents[0]["source"],
                      "quote": "A loop runs forever until stopped."}]
    else:
        text = ("A loop repeats its body until a check passes [DOC 1], and every loop is bounded "
                "by max_iterations [DOC 1]. A map runs at most max_concurrency items at once "
                "[DOC 2].")
        citations = [{"doc": 1, "source": "loops.md",
                      "quote": "A loop repeats its body until a check passes."},
                     {"doc": 2, "source": "maps.md",
                      "quote": "At most max_concurrency items run at once"}]
    await _call(ctx, "large", "offline/extractive",
          [{"role": "system", "content": "Answer from the documents only. Cite them as [DOC n]."},
           {"role": "user", "content": f"Documents:\n{docs}\n\nQuestion: {state.question}"}],
          text, prompt=180 + 20 * attempt, completion=40, cost=0.0021, retries=attempt - 1)
    return {"answer": text, "citations": citations, "attempt": attempt}


@af.node("demo_cite_check", reads=("citations", "documents"), writes=("verdicts",), registry=REG)
async def cite_check(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    t0 = time.time()
    found = [c["quote"].lower() in state.documents[c["doc"] - 1]["text"].lower()
             for c in state.citations]
    score = sum(found) / max(1, len(found))
    verdict = "pass" if score == 1 else "fail"
    ctx.tracer.record("check", "citations", started=t0, data={
        "score": score, "verdict": verdict,
        "reason": "every quote is in its document" if score == 1 else "quote not in [DOC 1]"})
    return {"verdicts": [f"citations:{verdict}"]}


@af.node("demo_faithful", reads=("answer",), writes=("verdicts",), registry=REG)
async def faithful(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    t0 = time.time()
    await asyncio.sleep(0.005)
    score = 0.4 if "forever" in state.answer else 0.93
    ctx.tracer.record("check", "faithfulness", started=t0, data={
        "score": score, "verdict": "pass" if score >= 0.7 else "fail", "threshold": 0.7,
        "reason": f"{score:.0%} of the claims are supported by the documents"})
    return {"verdicts": [f"faithfulness:{'pass' if score >= 0.7 else 'fail'}"]}


@af.node("demo_chat", reads=("question",), writes=("answer",), registry=REG)
async def chat(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    return {"answer": "Hello! Ask me about loops, maps or routes."}


@af.node("demo_decline", reads=("question",), writes=("answer",), registry=REG)
async def decline(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    return {"answer": "Sorry, that is out of scope."}


@af.node("demo_crash", reads=("question",), writes=("answer", "citations", "attempt"),
         registry=REG)
async def crash(state: Rag, cfg: af.NodeConfig, ctx: af.RunContext[Rag]) -> dict[str, Any]:
    raise RuntimeError(f"model unavailable (key {API_KEY})")


def _checks_passed(state: Rag) -> Any:
    recent = state.verdicts[-2:]
    failing = [v.split(":")[0] for v in recent if v.endswith(":fail")]

    class Verdict:
        passed = not failing
        reason = "all checks pass" if not failing else f"failing: {', '.join(failing)}"

    return Verdict()


def make_flow(*, failing: bool = False) -> af.Flow:
    """The demo flow; ``failing`` swaps the answer node for one that raises."""
    return af.Flow("demo_rag", state=Rag, inputs=("question",), description="demo agentic RAG",
                   steps=[
        classify("classify"),
        af.route(on="route", name="by_route", cases={
            "knowledge": af.sequence(
                multi_query("multi_query"),
                af.map(over="queries", item="query", node=search("search"), max_concurrency=2,
                       name="retrieve"),
                fuse("fuse"),
                af.loop(
                    crash("answer") if failing else answer("answer"),
                    af.parallel(cite_check("check_citations"), faithful("check_faithfulness"),
                                name="checks"),
                    until=_checks_passed, max_iterations=3, name="refine"),
            ),
            "chit_chat": chat("chat"),
        }, default=decline("decline")),
    ])


async def record_demo_runs(store: Any) -> dict[str, str]:
    """Record three runs in ``store``: ``ok`` (two loop passes), ``chat`` and ``failed``."""
    from agentflow.errors import NodeError

    ids: dict[str, str] = {}
    ids["ok"] = (await make_flow().arun({"question": "What is a loop?"}, hooks=[store])).run_id
    ids["chat"] = (await make_flow().arun({"question": "hello"}, hooks=[store])).run_id
    try:
        await make_flow(failing=True).arun({"question": "What is a loop?"}, hooks=[store])
    except NodeError as exc:
        assert exc.result is not None
        ids["failed"] = exc.result.run_id
    store.flush()
    return ids


def synthetic_events(items: int, *, run_id: str = "f" * 32, t0: float = 1_700_000_000.0) -> list[Any]:
    """The events of a big run without running it: a map of ``items`` items, each with a node, a
    model call, a retrieval and a check (5 spans per item), as the engine would emit them."""
    from agentflow.tracing.events import Event

    graph = {"flow": "big", "inputs": ["queries"], "steps": {"kind": "sequence", "name": None, "steps": [
        {"kind": "map", "name": "fan", "over": "queries", "item": "query", "max_concurrency": 8,
         "on_error": "fail_fast", "into": None,
         "node": {"kind": "node", "name": "work", "type": "work", "reads": ["query"],
                  "writes": ["out"], "config": {}}}]}}
    ev = [Event("run_started", run_id, run_id, None, "big", "flow", t0,
                data={"inputs": {"queries": items}, "thread_id": run_id, "graph": graph})]
    fan = f"{run_id}/map:fan"
    ev.append(Event("map_started", run_id, fan, run_id, "fan", "map", t0,
                    data={"over": "queries", "count": items, "max_concurrency": 8}))
    for i in range(items):
        t = t0 + 0.001 * (i // 8) * 8 + 0.0001 * (i % 8)
        item, node = f"{fan}/item:{i}", f"{fan}/item:{i}/node:work"
        ev.append(Event("map_item_started", run_id, item, fan, "fan", "map", t, item_index=i))
        ev.append(Event("node_started", run_id, node, item, "work", "work", t, item_index=i))
        for k, (kind, data) in enumerate([
            ("model_call", {"alias": "large", "model": "m", "tokens": {"prompt_tokens": 10,
             "completion_tokens": 5}, "cost": 0.001, "duration_s": 0.002,
             "messages": [{"role": "user", "content": f"q{i}"}], "response": f"a{i}"}),
            ("retrieval", {"queries": [f"q{i}"], "hits": [{"id": f"d{i}", "text": "t", "score": 0.5}],
                           "duration_s": 0.001}),
            ("check", {"score": 0.9, "verdict": "pass", "reason": "ok", "duration_s": 0.0005})]):
            ev.append(Event(kind, run_id, f"{node}/{kind}:{k + 1}", node, kind, "", t + 0.0001,  # type: ignore[arg-type]
                            item_index=i, status="ok", data=data))
        ev.append(Event("node_finished", run_id, node, item, "work", "work", t + 0.004,
                        item_index=i, status="ok", data={"update": {"out": i}}))
        ev.append(Event("map_item_finished", run_id, item, fan, "fan", "map", t + 0.004,
                        item_index=i, status="ok"))
    end = t0 + 0.001 * items + 0.01
    ev.append(Event("map_finished", run_id, fan, run_id, "fan", "map", end, status="ok",
                    data={"ok": items, "failed": 0, "max_in_flight": 8}))
    ev.append(Event("run_finished", run_id, run_id, None, "big", "flow", end, status="ok",
                    data={"state": {"out": list(range(10))}}))
    return ev


def traces(*argv: str) -> int:
    """``agentflow traces ARGV...`` in this process; returns its exit code."""
    import argparse

    from agentflow.tracing import cli

    parser = argparse.ArgumentParser(prog="agentflow")
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["traces", *argv])
    return int(args.handler(args))
