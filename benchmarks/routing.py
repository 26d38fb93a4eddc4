"""Route accuracy of the reference workflow's ``classify`` node on other people's documents.

The ``knowledge`` label of graphs/agentic_rag.yaml takes its meaning from the collection
(``from_collection``); this measures, per corpus and per kind of message, how often the offline
classifier routes right, and picks the out-of-scope threshold on the dev split:

- corpora: the project's docs/, examples/evaluate/docs (bike sharing), examples/own_documents/handbook,
  benchmarks/answer_quality/corpus (beekeeping);
- knowledge messages: benchmarks/routing/dev_questions.jsonl (answerable and on-topic unanswerable),
  and the dev split of benchmarks/answer_quality/questions.jsonl (all four kinds, beekeeping);
- chit-chat: CLINC150's greeting, goodbye and thank_you intents;
- unrelated requests: CLINC150's out-of-scope queries and a sample of its banking, credit card,
  kitchen, home, travel and utility intents (each against every corpus).

Dev is CLINC150's ``val`` split (the threshold is chosen there), test its ``test`` split. The
baseline is this version's labels (graphs/agentic_rag.yaml at /tmp/base or ``--baseline FILE``)
without collection passages, at the default threshold. The last line printed is JSON.

    python benchmarks/routing.py [--quick] [--baseline /tmp/base/graphs/agentic_rag.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLINC = ROOT.parent / "shared" / "data" / "clinc150" / "data_full.json"
CORPORA = {
    "docs": ROOT / "docs",
    "bikes": ROOT / "examples" / "evaluate" / "docs",
    "handbook": ROOT / "examples" / "own_documents" / "handbook",
    "bees": ROOT / "benchmarks" / "answer_quality" / "corpus",
}
BEES = ROOT / "benchmarks" / "answer_quality" / "questions.jsonl"
"""benchmarks/answer_quality's questions; only its dev split is read here (test is for reporting)."""
CHITCHAT_INTENTS = ("greeting", "goodbye", "thank_you")
UNRELATED_DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "travel", "utility")
KINDS = ("answerable", "unanswerable", "chitchat", "unrelated")
EXPECTED = {"answerable": "knowledge", "unanswerable": "knowledge", "chitchat": "chitchat",
            "unrelated": "out_of_scope"}


def clinc_messages(split: str, per_domain: int, seed: int = 0) -> list[tuple[str, str]]:
    """(kind, text) pairs of CLINC150's ``split`` (val or test)."""
    data = json.loads(CLINC.read_text())
    domains = json.loads((CLINC.parent / "domains.json").read_text())
    rows = data[split]
    out = [("chitchat", t) for t, intent in rows if intent in CHITCHAT_INTENTS]
    out += [("unrelated", t) for t, _ in data[f"oos_{split}"]]
    rng = random.Random(seed)
    for domain in UNRELATED_DOMAINS:
        texts = [t for t, intent in rows if intent in domains[domain]]
        out += [("unrelated", t) for t in rng.sample(texts, per_domain)]
    return out


def classify_config(path: Path):  # noqa: ANN201 - ClassifyConfig, imported late
    from agentflow.nodes.classify import ClassifyConfig

    node = dict(yaml.safe_load(path.read_text())["nodes"]["classify"])
    node.pop("type")
    return ClassifyConfig.model_validate(node)


async def open_corpora(base: Path) -> dict[str, object]:
    from agentflow.retrieval.catalog import CollectionSpec, ensure_collection, open_retriever
    from agentflow.retrieval.chunking import ChunkingConfig

    retrievers = {}
    for name, folder in CORPORA.items():
        spec = CollectionSpec(name=name, sources=(str(folder),),
                              chunking=ChunkingConfig(chunker="markdown", size=120, overlap=20))
        await ensure_collection(spec, base_dir=base, progress=False)
        retrievers[name] = open_retriever(spec, base_dir=base)
    return retrievers


