"""Which paragraphs caused an answer: ContextCite attribution with the local model, beside the answer's own
citations and an embedding-similarity baseline, on multi-hop questions with gold supporting paragraphs.

    python benchmarks/attribution.py [--quick] [--items N] [--data ../shared/data]

Data: ``hotpotqa_musique`` (HippoRAG's 100-question subsets of the HotpotQA distractor train split and of
MuSiQue-Ans train), each question with gold supporting paragraphs. Per item the context is the gold paragraphs
and ``--distractors`` others of the item (each cut to its first ``--sentences`` sentences), in a seeded
order, numbered ``[DOC n]``. SmolLM2-135M-Instruct on agentflow's model server (the ``local`` profile: one already on
127.0.0.1:8000 is reused, else one is started) answers greedily in a sentence citing ``[DOC n]``; then, for
the same fixed answer:

- attribution: the full context and 64 seeded ablations scored in one request (the model server's prompt
  log-probabilities), the LASSO surrogate fitted on the first k = 16, 32, 64 ablations (the first k masks of the
  seeded set are the k-ablation run's masks); the whole answer's top source (top-1: a gold paragraph) and its
  top two (top-2: the share of them that are gold);
- citations: the answer's first ``[DOC n]`` is a gold paragraph (the answer is held to the local profile's
  citation grammar, one sentence ending in ``[DOC n]``, as the reference workflow holds it);
- baseline: the paragraph most similar to the answer (citations removed) under MiniLM embeddings;
- chance: gold paragraphs / paragraphs.

Cost: prompts scored (forward passes, ContextCite's unit) and seconds per answer; the scoring of 65 prompts is
timed, and k's share of it is prorated by prompts. ``--sharing`` only times the model server's scoring of the same
65 prompts in process, each alone beside one call (repeats once, the tree of shared prefixes). ``--quick`` (HotpotQA, 3 items, 2 distractors, one sentence
per paragraph) runs in under 5 minutes on two cores. The last line is JSON: ``attribution_top1``, ``attribution_top2``,
``citations_top1``, ``baseline_top1``, ``attribution_top1_minus_baseline`` (k = 64) and
``forward_passes_per_answer``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.checks.attribution import (  # noqa: E402
    PROMPT,
    ablation_masks,
    build_prompt,
    fit_attribution,
    split_sources,
)
from agentflow.checks.text import cited_numbers, split_sentences, strip_citations  # noqa: E402
from agentflow.documents import Chunk  # noqa: E402
from agentflow.models import build_router  # noqa: E402
from agentflow.models.logprobs import RouterScorer, continuation_tokens  # noqa: E402
from agentflow.models.sampling import Sampling  # noqa: E402
from agentflow.models.structured import citation_grammar  # noqa: E402

KS = (16, 32, 64)
SYSTEM = ("Answer the question in one short sentence using only the documents. End the sentence with the "
          "citation of the document it comes from, like [DOC 2].")


def hotpot_items(data: Path) -> list[dict[str, Any]]:
    rows = json.loads((data / "hotpotqa_musique" / "hotpotqa_train.json").read_text(encoding="utf-8"))
    items = []
    for row in rows:
        gold = {title for title, _ in row["supporting_facts"]}
        paragraphs = [(title, "".join(sentences), title in gold) for title, sentences in row["context"]]
        items.append({"id": row["_id"], "question": row["question"], "paragraphs": paragraphs,
                      "dataset": "hotpotqa"})
    return items


def musique_items(data: Path) -> list[dict[str, Any]]:
    rows = json.loads((data / "hotpotqa_musique" / "musique_train.json").read_text(encoding="utf-8"))
    return [{"id": row["id"], "question": row["question"], "dataset": "musique",
             "paragraphs": [(p["title"], p["paragraph_text"], bool(p["is_supporting"])) for p in row["paragraphs"]]}
            for row in rows]


def context_of(item: dict[str, Any], distractors: int, sentences: int, seed: int) -> tuple[list[Chunk], set[int]]:
    """The gold paragraphs and ``distractors`` others, shortened, in a seeded order; and the gold ``[DOC n]``s."""
    rng = random.Random(f"{seed}-{item['id']}")
    gold = [p for p in item["paragraphs"] if p[2]]
    others = [p for p in item["paragraphs"] if not p[2]]
    chosen = gold + rng.sample(others, min(distractors, len(others)))
    rng.shuffle(chosen)
    chunks, gold_docs = [], set()
    for n, (title, text, is_gold) in enumerate(chosen, start=1):
        short = " ".join(split_sentences(text)[:sentences])
        chunks.append(Chunk(id=title, text=f"{title}: {short}", source=title))
        if is_gold:
            gold_docs.add(n)
    return chunks, gold_docs


async def answer_of(router: Any, question: str, chunks: list[Chunk]) -> str:
    docs = "\n".join(f"[DOC {n}] {c.text}" for n, c in enumerate(chunks, start=1))
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Documents:\n{docs}\n\nQuestion: {question}"}]
    # the local profile's citation grammar (as the reference workflow's generate node sends it): one sentence
    # that ends citing [DOC n]; the 135M model does not cite by itself
    grammar = citation_grammar(range(1, len(chunks) + 1), sentences=1, sentence_chars=160)
    response = await router.complete("large", messages, sampling=Sampling(temperature=0.0, max_tokens=60),
                                     constraint=grammar)
    text = " ".join(response.text.split())
    return split_sentences(text)[0] if text else text


async def run(items: list[dict[str, Any]], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    router = build_router(None, profile="local", root=root)
    scorer = RouterScorer(router, "large")
    rows: list[dict[str, Any]] = []
    try:
        for i, item in enumerate(items):
            chunks, gold = context_of(item, args.distractors, args.sentences, args.seed)
            generated = time.perf_counter()
            answer = await answer_of(router, item["question"], chunks)
            generated = time.perf_counter() - generated
            if not strip_citations(answer):
                answer = answer or "(no answer)"
            sources = split_sources(chunks)
            masks = ablation_masks(len(sources), max(KS), seed=args.seed)
            bare = build_prompt(item["question"], sources, [True] * len(sources), template=PROMPT)
            prompts = [bare] + [build_prompt(item["question"], sources, list(m), template=PROMPT) + " " + answer
                                for m in np.vstack([np.ones((1, len(sources)), dtype=bool), masks])]
            started = time.perf_counter()
            without, *scored = await scorer.score(prompts)
            seconds = time.perf_counter() - started
            count = continuation_tokens(without, scored[0])
            row: dict[str, Any] = {"id": item["id"], "dataset": item["dataset"], "answer": answer,
                                   "gold": sorted(gold), "docs": len(chunks), "score_seconds": round(seconds, 2),
                                   "answer_seconds": round(generated, 2)}
            for k in KS:
                fit = fit_attribution(answer, sources, masks[:k], scored[: k + 1], answer_tokens=count)
                top = [w.doc for w in fit.whole.top]
                row[f"k{k}"] = {"top": top[:2], "top1": float(bool(top) and top[0] in gold),
                                "top2": float(np.mean([d in gold for d in top[:2]])) if top else 0.0}
            cited = cited_numbers(answer)
            row["citation"] = cited[0] if cited else None
            row["citations_top1"] = float(bool(cited) and cited[0] in gold)
            vectors = np.array(await router.embed("embed", [strip_citations(answer)] + [c.text for c in chunks]))
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            similarity = vectors[1:] @ vectors[0]
            row["baseline_doc"] = int(np.argmax(similarity)) + 1
            row["baseline_top1"] = float(row["baseline_doc"] in gold)
            row["chance_top1"] = len(gold) / len(chunks)
            rows.append(row)
            print(f"{i + 1}/{len(items)} {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        router.close()
    return summarise(rows)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str, sub: str | None = None) -> float:
        values = [r[key][sub] if sub else r[key] for r in rows]
        return round(float(np.mean(values)), 3)

    score_seconds = float(np.mean([r["score_seconds"] for r in rows]))
    per_k = {k: {"attribution_top1": mean(f"k{k}", "top1"), "attribution_top2": mean(f"k{k}", "top2"),
                 "forward_passes_per_answer": k + 1,
                 "seconds_per_answer": round(score_seconds * (k + 1) / (max(KS) + 1), 2)} for k in KS}
    return {"items": len(rows), "datasets": sorted({r["dataset"] for r in rows}), "per_k": per_k,
            "citations_top1": mean("citations_top1"), "baseline_top1": mean("baseline_top1"),
            "chance_top1": mean("chance_top1"), "answers_citing": sum(r["citation"] is not None for r in rows),
            "scoring_seconds_65_prompts": round(score_seconds, 2),
            "answer_seconds": round(float(np.mean([r["answer_seconds"] for r in rows])), 2)}


def sharing(items: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The model server's scoring of each item's 65 prompts (full context + 64 ablations, with a fixed answer) in
    process: every prompt alone (no batching, no sharing) beside one call (repeats once, the tree of shared
    prefixes, batched rests), same model, same prompts, in one run."""
    import torch

    from agentflow.model_server.runtime import ServerSettings, load_server
    from agentflow.model_server.scoring import score_prompts

    node = load_server(ServerSettings(model_dir=Path("smollm2-135m"), device="cpu", max_batch=8, max_len=2048))
    alone_s = shared_s = 0.0
    tokens = computed = 0
    with torch.inference_mode():
        for item in items:
            chunks, _ = context_of(item, args.distractors, args.sentences, args.seed)
            sources = split_sources(chunks)
            masks = np.vstack([np.ones((1, len(sources)), dtype=bool),
                               ablation_masks(len(sources), max(KS), seed=args.seed)])
            answer = f"The answer is in {chunks[0].id} [DOC 1]."
            prompts = [node.tokenizer.encode(build_prompt(item["question"], sources, list(m)) + " " + answer)
                       for m in masks]
            started = time.perf_counter()
            for p in prompts:
                score_prompts(node.engine.model, [p])
            alone_s += time.perf_counter() - started
            started = time.perf_counter()
            result = score_prompts(node.engine.model, prompts)
            shared_s += time.perf_counter() - started
            tokens += sum(len(p) for p in prompts)
            computed += result.computed_tokens
    n = len(items)
    return {"items": n, "prompts_per_item": max(KS) + 1, "alone_seconds_per_item": round(alone_s / n, 2),
            "shared_seconds_per_item": round(shared_s / n, 2), "speedup": round(alone_s / shared_s, 2),
            "prompt_tokens": tokens, "computed_tokens": computed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="HotpotQA, 3 items, 2 distractors, 1 sentence each (under 5 minutes)")
    parser.add_argument("--items", type=int, default=None, help="items per dataset (default 20; quick 4)")
    parser.add_argument("--distractors", type=int, default=None, help="distractor paragraphs (default 3; quick 2)")
    parser.add_argument("--sentences", type=int, default=None, help="sentences kept of each paragraph (default 2; "
                                                                     "quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sharing", action="store_true",
                        help="only time the model server's scoring in process: each prompt alone vs one call "
                             "(no answers)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    items_n = args.items or (3 if args.quick else 20)
    args.sentences = args.sentences or (1 if args.quick else 2)
    args.distractors = args.distractors if args.distractors is not None else (2 if args.quick else 3)
    items = hotpot_items(args.data)[:items_n]
    if not args.quick:
        items += musique_items(args.data)[:items_n]
    if args.sharing:
        print(json.dumps({"benchmark": "attribution_scoring", **sharing(items, args)}))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentflow-attribution-") as tmp:
        out = asyncio.run(run(items, args, Path(tmp)))
    out.update({"benchmark": "attribution", "quick": args.quick, "distractors": args.distractors,
                "sentences": args.sentences, "split": "train (HippoRAG 100-question subsets)",
                "wall_seconds": round(time.perf_counter() - started, 1)})
    print(json.dumps(out))
    top = out["per_k"][max(KS)]
    print(json.dumps({
        "attribution_top1": top["attribution_top1"], "attribution_top2": top["attribution_top2"],
        "citations_top1": out["citations_top1"], "baseline_top1": out["baseline_top1"],
        "attribution_top1_minus_baseline": round(top["attribution_top1"] - out["baseline_top1"], 3),
        "forward_passes_per_answer": top["forward_passes_per_answer"],
    }))


if __name__ == "__main__":
    main()
