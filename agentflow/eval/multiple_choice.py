"""Multiple-choice benchmarks: accuracy of a model alias on ``mcq`` items, with its 95% interval.

Two ways to ask, as lm-evaluation-harness and the API leaderboards do:

- ``loglik``: each choice's log-likelihood after the question, ``log p(" " + choice | prompt)``, from the
  model's prompt log-probabilities (``/v1/completions`` with ``echo``: agentflow's model server, vLLM); the item's
  choices go in one request, so the model server scores them in one batched pass over the shared question. The
  prediction is the most likely choice (``accuracy``); ``accuracy_norm`` divides by the choice's length in
  characters first (lm-eval's ``acc_norm``), which favours long choices less.
- ``letter``: the choices lettered A, B, ... in a chat message and the model's reply's first letter (held to
  the letters by a regex where the model's server takes grammars); any chat model, API ones included.

``auto`` takes ``loglik`` for an OpenAI-compatible server (the model server, vLLM) and ``letter`` otherwise.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agentflow.eval.formats.base import Item
from agentflow.eval.formats.mcq import LETTERS, choices_of
from agentflow.models.logprobs import RouterScorer, continuation_tokens
from agentflow.models.sampling import Sampling
from agentflow.models.types import OutputConstraint

Scoring = Literal["auto", "loglik", "letter"]
SCORINGS: tuple[str, ...] = ("auto", "loglik", "letter")
LETTER_SYSTEM = "Answer the multiple-choice question with the letter of the right choice only."


@dataclass
class ChoiceOutcome:
    """One item: what the model preferred and whether it was right."""

    id: str
    question: str
    choices: list[str]
    right: int
    predicted: int | None
    correct: bool
    logliks: list[float] | None = None
    predicted_norm: int | None = None
    reply: str | None = None


@dataclass
class McqReport:
    """Accuracy over the items, its Wilson 95% interval, and each item's outcome."""

    model: str
    scoring: str
    items: int
    correct: int
    accuracy: float
    interval: tuple[float, float]
    accuracy_norm: float | None
    chance: float
    seconds_per_item: float
    outcomes: list[ChoiceOutcome] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """The summary as ``metrics.json`` holds it."""
        return {"model": self.model, "scoring": self.scoring, "items": self.items, "correct": self.correct,
                "accuracy": round(self.accuracy, 4), "accuracy_low": round(self.interval[0], 4),
                "accuracy_high": round(self.interval[1], 4),
                "accuracy_norm": None if self.accuracy_norm is None else round(self.accuracy_norm, 4),
                "chance": round(self.chance, 4), "seconds_per_item": round(self.seconds_per_item, 3)}

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per item (``results.jsonl``)."""
        return [asdict(o) for o in self.outcomes]


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); ``(0, 1)`` for no trials."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def loglik_prompt(item: Item) -> str:
    """The text each choice continues (after one space)."""
    context = item.inputs.get("context")
    head = f"{context}\n\n" if context else ""
    return f"{head}Question: {item.inputs['question']}\nAnswer:"


def letter_message(item: Item) -> str:
    """The user message of the letter scoring: context, question, lettered choices."""
    choices, _ = choices_of(item)
    context = item.inputs.get("context")
    lines = [f"Context: {context}", ""] if context else []
    lines += [f"Question: {item.inputs['question']}"]
    lines += [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    lines += ["Answer:"]
    return "\n".join(lines)


def resolve_scoring(router: Any, alias: str, scoring: Scoring) -> str:
    """``auto`` as ``loglik`` for an OpenAI-compatible server (agentflow's model server, vLLM), else ``letter``."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring {scoring!r} is not valid; valid: {', '.join(SCORINGS)}")
    if scoring != "auto":
        return scoring
    entry = router.chain(alias)[0].entry
    return "loglik" if entry.provider_kind() == "openai-compatible" else "letter"


async def _loglik(scorer: RouterScorer, item: Item) -> ChoiceOutcome:
    choices, right = choices_of(item)
    prompt = loglik_prompt(item)
    # the question alone too: each choice's tokens are the difference (it shares the whole prompt: ~free)
    bare, *scored = await scorer.score([prompt] + [f"{prompt} {c}" for c in choices])
    logliks = [s.tail_logprob(continuation_tokens(bare, s)) for s in scored]
    best = max(range(len(choices)), key=lambda i: logliks[i])
    best_norm = max(range(len(choices)), key=lambda i: logliks[i] / max(len(choices[i]), 1))
    return ChoiceOutcome(item.id, str(item.inputs["question"]), choices, right, best, best == right,
                         logliks=[round(v, 4) for v in logliks], predicted_norm=best_norm)


async def _letter(router: Any, alias: str, item: Item) -> ChoiceOutcome:
    choices, right = choices_of(item)
    letters = LETTERS[: len(choices)]
    entry = router.chain(alias)[0].entry
    constraint = OutputConstraint(kind="regex", pattern=f"[{letters}]", name="letter") if entry.grammars else None
    messages = [{"role": "system", "content": LETTER_SYSTEM}, {"role": "user", "content": letter_message(item)}]
    response = await router.complete(alias, messages, sampling=Sampling(temperature=0.0, max_tokens=4),
                                     constraint=constraint)
    match = re.search(rf"\b([{letters}])\b", response.text.strip().upper()[:20])
    predicted = letters.index(match.group(1)) if match else None
    return ChoiceOutcome(item.id, str(item.inputs["question"]), choices, right, predicted, predicted == right,
                         reply=response.text)


async def score_mcq(router: Any, alias: str, items: Sequence[Item], *, scoring: Scoring = "auto",
                    concurrency: int = 4) -> McqReport:
    """Accuracy of ``alias`` on multiple-choice ``items`` (see the module docstring)."""
    if not items:
        raise ValueError("no multiple-choice items to score")
    mode = resolve_scoring(router, alias, scoring)
    scorer = RouterScorer(router, alias) if mode == "loglik" else None
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(item: Item) -> ChoiceOutcome:
        async with limit:
            if scorer is not None:
                return await _loglik(scorer, item)
            return await _letter(router, alias, item)

    started = time.perf_counter()
    outcomes = list(await asyncio.gather(*(one(item) for item in items)))
    seconds = (time.perf_counter() - started) / len(items)
    correct = sum(o.correct for o in outcomes)
    norm = None
    if mode == "loglik":
        norm = sum(o.predicted_norm == o.right for o in outcomes) / len(outcomes)
    chance = sum(1 / len(o.choices) for o in outcomes) / len(outcomes)
    name = router.chain(alias)[0].entry.model
    return McqReport(name, mode, len(outcomes), correct, correct / len(outcomes), wilson(correct, len(outcomes)),
                     norm, chance, seconds, outcomes)
