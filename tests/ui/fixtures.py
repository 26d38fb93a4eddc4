"""Runs and evaluations the viewer's tests need beyond the demo flow's: runs of the reference
workflow's shape that ended with a caveat or an abstention, with hard-wrapped Markdown passages
and tags, recorded as the engine emits them; and two evaluation folders of the same items, the
second run with a warm embedding cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentflow.eval.results import CACHES, MANIFEST, METRICS, RESULTS
from agentflow.eval.summary import summarize
from agentflow.tracing.events import Event

# a passage as the docs are written: hard-wrapped lines, a heading, code spans, a list
FLOWS_MD = (
    "### Loops are bounded\n\n"
    "Every loop is bounded: a loop stops when its `until` passes or after `max_iterations` passes,\n"
    "whichever comes first, so no loop can run forever. When the last pass still fails, the loop\n"
    "ends with the stop reason `exhausted` and the run goes on with what that pass wrote.\n\n"
    "- **until**: a state field or a function\n- max_iterations: required\n"
)
MAPS_MD = ("## Maps\n\nA map runs one node per item of a list, at most\n`max_concurrency` at once; "
           "the limit shows in the trace.\n")
QUOTE_ACROSS_LINES = ("Every loop is bounded: a loop stops when its `until` passes or after "
                      "`max_iterations` passes, whichever comes first, so no loop can run forever.")
GRAPH = {"flow": "agentic_rag", "inputs": ["question"], "steps": {
    "kind": "sequence", "name": None, "steps": [
        {"kind": "node", "name": "classify", "type": "classify", "reads": ["question"],
         "writes": ["route"], "config": {"model": "small", "labels": ["knowledge", "chitchat"]}},
        {"kind": "node", "name": "fuse", "type": "fuse", "reads": ["ranked"], "writes": ["chunks"],
         "config": {"top_k": 6}},
        {"kind": "node", "name": "answer", "type": "generate", "reads": ["chunks"],
         "writes": ["answer"], "config": {"model": "large", "temperature": 0.2}},
        {"kind": "node", "name": "check", "type": "check", "reads": ["answer"],
         "writes": ["checks"], "config": {"kind": "faithfulness"}}]}}


def reference_run(run_id: str, *, question: str, answer_status: str, t0: float,
                  tags: dict[str, str], model: str = "large",
                  answer: str | None = None) -> list[Event]:
    """The events of one run of the reference workflow's shape, ending with ``answer_status``."""
    graph = json.loads(json.dumps(GRAPH))
    graph["steps"]["steps"][2]["config"]["model"] = model
    chunks = [{"id": "flows.md:8", "source": "/project/docs/concepts/flows.md", "text": FLOWS_MD,
               "heading": "Flows > Loops are bounded", "score": 0.0333},
              {"id": "maps.md:2", "source": "/project/docs/concepts/maps.md", "text": MAPS_MD,
               "score": 0.0164}]
    passed = answer_status == "passed"
    text = answer if answer is not None else (
        QUOTE_ACROSS_LINES.replace("forever.", "forever [DOC 1].") if answer_status != "abstained"
        else "The documents do not say how a loop picks its model, so I cannot answer that.")
    checks = {"faithfulness": {"kind": "faithfulness", "score": 0.95 if passed else 0.42,
                               "passed": passed, "threshold": 0.8,
                               "reason": "2 of 2 claims supported" if passed else "1 of 2 claims supported"},
              "citations": {"kind": "citations", "score": 1.0, "passed": True, "threshold": 0.75,
                            "reason": "citation F1 1.00"}}
    state = {"question": question, "route": "knowledge", "chunks": chunks, "answer": text,
             "citations": [] if answer_status == "abstained" else [
                 {"doc": 1, "source": chunks[0]["source"], "chunk_id": "flows.md:8",
                  "quote": QUOTE_ACROSS_LINES}],
             "checks": checks, "answer_status": answer_status,
             "verdict": {"passed": passed, "failing": [] if passed else ["faithfulness"]}}
    ev = [Event("run_started", run_id, run_id, None, "agentic_rag", "flow", t0,
                data={"inputs": {"question": question}, "thread_id": run_id, "graph": graph,
                      "tags": tags})]
    t = t0
    for name, step_type, took, update in (
            ("classify", "classify", 0.004, {"route": "knowledge"}),
            ("fuse", "fuse", 0.002, {"chunks": chunks}),
            ("answer", "generate", 1.2, {"answer": text}),
            ("check", "check", 0.006, {"checks": checks})):
        node = f"{run_id}/node:{name}"
        ev.append(Event("node_started", run_id, node, run_id, name, step_type, t))
        if name in ("classify", "answer"):
            ev.append(Event("model_call", run_id, f"{node}/model_call:1", node, "model_call", "",
                            t + 0.001, status="ok", data={
                                "alias": "small" if name == "classify" else "large",
                                "model": f"offline/{model if name == 'answer' else 'classifier'}",
                                "messages": [{"role": "user", "content": question}],
                                "response": text if name == "answer" else "knowledge",
                                "tokens": {"prompt": 120, "completion": 30, "total": 150},
                                "cost": 0.0, "duration_s": took - 0.002}))
        if name == "check":
            ev.append(Event("check", run_id, f"{node}/check:1", node, "check", "", t + 0.001,
                            status="ok", data={"score": checks["faithfulness"]["score"],
                                               "verdict": "pass" if passed else "fail",
                                               "threshold": 0.8, "duration_s": 0.004}))
        ev.append(Event("node_finished", run_id, node, run_id, name, step_type, t + took,
                        status="ok", data={"update": update}))
        t += took
    ev.append(Event("run_finished", run_id, run_id, None, "agentic_rag", "flow", t, status="ok",
                    data={"state": state}))
    return ev


