"""Route accuracy of the reference workflow's ``classify`` node with a language model deciding.

The same prompt (``prompts/classify.j2``, with the collection's nearest passages for the
``knowledge`` label) and the same constrained output (``{"label": one of the labels}``, held by
the model's server) as the node sends, on the docs corpus: its questions in
benchmarks/routing/dev_questions.jsonl (answerable and on-topic unanswerable: ``knowledge``), and
CLINC150 val messages (greetings, thanks and goodbyes: ``chitchat``; out-of-scope and banking,
travel or kitchen requests: ``out_of_scope``). The model is the ``local`` profile's
(SmolLM2-135M-Instruct) unless ``--model``/``--api-base`` say otherwise; a model server must be serving it
(``agentflow model-server serve --model smollm2-135m``). Side by side, the offline embedding classifier on
the same messages. The last line printed is JSON.

    python benchmarks/routing_llm.py [--api-base URL] [--prompt prompts/classify.j2] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing import CLINC, classify_config  # noqa: E402  (the sibling benchmark's helpers)


def messages(seed: int = 0) -> list[tuple[str, str]]:
    """(expected label, text): the docs questions, 9 chit-chat and 10 unrelated CLINC messages."""
    questions = [json.loads(line) for line in
                 (ROOT / "benchmarks" / "routing" / "dev_questions.jsonl").read_text().splitlines()]
    rows = [("knowledge", q["question"]) for q in questions if q["corpus"] == "docs"]
    data = json.loads(CLINC.read_text())
    domains = json.loads((CLINC.parent / "domains.json").read_text())
    rng = random.Random(seed)
    chit = [t for t, i in data["val"] if i in ("greeting", "goodbye", "thank_you")]
    other = [t for t, i in data["val"]
             if i in domains["banking"] + domains["travel"] + domains["kitchen_and_dining"]]
    rows += [("chitchat", t) for t in rng.sample(chit, 9)]
    rows += [("out_of_scope", t) for t in rng.sample([t for t, _ in data["oos_val"]], 5)
             + rng.sample(other, 5)]
    return rows


def score(rows: list[tuple[str, str, str]]) -> dict[str, object]:
    ok, total = Counter(), Counter()
    for expected, got, _ in rows:
        total[expected] += 1
        ok[expected] += got == expected
    per = {k: round(ok[k] / total[k], 3) for k in total}
    return {"per_label": per, "accuracy": round(sum(ok.values()) / sum(total.values()), 3),
            "balanced": round(sum(per.values()) / len(per), 3)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    from agentflow.models import ModelRouter, PromptInputs
    from agentflow.models.profiles import LOCAL_MODEL, ModelEntry
    from agentflow.nodes.classify import label_schema
    from agentflow.prompts.templates import PromptStore
    from agentflow.retrieval.catalog import CollectionSpec, ensure_collection, open_retriever
    from agentflow.retrieval.chunking import ChunkingConfig

    cfg = classify_config(ROOT / "graphs" / "agentic_rag.yaml")
    entry = LOCAL_MODEL.model_copy(update={"model": args.model, "api_base": args.api_base,
                                           "offline_tasks": ()})  # the LLM itself decides
    llm = ModelRouter({"small": [entry]})
    offline = ModelRouter({"small": [ModelEntry(model="offline")]})
    store = PromptStore([ROOT])
    rows = messages()
    with tempfile.TemporaryDirectory() as tmp:
        spec = CollectionSpec(name="docs", sources=(str(ROOT / "docs"),),
                              chunking=ChunkingConfig(chunker="markdown", size=120, overlap=20))
        await ensure_collection(spec, base_dir=tmp, progress=False)
        retriever = open_retriever(spec, base_dir=tmp)
        gate = asyncio.Semaphore(4)

        async def one(router: ModelRouter, expected: str, text: str) -> tuple[str, str, str]:
            found = {name: await retriever.search(text, cfg.passages) for name in cfg.collections()}
            labels = cfg.label_list(found)
            prompt = store.messages(args.prompt, {"text": text, "out_of_scope": cfg.out_of_scope,
                                                  "labels": [lb.model_dump() for lb in labels]})
            async with gate:
                reply = await router.complete(
                    "small", prompt, sampling=cfg.sampling, schema=label_schema(cfg.names()),
                    inputs=PromptInputs(task="classify", query=text, labels=labels,
                                        out_of_scope=cfg.out_of_scope, threshold=cfg.threshold))
            return expected, reply.parsed.label, text

        results: dict[str, object] = {"messages": len(rows), "model": args.model}
        for name, router in (("llm", llm), ("offline", offline)):
            started = time.perf_counter()
            scored = await asyncio.gather(*(one(router, e, t) for e, t in rows))
            results[name] = {**score(scored), "seconds": round(time.perf_counter() - started, 1)}
            if args.verbose:
                for expected, got, text in scored:
                    print(f"{name:8} {expected:13} {got:13} {text}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="hosted_vllm/smollm2-135m")
    parser.add_argument("--prompt", default="prompts/classify.j2")
    parser.add_argument("--verbose", action="store_true", help="every message and its label")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    for key, value in results.items():
        print(f"{key:10} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