async def score(model, cfg, retrievers, corpus: str, text: str, *, passages: bool):  # noqa: ANN001,ANN201
    """The classifier's prediction, before any threshold."""
    found = {}
    if passages:
        found = {label: await retrievers[corpus].search(text, cfg.passages)
                 for label in cfg.collections()}
    labels = cfg.label_list(found)
    from agentflow.models.offline.model import passage_units
    from agentflow.models.types import PromptInputs

    units = {label.name: passage_units(label.passages) for label in labels if label.passages}

    classifier = model.classifier(PromptInputs(task="classify", query=text, labels=labels))
    return classifier.predict([text], threshold=None, passages=units)[0]


def accuracy(rows: list[tuple[str, str, object]], threshold: float) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for kind, _corpus, pred in rows:
        label = pred.top[0][0] if pred.score >= threshold else "out_of_scope"
        hits[kind].append(label == EXPECTED[kind])
    return {k: round(float(np.mean(hits[k])), 3) for k in KINDS if hits[k]}


def balanced(acc: dict[str, float]) -> float:
    knowledge = (acc["answerable"] + acc["unanswerable"]) / 2
    return (knowledge + acc["chitchat"] + acc["unrelated"]) / 3


async def run(args: argparse.Namespace) -> dict[str, object]:
    from agentflow.models.offline import OfflineModel
    from agentflow.models.offline.classifier import DEFAULT_THRESHOLD, PASSAGE_THRESHOLD

    model = OfflineModel()
    cfg = classify_config(ROOT / "graphs" / "agentic_rag.yaml")
    questions = [json.loads(line) for line in
                 (ROOT / "benchmarks" / "routing" / "dev_questions.jsonl").read_text().splitlines()]
    if BEES.exists():
        bees = [json.loads(line) for line in BEES.read_text().splitlines() if line.strip()]
        questions += [{**q, "corpus": "bees"} for q in bees if q["split"] == "dev"]
    per_domain = 4 if args.quick else 12
    with tempfile.TemporaryDirectory() as tmp:
        retrievers = await open_corpora(Path(tmp))
        splits = {}
        for split in ("val", "test"):
            messages = clinc_messages(split, per_domain)
            if args.quick:
                messages = messages[::3]
            rows = [(q["kind"], q["corpus"], q["question"]) for q in questions]
            rows += [(kind, corpus, text) for kind, text in messages for corpus in CORPORA]
            splits[split] = rows
        results: dict[str, object] = {}
        for name, use_passages, config in (
            ("collection", True, cfg),
            *((("baseline", False, classify_config(args.baseline)),) if args.baseline else ()),
        ):
            scored = {split: [(k, c, await score(model, config, retrievers, c, t, passages=use_passages))
                              for k, c, t in rows] for split, rows in splits.items()}
            if use_passages:
                grid = np.round(np.arange(0.2, 0.6, 0.01), 2)
                best = max(grid, key=lambda th: balanced(accuracy(scored["val"], float(th))))
                results["chosen_threshold"] = float(best)
                results["shipped_threshold"] = PASSAGE_THRESHOLD
                threshold = PASSAGE_THRESHOLD
            else:
                threshold = DEFAULT_THRESHOLD
            for split in ("val", "test"):
                acc = accuracy(scored[split], threshold)
                results[f"{name}_{split}"] = acc
                for corpus in CORPORA:
                    results[f"{name}_{split}_{corpus}"] = accuracy(
                        [r for r in scored[split] if r[1] == corpus], threshold)
            if use_passages:
                sample = {k: [round(p.score, 3) for kk, _, p in scored["val"] if kk == k][:400]
                          for k in KINDS}
                results["score_quantiles_val"] = {
                    k: [round(float(np.quantile(v, q)), 3) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]
                    for k, v in sample.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the CLINC messages")
    parser.add_argument("--baseline", type=Path, default=Path("/tmp/base/graphs/agentic_rag.yaml"))
    args = parser.parse_args()
    # the sentence vectors are cached outside the checkout, which stays clean of .agentflow/
    os.environ.setdefault("AGENTFLOW_EMBEDDING_CACHE",
                          str(Path(tempfile.gettempdir()) / "agentflow-routing-embeddings.db"))
    if args.baseline and not args.baseline.exists():
        print(f"no baseline workflow at {args.baseline}; skipping the baseline", file=sys.stderr)
        args.baseline = None
    results = asyncio.run(run(args))
    for key, value in results.items():
        print(f"{key:32} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