def write_eval(folder: Path, *, run_ids: list[str | None], latency: float, embedded: int,
               f1: list[float], name_suffix: str = "") -> None:
    """An evaluation folder as ``agentflow eval`` writes it, of ``len(f1)`` items."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"workflow": "graphs/agentic_rag.yaml", "format": "jsonl", "dataset": "/data/qa.jsonl",
                "split": "test", "profile": None, "overrides": [f"nodes.answer.model=large{name_suffix}"] if name_suffix else [],
                "description": "questions on the docs", "notes": [], "started": "2026-12-07T22:00:00"}
    records: list[dict[str, Any]] = []
    for i, score in enumerate(f1):
        failed = i == 3
        records.append({
            "index": i, "id": f"q{i}", "status": "error" if failed else "ok",
            "error": "RuntimeError: model unavailable" if failed else None,
            "inputs": {"question": f"How does feature {i} work?"},
            "gold": {"answers": [f"feature {i} works"], "answerable": i != 5},
            "run_id": run_ids[i % len(run_ids)], "latency_s": latency + 0.01 * i,
            "tokens": 150, "cost": None, "model_calls": 2, "cache_hits": 0,
            **({} if failed else {
                "prediction": f"Feature {i} works like this." if i != 5 else "I cannot answer that.",
                "route": "knowledge", "answer_status": "abstained" if i == 5 else "passed",
                "abstained": i == 5, "retrieved": [],
                "checks": {"faithfulness": {"score": 0.9 if score > 0.5 else 0.3,
                                            "passed": score > 0.5, "computed": False,
                                            "reason": "claims supported" if score > 0.5 else "1 of 3 claims supported",
                                            "error": None}},
                "metrics": {"token_f1": score, "exact_match": float(score == 1.0)}}),
            "finished": 1_765_000_000.0 + i})
    (folder / MANIFEST).write_text(json.dumps(manifest))
    (folder / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / METRICS).write_text(json.dumps(summarize(records, planned=len(records), manifest=manifest)))
    (folder / CACHES).write_text(json.dumps({"runs": [{"items": len(records), "embedded": embedded,
                                                         "embedding_cache_before": 0,
                                                         "embedding_cache_after": embedded}]}))
