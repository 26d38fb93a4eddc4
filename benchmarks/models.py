"""Models: the routed call path against raw LiteLLM, and the offline classifier on CLINC150.

    python benchmarks/models.py [--quick]

1. ``call_path_ratio``: calls per second through the full router path (alias resolution, the
   response cache consulted and missing and storing, retries armed through tenacity, a per-call
   timeout, token and cost accounting, a ``model_call`` trace event per call) over raw
   ``litellm.acompletion``, both on LiteLLM mock responses, interleaved in rounds in this run
   (budget >= 0.8).
2. The offline classifier (all-MiniLM-L6-v2 embeddings, discriminatively fitted prototypes) on
   ../shared/data/clinc150: fitted on train, out-of-scope threshold calibrated on the in-scope
   part of val to keep 95% of it, scored on test: ``clinc_intent_acc`` (150 intents, goal >= 0.92),
   ``clinc_domain_acc`` (10 domains, the domain of the predicted intent, goal >= 0.97) and
   ``clinc_oos_recall`` (out-of-scope test queries rejected). MiniLM 1-NN and class-centroid
   baselines are computed on the same embeddings; the references measured here are printed beside.

Embeddings are cached under benchmarks/.cache/. Without a cache, ``--quick`` embeds a stratified
subset (20 train / 4 val / 6 test queries per intent, 200 out-of-scope) to stay under a minute;
``--cache-dir`` points the cache elsewhere (an empty folder shows the uncached timing).
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from agentflow.graph.context import NodeTracer
from agentflow.models import ModelEntry, ModelRouter, ResponseCache, RetryConfig, Sampling
from agentflow.models.embeddings import MiniLMEmbedder
from agentflow.models.offline import EmbeddingClassifier

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "clinc150"
CACHE = ROOT / ".cache"  # replaced by --cache-dir
REFERENCES = {  # ../shared/README.md, CLINC150 test, measured on this kind of machine
    "tfidf_logreg": {"intent": 0.910, "domain": 0.959},
    "minilm_1nn": {"intent": 0.880, "domain": 0.954, "oos_recall_at_95": 0.795},
    "minilm_centroid": {"intent": 0.917},
}
MOCK = "Qdrant is a vector database written in Rust [DOC 1]."


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# 1. the call path ------------------------------------------------------------------------------
async def call_path(rounds: int, calls: int) -> dict[str, float]:
    import litellm

    litellm.suppress_debug_info = True
    events: list[Any] = []
    tracer = NodeTracer(run_id="bench", parent_id="bench/node", node="answer",
                        emit_event=lambda e: events.append(e) if len(events) < 10_000 else None)
    with tempfile.TemporaryDirectory() as tmp:
        router = ModelRouter(
            {"large": [ModelEntry(model="openai/gpt-4o-mini", mock_response=MOCK)]},
            retries=RetryConfig(max_attempts=3),
            cache=ResponseCache(Path(tmp) / "cache.db", "write"),
        )
        sampling = Sampling(temperature=0.2, max_tokens=64)
        counter = iter(range(10**9))

        def messages() -> list[dict[str, str]]:  # unique, so every call misses the cache
            return [{"role": "system", "content": "Answer from the documents."},
                    {"role": "user", "content": f"Question {next(counter)}: what is Qdrant?"}]

        async def raw() -> None:
            await litellm.acompletion(model="openai/gpt-4o-mini", messages=messages(),
                                      mock_response=MOCK, temperature=0.2, max_tokens=64)

        async def routed() -> None:
            await router.complete("large", messages(), sampling=sampling, tracer=tracer, node="answer")

        for fn in (raw, routed):  # warm both paths up
            for _ in range(10):
                await fn()
        # Calls alternate one by one, so both paths see the same machine (other processes,
        # LiteLLM's background logging tasks); each round sums its calls per path.
        raw_s: list[float] = []
        routed_s: list[float] = []
        clock = time.perf_counter
        for _ in range(rounds):
            spent = {raw: 0.0, routed: 0.0}
            for _ in range(calls):
                for fn in (raw, routed):
                    started = clock()
                    await fn()
                    spent[fn] += clock() - started
            raw_s.append(spent[raw])
            routed_s.append(spent[routed])
        assert router.cache is not None and len(router.cache) >= rounds * calls  # every call missed
        ratios = [r / o for r, o in zip(raw_s, routed_s, strict=True)]
    return {
        "raw_calls_per_s": round(calls * rounds / sum(raw_s), 1),
        "routed_calls_per_s": round(calls * rounds / sum(routed_s), 1),
        "call_path_ratio": round(sum(raw_s) / sum(routed_s), 3),
        "call_path_ratio_median_round": round(statistics.median(ratios), 3),
        "routed_overhead_us": round((sum(routed_s) - sum(raw_s)) / (calls * rounds) * 1e6, 1),
    }


# 2. CLINC150 -----------------------------------------------------------------------------------
def load_clinc(quick_subset: bool) -> dict[str, list[tuple[str, str]]]:
    data = json.loads((DATA / "data_full.json").read_text(encoding="utf-8"))
    splits = {s: [tuple(x) for x in data[s]] for s in ("train", "val", "test", "oos_val", "oos_test")}
    if quick_subset:
        per_intent = {"train": 20, "val": 4, "test": 6}
        for split, k in per_intent.items():
            seen: dict[str, int] = {}
            kept = []
            for text, label in splits[split]:
                if seen.get(label, 0) < k:
                    seen[label] = seen.get(label, 0) + 1
                    kept.append((text, label))
            splits[split] = kept
        splits["oos_test"] = splits["oos_test"][:200]
    return splits  # type: ignore[return-value]


def embed(encoder: MiniLMEmbedder, name: str, texts: list[str]) -> np.ndarray:
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"clinc150_minilm_{name}_{digest}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    log(f"  embedded {len(texts)} {name} queries in {time.perf_counter() - started:.1f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def cached(splits: list[str]) -> bool:
    return any(CACHE.glob("clinc150_minilm_train_*.npy")) and all(
        any(CACHE.glob(f"clinc150_minilm_{s}_*.npy")) for s in splits)


def clinc(quick: bool) -> dict[str, Any]:
    names = ["train", "val", "test", "oos_test"]
    subset = quick and not cached(names)
    splits = load_clinc(subset)
    domains = json.loads((DATA / "domains.json").read_text(encoding="utf-8"))
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}
    encoder = MiniLMEmbedder()
    vec = {s: embed(encoder, s + ("_quick" if subset else ""), [t for t, _ in splits[s]]) for s in names}
    labels = sorted({label for _, label in splits["train"]})
    index = {label: i for i, label in enumerate(labels)}
    y = {s: np.array([index[l] for _, l in splits[s]]) for s in ("train", "val", "test")}

    started = time.perf_counter()
    classifier = EmbeddingClassifier(encoder).fit_vectors(labels, vec["train"], y["train"])
    fit_s = time.perf_counter() - started
    threshold = classifier.calibrate(vec["val"], retention=0.95)
    predicted = np.argmax(classifier.scores(vec["test"]), axis=1)
    best_in = classifier.scores(vec["test"]).max(axis=1)
    best_oos = classifier.scores(vec["oos_test"]).max(axis=1)

    def domain_acc(pred: np.ndarray) -> float:
        return float(np.mean([domain_of[labels[p]] == domain_of[labels[t]] for p, t in zip(pred, y["test"])]))

    # baselines on the same embeddings: 1-NN and class centroid, threshold calibrated the same way
    nn_train = vec["train"]
    nn = y["train"][np.argmax(vec["test"] @ nn_train.T, axis=1)]
    nn_threshold = np.quantile((vec["val"] @ nn_train.T).max(axis=1), 0.05)
    nn_oos = float(np.mean((vec["oos_test"] @ nn_train.T).max(axis=1) < nn_threshold))
    centroid = EmbeddingClassifier(encoder, fit_min_examples=10**9).fit_vectors(labels, vec["train"], y["train"])
    centroids = centroid._centroids  # the prototypes alone, without the nearest-example term
    cen = np.argmax(vec["test"] @ centroids.T, axis=1)
    return {
        "clinc_intent_acc": round(float(np.mean(predicted == y["test"])), 4),
        "clinc_domain_acc": round(domain_acc(predicted), 4),
        "clinc_oos_recall": round(float(np.mean(best_oos < threshold)), 4),
        "clinc_inscope_retention_test": round(float(np.mean(best_in >= threshold)), 4),
        "clinc_threshold": round(threshold, 4),
        "clinc_fit_s": round(fit_s, 2),
        "clinc_subset": subset,
        "clinc_counts": {s: len(splits[s]) for s in names},
        "baseline_1nn": {"intent": round(float(np.mean(nn == y["test"])), 4),
                         "domain": round(domain_acc(nn), 4), "oos_recall_at_95": round(nn_oos, 4)},
        "baseline_centroid": {"intent": round(float(np.mean(cen == y["test"])), 4),
                              "domain": round(domain_acc(cen), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls; a CLINC subset if not cached")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: benchmarks/.cache)")
    args = parser.parse_args()
    if args.cache_dir is not None:
        global CACHE
        CACHE = args.cache_dir
    started = time.perf_counter()
    log(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    log("1. call path: router (cache miss + store, retries armed, timeout, tracing) vs raw litellm")
    results: dict[str, Any] = {"quick": args.quick}
    results.update(asyncio.run(call_path(rounds=3 if args.quick else 6, calls=60 if args.quick else 300)))
    log(f"  raw {results['raw_calls_per_s']} calls/s, routed {results['routed_calls_per_s']} calls/s, "
        f"ratio {results['call_path_ratio']} (budget >= 0.8), "
        f"overhead {results['routed_overhead_us']} us/call")

    log("2. offline classifier on CLINC150 (fit on train, threshold on val, scored on test)")
    results.update(clinc(args.quick))
    ref = REFERENCES
    log(f"  {'':28s} {'intent':>7s} {'domain':>7s} {'oos@95':>7s}")
    log(f"  {'agentflow offline classifier':28s} {results['clinc_intent_acc']:7.3f} "
        f"{results['clinc_domain_acc']:7.3f} {results['clinc_oos_recall']:7.3f}"
        f"   (test in-scope kept: {results['clinc_inscope_retention_test']:.3f})")
    b1, bc = results["baseline_1nn"], results["baseline_centroid"]
    log(f"  {'MiniLM 1-NN, this run':28s} {b1['intent']:7.3f} {b1['domain']:7.3f} {b1['oos_recall_at_95']:7.3f}")
    log(f"  {'MiniLM centroid, this run':28s} {bc['intent']:7.3f} {bc['domain']:7.3f} {'':>7s}")
    log(f"  {'ref: TF-IDF + logreg':28s} {ref['tfidf_logreg']['intent']:7.3f} {ref['tfidf_logreg']['domain']:7.3f}")
    log(f"  {'ref: MiniLM 1-NN':28s} {ref['minilm_1nn']['intent']:7.3f} {ref['minilm_1nn']['domain']:7.3f} "
        f"{ref['minilm_1nn']['oos_recall_at_95']:7.3f}")
    log(f"  {'ref: MiniLM centroid':28s} {ref['minilm_centroid']['intent']:7.3f}")
    log(f"  goals: intent >= 0.92, domain >= 0.97; total {time.perf_counter() - started:.1f} s")
    results["references"] = REFERENCES
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
