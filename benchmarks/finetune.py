"""RAG and fine-tuning, measured: what LoRA teaches SmolLM2-135M-Instruct, on splits that never overlap.

Three experiments, each trained with ``agentflow.tune`` (the code behind ``agentflow tune``) and each answered by
agentflow's model server serving the base or base plus adapter (``local/smollm2-135m+NAME``, merged at load):

1. **Routing, CLINC150**: the classify node's prompt (``prompts/classify.j2``: the intents with their
   descriptions) and its constrained output ``{"label": ...}``; zero-shot base model vs. the model tuned on a
   subset of the train split vs. the offline embedding classifier (the ``offline`` profile's; ten train
   queries per intent as its examples), all on the same test queries. To fit this CPU the labels are the
   intents of ``--domains`` CLINC150 domains (15 each) plus out-of-scope.
2. **RAG answering with citations, NQ-Open with gold passages**: the model tuned on the reference workflow's
   own answer prompt (system, few-shot pair, ``[DOC n]`` passages: the gold one and a distractor) with the
   gold answer cited (``<answer> [DOC k].``), items ``offset..`` of the set; then the reference workflow
   (graphs/agentic_rag.yaml) under ``--profile local`` before (``large`` = the base) and after (``large:
   local/smollm2-135m+rag-cite``) on the set's first items, through ``agentflow.eval``: answer contains, F1,
   citation precision and recall, faithfulness. Retrieval runs over a slice of the set's corpus that holds
   every evaluated question's gold passage.
3. **The course's claim**: a third, disjoint slice of questions; the model tuned on their gold passages' text
   (language modelling: knowledge injection, closed book) vs. the base model with RAG over those passages (BM25
   top 2, the reference workflow's prompt) vs. both (the tuned model with RAG); accuracy = the answer contains
   a gold answer.

Training time and peak memory (the process's resident peak on a CPU; the allocator's on a GPU) are measured
per adapter. The last line printed is JSON with ``routing_zero_shot``, ``routing_tuned``, ``routing_gain``,
``rag_citation_recall_before``, ``rag_citation_recall_after``, ``rag_citation_recall_gain``,
``closed_book_acc``, ``rag_acc``, ``both_acc`` and ``train_s`` (all training, summed).

    python benchmarks/finetune.py --quick        # the QUICK sizes below (2 questions through the workflow)
    python benchmarks/finetune.py --quick --reuse --parts rag --rag-eval 8   # more questions, the rest reused
    python benchmarks/finetune.py                # the FULL sizes

Time is the CPU's: training is about 1,000 tokens a step, 1.5-4 s in bf16 (where the CPU multiplies it
natively; 5-30 s in fp32) depending on what else runs, and the reference workflow under the local profile takes
half a minute to a minute per question. On the 2-core box of docs/benchmarks.md, with three other jobs beside
(load average 3-7), ``--quick`` took 8 min 49 s; a GPU (``agentflow tune --device cuda``) takes less.

Everything is written to a work folder outside the checkout (adapters, corpora, eval results, model server logs;
--work, default $TMPDIR/agentflow-finetune/quick or full), so that a run beside the tests never writes under
the checkout's .agentflow folders, which the test session checks; the traces go to benchmarks/.cache/finetune/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
CACHE = ROOT / "benchmarks" / ".cache" / "finetune"
os.environ.setdefault("AGENTFLOW_TRACES_DB", str(CACHE / "traces.db"))
DATA = ROOT.parent / "shared" / "data"
WORKFLOW = ROOT / "graphs" / "agentic_rag.yaml"
BASE = "smollm2-135m"
THREADS = max(1, (os.cpu_count() or 2) - 1)
"""Training threads: every core but one, as the model server decodes (two threads on two busy cores ran 10x slower)."""


@dataclass(frozen=True)
class Sizes:
    domains: int
    route_train_per_intent: int
    route_test_per_intent: int
    route_oos_test: int
    route_steps: int
    rag_train: int
    rag_steps: int
    rag_eval: int
    rag_corpus: int
    closed_questions: int
    closed_epochs: int


QUICK = Sizes(domains=1, route_train_per_intent=6, route_test_per_intent=4, route_oos_test=10, route_steps=30,
              rag_train=32, rag_steps=8, rag_eval=2, rag_corpus=200, closed_questions=12, closed_epochs=4)
FULL = Sizes(domains=2, route_train_per_intent=20, route_test_per_intent=10, route_oos_test=30, route_steps=100,
             rag_train=160, rag_steps=40, rag_eval=10, rag_corpus=600, closed_questions=60, closed_epochs=4)
RAG_OFFSET = 1000
"""Training questions of experiment 2 start here; its evaluation takes the set's first items."""
CLOSED_OFFSET = 1600
"""Experiment 3's questions start here (disjoint from both slices of experiment 2)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# the model server --------------------------------------------------------------------------------
class ModelServer:
    """A model server agentflow starts for ``local/NAME`` (the profile's path), in the work folder; stopped on exit."""

    def __init__(self, name: str, work: Path) -> None:
        from agentflow.models.managed_server import ManagedServers
        from agentflow.models.profiles import local_entry

        self.entry = local_entry(f"local/{name}")
        self.servers = ManagedServers()
        self.work = work
        self.handle: Any = None

    def __enter__(self) -> Any:
        self.handle = self.servers.acquire(self.entry, project_dir=self.work)
        return self.entry.model_copy(update={"api_base": self.handle.api_base, "serve": None, "offline_tasks": ()})

    def __exit__(self, *exc: object) -> None:
        self.servers.release(self.handle)


# 1. routing --------------------------------------------------------------------------------------
def routing_data(sizes: Sizes, seed: int) -> tuple[list[Any], list[tuple[str, str]], list[tuple[str, str]], str]:
    """Labels (the chosen domains' intents), train pairs and test pairs; the out-of-scope label."""
    from agentflow.eval.formats.clinc150 import EXAMPLES_PER_INTENT, OUT_OF_SCOPE
    from agentflow.models.types import Label

    folder = DATA / "clinc150"
    data = json.loads((folder / "data_full.json").read_text())
    domains = json.loads((folder / "domains.json").read_text())
    chosen = sorted(domains)[: sizes.domains]
    intents = sorted(i for d in chosen for i in domains[d])
    domain_of = {i: d for d in chosen for i in domains[d]}
    by_intent: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        by_intent.setdefault(intent, []).append(text)
    labels = [Label(name=i, description=f"{domain_of[i].replace('_', ' ')}: {i.replace('_', ' ')}",
                    examples=tuple(by_intent[i][:EXAMPLES_PER_INTENT])) for i in intents]
    rng = random.Random(seed)
    train: list[tuple[str, str]] = []
    for i in intents:  # after the classifier's examples, so the two never share a query
        pool = by_intent[i][EXAMPLES_PER_INTENT:]
        train += [(t, i) for t in rng.sample(pool, sizes.route_train_per_intent)]
    oos_train = [t for t, _ in data["oos_train"]]
    train += [(t, OUT_OF_SCOPE) for t in rng.sample(oos_train, max(2, sizes.route_train_per_intent))]
    test: list[tuple[str, str]] = []
    for i in intents:
        pool = [t for t, label in data["test"] if label == i]
        test += [(t, i) for t in rng.sample(pool, sizes.route_test_per_intent)]
    test += [(t, OUT_OF_SCOPE) for t in rng.sample([t for t, _ in data["oos_test"]], sizes.route_oos_test)]
    return labels, train, test, OUT_OF_SCOPE


def route_prompt_labels(labels: Sequence[Any]) -> list[dict[str, Any]]:
    """The labels as the LLM's prompt lists them: names and descriptions (the examples would not fit 2k tokens)."""
    return [{"name": lb.name, "description": lb.description, "examples": [], "passages": []} for lb in labels]


async def route_accuracy(entry: Any, labels: Sequence[Any], test: Sequence[tuple[str, str]], oos: str) -> float:
    """Accuracy of a model behind the router on the classify node's prompt and schema (``offline`` entries
    answer from the structured labels, as the offline profile's classifier does)."""
    from agentflow.models import ModelRouter, PromptInputs
    from agentflow.models.sampling import Sampling
    from agentflow.nodes.classify import label_schema
    from agentflow.tune.examples import route_prompt

    router = ModelRouter({"small": [entry]})
    names = (*[lb.name for lb in labels], oos)
    shown = route_prompt_labels(labels)
    gate = asyncio.Semaphore(8)

    async def one(text: str, gold: str) -> bool:
        messages = [dict(m) for m in route_prompt(text, shown, oos, root=ROOT)]
        async with gate:
            reply = await router.complete("small", messages, sampling=Sampling(temperature=0.0),
                                          schema=label_schema(names),
                                          inputs=PromptInputs(task="classify", query=text, labels=tuple(labels),
                                                              out_of_scope=oos))
        return bool(reply.parsed.label == gold)

    try:
        hits = await asyncio.gather(*(one(t, g) for t, g in test))
    finally:
        router.close()
    return sum(hits) / len(hits)


def routing(sizes: Sizes, work: Path, seed: int) -> dict[str, Any]:
    from agentflow.models.profiles import ModelEntry
    from agentflow.tune.examples import route_examples, split_examples

    labels, train_pairs, test, oos = routing_data(sizes, seed)
    examples = route_examples(train_pairs, route_prompt_labels(labels), oos, root=ROOT)
    split = split_examples(examples, held_out=0.1, seed=seed)
    trained = tune("router", split, work, steps=sizes.route_steps, lr=1e-3, seed=seed, task="route", batch_size=2)
    out: dict[str, Any] = {"intents": len(labels), "test_queries": len(test), "train_examples": len(split.train),
                           "train": trained}
    started = time.perf_counter()
    out["offline_classifier"] = asyncio.run(route_accuracy(ModelEntry(model="offline"), labels, test, oos))
    for key, name in (("zero_shot", BASE), ("tuned", f"{BASE}+router")):
        with ModelServer(name, work) as entry:
            out[key] = asyncio.run(route_accuracy(entry, labels, test, oos))
        log(f"routing {key}: {out[key]:.3f}")
    out["eval_s"] = round(time.perf_counter() - started, 1)
    return out


# training ----------------------------------------------------------------------------------------
def tune(name: str, split: Any, work: Path, *, steps: int, lr: float, seed: int, task: str,
         batch_size: int = 2) -> dict[str, Any]:
    """Train an adapter into ``work/.agentflow/adapters/name``; what it measured."""
    from agentflow.tune.base import load_base
    from agentflow.tune.train import TuneConfig, save, train

    base = load_base(BASE)
    model, result = train(base, split, TuneConfig(lr=lr, max_steps=steps, batch_size=batch_size, seed=seed,
                                                  eval_generate=0, max_len=1024, threads=THREADS))
    save(model, base, result, work / ".agentflow" / "adapters" / name, split, task=task, source="benchmark")
    log(f"tuned {name}: {result.steps} steps in {result.train_s:.0f} s, loss {result.losses[0]:.3f} -> "
        f"{result.losses[-1]:.3f}, held-out {result.held_out_loss_before} -> {result.held_out_loss_after}, "
        f"peak {result.peak_memory_mb:.0f} MB")
    del model, base
    gc.collect()
    return {"steps": result.steps, "examples": result.examples_train, "train_s": result.train_s,
            "peak_memory_mb": result.peak_memory_mb, "first_loss": result.losses[0], "last_loss": result.losses[-1],
            "held_out_loss_before": result.held_out_loss_before, "held_out_loss_after": result.held_out_loss_after,
            "device": result.device}


# 2. RAG with citations ---------------------------------------------------------------------------
KEPT = ("answer_contains", "token_f1", "citation_precision", "citation_recall", "faithfulness", "latency_p50_s",
        "error_rate")


def corpus_slice(items: Sequence[Any], size: int, seed: int, work: Path) -> Path:
    """A corpus file holding every item's gold passages and random others, up to ``size`` passages."""
    source = DATA / "nq_open_oracle" / "derived_corpus.jsonl"
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    gold = {d for i in items for d in i.gold.doc_ids}
    others = [r for r in rows if r["doc_id"] not in gold]
    chosen = [r for r in rows if r["doc_id"] in gold] + random.Random(seed).sample(others, max(0, size - len(gold)))
    path = work / f"nq_corpus_{size}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen), encoding="utf-8")
    return path


async def workflow_eval(dataset: Any, out: Path) -> dict[str, Any]:
    from agentflow.eval import RunOptions, evaluate

    started = time.perf_counter()
    outcome = await evaluate(str(WORKFLOW), dataset, out, profile="local", fresh=True,
                             options=RunOptions(concurrency=2, progress=False))
    metrics = outcome.summary["metrics"]
    kept = {k: metrics[k] for k in KEPT if metrics.get(k) is not None}
    kept["items"] = len(dataset.items)
    kept["seconds"] = round(time.perf_counter() - started, 1)
    return kept


def rag(sizes: Sizes, work: Path, seed: int) -> dict[str, Any]:
    from agentflow.eval.formats import load_dataset
    from agentflow.eval.formats.base import Corpus
    from agentflow.tune.examples import dataset_examples, split_examples

    folder = DATA / "nq_open_oracle"
    examples = dataset_examples(folder, "nq_open_oracle", task="rag", offset=RAG_OFFSET, limit=sizes.rag_train,
                                distractors=1, seed=seed, root=work)
    split = split_examples(examples, held_out=0.125, seed=seed)
    trained = tune("rag-cite", split, work, steps=sizes.rag_steps, lr=1e-3, seed=seed, task="rag", batch_size=2)
    full = load_dataset(folder, "nq_open_oracle", work_dir=work / ".agentflow" / "eval" / "corpora")
    items = full.items[: sizes.rag_eval]
    assert not {i.id for i in items} & {e.id for e in examples}, "training and evaluation questions overlap"
    corpus = corpus_slice(items, sizes.rag_corpus, seed, work)
    dataset = replace(full, items=items, corpus=Corpus(path=corpus, field_map=full.corpus.field_map,
                                                       chunking=full.corpus.chunking, documents=sizes.rag_corpus))
    out: dict[str, Any] = {"train": trained, "eval_items": len(items), "corpus_passages": sizes.rag_corpus}
    config = work / "agentflow.yaml"
    previous = Path.cwd()
    os.chdir(work)
    try:
        config.unlink(missing_ok=True)
        out["before"] = asyncio.run(workflow_eval(dataset, work / "rag-before"))
        log(f"rag before: {out['before']}")
        config.write_text(f"models:\n  profiles:\n    local:\n      aliases:\n        large: local/{BASE}+rag-cite\n")
        out["after"] = asyncio.run(workflow_eval(dataset, work / "rag-after"))
        log(f"rag after: {out['after']}")
    finally:
        config.unlink(missing_ok=True)
        os.chdir(previous)
    return out


# 3. closed book vs RAG vs both ------------------------------------------------------------------
async def answers(entry: Any, prompts: Sequence[Sequence[dict[str, str]]]) -> list[str]:
    from agentflow.models import ModelRouter
    from agentflow.models.sampling import Sampling

    router = ModelRouter({"large": [entry]})
    gate = asyncio.Semaphore(8)

    async def one(messages: Sequence[dict[str, str]]) -> str:
        async with gate:
            reply = await router.complete("large", list(messages), sampling=Sampling(temperature=0.0, max_tokens=32))
        return reply.text

    try:
        return list(await asyncio.gather(*(one(m) for m in prompts)))
    finally:
        router.close()


def closed_book(sizes: Sizes, work: Path, seed: int) -> dict[str, Any]:
    import bm25s

    from agentflow.eval.formats import load_dataset
    from agentflow.eval.metrics import answer_contains
    from agentflow.tune.examples import TrainExample, qa_prompt, rag_prompt, read_corpus, split_examples

    folder = DATA / "nq_open_oracle"
    data = load_dataset(folder, "nq_open_oracle", work_dir=work / ".agentflow" / "eval" / "corpora")
    items = [i for i in data.items[CLOSED_OFFSET: CLOSED_OFFSET + sizes.closed_questions] if i.gold.doc_ids]
    corpus = read_corpus(data.corpus.path, data.corpus.field_map)
    passages = list(dict.fromkeys(d for i in items for d in i.gold.doc_ids if d in corpus))
    texts = [TrainExample(f"{corpus[d].title}\n" if corpus[d].title else "", corpus[d].text, id=d) for d in passages]
    # every passage is trained on (knowledge injection has nothing to hold out); two are reported on as well
    split = split_examples(texts, held_out=2, seed=seed)
    split = replace(split, train=split.train + split.held_out)
    steps = max(1, sizes.closed_epochs * len(texts) // 2)
    trained = tune("corpus-text", split, work, steps=steps, lr=1e-3, seed=seed, task="text", batch_size=2)
    index = bm25s.BM25()
    index.index(bm25s.tokenize([f"{corpus[d].title} {corpus[d].text}" for d in passages], show_progress=False),
                show_progress=False)
    found, _ = index.retrieve(bm25s.tokenize([i.question for i in items], show_progress=False), k=2,
                              show_progress=False)
    rag_prompts = [rag_prompt(i.question, [corpus[passages[j]] for j in row], root=ROOT)
                   for i, row in zip(items, found.tolist(), strict=True)]
    qa_prompts = [qa_prompt(i.question) for i in items]
    retrieval_hit = sum(any(passages[j] in i.gold.doc_ids for j in row)
                        for i, row in zip(items, found.tolist(), strict=True)) / len(items)
    out: dict[str, Any] = {"questions": len(items), "passages": len(passages), "train": trained,
                           "retrieval_recall_at_2": round(retrieval_hit, 3)}

    def accuracy(replies: list[str]) -> float:
        return round(sum(answer_contains(r, i.gold.answers) for r, i in zip(replies, items, strict=True))
                     / len(items), 3)

    with ModelServer(BASE, work) as entry:
        out["base_closed_book_acc"] = accuracy(asyncio.run(answers(entry, qa_prompts)))
        out["rag_acc"] = accuracy(asyncio.run(answers(entry, rag_prompts)))
    with ModelServer(f"{BASE}+corpus-text", work) as entry:
        out["closed_book_acc"] = accuracy(asyncio.run(answers(entry, qa_prompts)))
        out["both_acc"] = accuracy(asyncio.run(answers(entry, rag_prompts)))
    log(f"closed book {out['closed_book_acc']} (base {out['base_closed_book_acc']}), rag {out['rag_acc']}, "
        f"both {out['both_acc']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 10 minutes on a 2-core CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="routing,rag,closed", help="which experiments (default all three)")
    parser.add_argument("--rag-eval", type=int, metavar="N",
                        help="experiment 2: evaluate N questions (each takes the reference workflow a minute or two)")
    parser.add_argument("--reuse", action="store_true",
                        help="take the experiments already measured with these sizes from the work folder")
    parser.add_argument("--work", type=Path, help="the work folder (default $TMPDIR/agentflow-finetune)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.rag_eval:
        sizes = replace(sizes, rag_eval=args.rag_eval)
    work = (args.work or Path(tempfile.gettempdir()) / "agentflow-finetune") / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    import torch

    report: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                              f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
                              "date": time.strftime("%Y-%m-%d", time.gmtime()), "sizes": sizes.__dict__}
    for part, measure in (("routing", routing), ("rag", rag), ("closed", closed_book)):
        saved = work / f"{part}.json"
        if args.reuse and saved.is_file() and part not in parts:
            report[part] = json.loads(saved.read_text())
            log(f"{part}: reused {saved}")
        elif part in parts:
            report[part] = measure(sizes, work, args.seed)
            saved.write_text(json.dumps(report[part], indent=2) + "\n")
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    r, g, c = report.get("routing", {}), report.get("rag", {}), report.get("closed", {})
    before = g.get("before", {}).get("citation_recall")
    after = g.get("after", {}).get("citation_recall")

    def gain(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    train_s = sum(part["train"]["train_s"] for part in (r, g, c) if part)
    print(json.dumps({
        "routing_zero_shot": r.get("zero_shot"), "routing_tuned": r.get("tuned"),
        "routing_gain": gain(r.get("zero_shot"), r.get("tuned")),
        "rag_citation_recall_before": before, "rag_citation_recall_after": after,
        "rag_citation_recall_gain": gain(before, after),
        "closed_book_acc": c.get("closed_book_acc"), "rag_acc": c.get("rag_acc"), "both_acc": c.get("both_acc"),
        "train_s": round(train_s, 1),
    }))


if __name__ == "__main__":
    main()
