"""Hallucination-check benchmark: HaluEval QA, SciFact support vs contradiction, self-consistency.

    python benchmarks/checks.py [--quick] [--data ../shared/data]

1. HaluEval QA (500 rows of knowledge, question, right answer, hallucinated answer). Each answer
   goes through the ``faithfulness`` check with the offline judge (MiniLM + lexical support; not an
   LLM), against the row's knowledge as the one retrieved document. Rows 0-249 are the tuning split
   (the claim form, answer alone vs. question + answer, and the threshold were chosen there); rows
   250-499 are the held-out split every reported number comes from.
   ``halueval_acc``: the right answer gets the higher support score than the hallucinated one
   (pairwise; a tie counts half). ``halueval_binary_acc``: HaluEval's per-answer protocol, each of
   the 500 held-out answers classified faithful when the check passes with the claim threshold
   tuned on the tuning split. Baselines beside it: always-faithful (0.5) and answer-length.
2. SciFact claims with their rationale sentences (evidence sets labelled SUPPORT or CONTRADICT):
   the claim is checked against the rationale sentences. ``scifact_support_auc`` is the ROC AUC of
   the support score for SUPPORT over CONTRADICT on dev (338 sets; accuracy at the threshold tuned
   on train's 957 sets beside it); ``scifact_evidence_auc`` separates the rationale from the
   same number of sentences of an unrelated abstract, which is what the offline judge can do.
3. ``self_consistency_ratio``: the latency of drawing N=8 samples (and measuring their agreement)
   through the router from a simulated model that answers in 200 ms and cannot return n samples in
   one request (so 8 concurrent requests), over the latency of one sample; the budget is 1.3.
   ``self_consistency_ratio_n``: the same for a model that returns n samples in one request.

--quick runs the full held-out splits with embeddings cached under benchmarks/.cache/ (the first
run computes them), and fewer latency repetitions. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agentflow.checks import Judge, faithfulness, sample_answers, self_consistency  # noqa: E402
from agentflow.documents import Chunk  # noqa: E402
from agentflow.models import ModelRouter, RetryConfig, build_router  # noqa: E402
from agentflow.models.types import ChatRequest  # noqa: E402
from agentflow.testing.models import FakeChatModel  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "checks_minilm.npz"
TUNE, HELD_OUT = slice(0, 250), slice(250, 500)


class CachedMiniLM:
    """MiniLM with a persistent cache; ``recording`` mode returns zeros and notes the texts, so a
    dry run can collect every text the judge will embed and one batch computes them."""

    name = "offline/minilm"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.warm = path.exists()
        """A cache from an earlier run: no dry runs (the few new texts are embedded as they come)."""
        if self.warm:
            data = np.load(path, allow_pickle=False)
            self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
        self.recording = False
        self.wanted: set[str] = set()
        self.computed = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.recording:
            self.wanted.update(t for t in texts if t not in self.vectors)
            return np.zeros((len(texts), 384), dtype=np.float32)
        self.compute([t for t in texts if t not in self.vectors])
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def compute(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if not missing:
            return
        from agentflow.models.embeddings import MiniLMEmbedder

        for text, vector in zip(missing, MiniLMEmbedder(batch_size=128).encode(missing), strict=True):
            self.vectors[text] = vector
        self.computed += len(missing)

    def save(self) -> None:
        if self.computed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            texts = list(self.vectors)
            np.savez(self.path, texts=np.array(texts), vectors=np.stack([self.vectors[t] for t in texts]))


Item = tuple[str, str, str]
"""(question, answer, passage); the question may be empty."""


async def support_scores(judge: Judge, items: Sequence[Item]) -> list[float]:
    """The mean claim support of each answer given its passage, through the faithfulness check."""
    async def one(question: str, answer: str, passage: str) -> float:
        result = await faithfulness(answer, [Chunk(id="k", text=passage)], judge,
                                    question=question, abstention="pass")
        claims = result.details.get("claims") or []
        return float(np.mean([c["score"] for c in claims])) if claims else 0.0

    return list(await asyncio.gather(*(one(*item) for item in items)))


async def scored(encoder: CachedMiniLM, items: Sequence[Item]) -> list[float]:
    """Support scores; on a cold cache a dry run first collects the texts to embed in one batch
    (with a warm one, the few new texts are embedded as they come)."""
    judge = Judge(build_router(None, env={}, encoder=encoder))  # type: ignore[arg-type]
    if not encoder.warm:
        encoder.recording = True
        await support_scores(judge, items)
        encoder.recording = False
        encoder.compute(sorted(encoder.wanted))
        encoder.wanted.clear()
    return await support_scores(judge, items)


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    candidates = sorted(set(scores))
    accuracy = [np.mean([(s >= t) == y for s, y in zip(scores, labels, strict=True)]) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def accuracy_at(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> float:
    return float(np.mean([(s >= threshold) == y for s, y in zip(scores, labels, strict=True)]))


async def halueval(encoder: CachedMiniLM, data: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (data / "halueval_qa" / "qa_one-turn_data.json").open()]
    out: dict[str, Any] = {}
    scores: dict[str, list[float]] = {}
    for split, part in (("tune", rows[TUNE]), ("test", rows[HELD_OUT])):
        items = [(r["question"], r[key], r["knowledge"]) for r in part
                 for key in ("right_answer", "hallucinated_answer")]
        scores[split] = await scored(encoder, items)
    for split in ("tune", "test"):
        s = scores[split]
        right, wrong = s[0::2], s[1::2]
        out[f"{split}_pairwise"] = float(np.mean([(a > b) + 0.5 * (a == b) for a, b in zip(right, wrong, strict=True)]))
    labels = [True, False] * 250
    threshold = best_threshold(scores["tune"], labels)
    held = rows[HELD_OUT]
    lengths = [len(r[k].split()) for r in held for k in ("right_answer", "hallucinated_answer")]
    shorter = np.mean([(a < b) + 0.5 * (a == b) for a, b in zip(lengths[0::2], lengths[1::2], strict=True)])
    out.update(
        halueval_acc=round(out.pop("test_pairwise"), 4),
        halueval_tune_acc=round(out.pop("tune_pairwise"), 4),
        halueval_binary_acc=round(accuracy_at(scores["test"], labels, threshold), 4),
        halueval_claim_threshold=round(threshold, 4),
        halueval_baseline_shorter_answer=round(float(shorter), 4),
        halueval_baseline_always_faithful=0.5,
    )
    return out


def scifact_sets(data: Path, split: str, corpus: dict[int, list[str]]) -> list[tuple[str, str, bool, str]]:
    """(claim, rationale passage, is SUPPORT, unrelated passage) per evidence set."""
    rng = random.Random(13)
    ids = sorted(corpus)
    out = []
    for line in (data / "scifact" / f"claims_{split}.jsonl").open():
        row = json.loads(line)
        for doc_id, sets in row["evidence"].items():
            abstract = corpus[int(doc_id)]
            for ev in sets:
                passage = " ".join(abstract[i] for i in ev["sentences"])
                other = corpus[rng.choice(ids)]
                start = rng.randrange(max(1, len(other) - len(ev["sentences"])))
                unrelated = " ".join(other[start:start + len(ev["sentences"])])
                out.append((row["claim"], passage, ev["label"] == "SUPPORT", unrelated))
    return out


async def scifact(encoder: CachedMiniLM, data: Path) -> dict[str, Any]:
    corpus = {}
    for line in (data / "scifact" / "corpus.jsonl").open():
        doc = json.loads(line)
        corpus[int(doc["doc_id"])] = doc["abstract"]
    result: dict[str, Any] = {}
    train, dev = scifact_sets(data, "train", corpus), scifact_sets(data, "dev", corpus)
    train_scores = await scored(encoder, [("", c, p) for c, p, _, _ in train])
    dev_scores = await scored(encoder, [("", c, p) for c, p, _, _ in dev])
    dev_unrelated = await scored(encoder, [("", c, u) for c, _, _, u in dev])
    threshold = best_threshold(train_scores, [y for _, _, y, _ in train])
    support = [s for s, (_, _, y, _) in zip(dev_scores, dev, strict=True) if y]
    contra = [s for s, (_, _, y, _) in zip(dev_scores, dev, strict=True) if not y]
    majority = max(len(support), len(contra)) / len(dev)
    result.update(
        scifact_support_auc=round(auc(support, contra), 4),
        scifact_support_acc=round(accuracy_at(dev_scores, [y for _, _, y, _ in dev], threshold), 4),
        scifact_majority_baseline=round(majority, 4),
        scifact_evidence_auc=round(auc(dev_scores, dev_unrelated), 4),
        scifact_sets={"train": len(train), "dev_support": len(support), "dev_contradict": len(contra)},
    )
    return result


def slow_model(kind: str, delay: float) -> FakeChatModel:
    async def respond(request: ChatRequest) -> str:
        await asyncio.sleep(delay)
        return "Paris [DOC 1]." if (request.sampling.seed or 0) % 4 else "Lyon [DOC 2]."

    return FakeChatModel(respond, kind=kind, name=f"simulated-{kind}")  # type: ignore[arg-type]


async def sc_latency(kind: str, n: int, reps: int, delay: float = 0.2) -> float:
    model = slow_model(kind, delay)
    router = ModelRouter(models={"large": model}, profile="bench",
                         retries=RetryConfig(initial_wait_s=0.0, max_wait_s=0.0))
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        answers, _ = await sample_answers(router, "large", messages, n=n)  # type: ignore[arg-type]
        await self_consistency(answers)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def consistency_ratio(reps: int) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # the simulated provider drops the per-sample seed
    out: dict[str, Any] = {}
    for kind, key in (("anthropic", "self_consistency_ratio"), ("openai-compatible", "self_consistency_ratio_n")):
        one, eight = await sc_latency(kind, 1, reps), await sc_latency(kind, 8, reps)
        out[key] = round(eight / one, 4)
        out[f"{key}_latency_s"] = {"n1": round(one, 4), "n8": round(eight, 4)}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="cached embeddings, fewer repetitions")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    started = time.perf_counter()
    encoder = CachedMiniLM(CACHE)
    result: dict[str, Any] = {"quick": args.quick, "judge": "offline support judge (MiniLM + lexical)",
                              "halueval_split": "tuned on rows 0-249, reported on rows 250-499",
                              "scifact_split": "threshold tuned on train, reported on dev"}
    result.update(await halueval(encoder, args.data))
    print(f"HaluEval held-out: pairwise {result['halueval_acc']:.3f} (tune split "
          f"{result['halueval_tune_acc']:.3f}), binary {result['halueval_binary_acc']:.3f} at claim "
          f"threshold {result['halueval_claim_threshold']:.3f}; shorter-answer baseline "
          f"{result['halueval_baseline_shorter_answer']:.3f}")
    result.update(await scifact(encoder, args.data))
    print(f"SciFact dev: SUPPORT vs CONTRADICT AUC {result['scifact_support_auc']:.3f}, accuracy "
          f"{result['scifact_support_acc']:.3f} (majority {result['scifact_majority_baseline']:.3f}); "
          f"rationale vs unrelated AUC {result['scifact_evidence_auc']:.3f}")
    encoder.save()
    result.update(await consistency_ratio(3 if args.quick else 7))
    print(f"self-consistency N=8 over N=1: {result['self_consistency_ratio']:.3f} (concurrent), "
          f"{result['self_consistency_ratio_n']:.3f} (one request with n); budget 1.3")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["embeddings_computed"] = encoder.computed
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
