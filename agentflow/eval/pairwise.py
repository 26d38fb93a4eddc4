"""LLM-as-a-judge, pairwise: which of two evaluations answered each shared item better.

For every item two evaluations share (matched by id, both with an answer), the judge model sees the question
and the two answers and names the better one, or a tie; it is asked twice, with the answers in both orders.
Judges favour a position (often the first), so the two verdicts are combined: when they agree that is the
outcome, when they disagree the item is a tie. Reported:

- B's win rate over A, ties counted half, with a 95% interval (normal approximation over the per-item
  scores 1, 0.5, 0; clipped to [0, 1]);
- the position-bias rate: the share of items where the judge picked the same position both times (the
  first twice, or the second twice), i.e. where the order of the answers decided;
- a warning when the judge is of the same provider family as a candidate (judges favour their own family's
  answers): families from :func:`agentflow.models.catalog.family_of`.

:func:`judge_games` turns the verdicts into games for :mod:`agentflow.eval.ratings`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentflow.models.sampling import Sampling

Winner = Literal["A", "B", "tie"]
PAIR_PROMPT = (
    "You are an impartial judge. Compare two answers to the user's question and decide which one is "
    "better: more correct, more complete and better supported, without being longer for its own sake. "
    "The order of the answers does not matter. Reply in JSON: {\"reason\": one short sentence, "
    "\"better\": \"1\", \"2\" or \"tie\"}."
)


class PairChoice(BaseModel):
    """The judge's reply."""

    reason: str = Field(max_length=400)
    better: Literal["1", "2", "tie"]


@dataclass
class PairVerdict:
    """One item judged in both orders."""

    id: str
    question: str
    answer_a: str
    answer_b: str
    a_first: Winner
    """The winner when A was shown first (as A or B, not as a position)."""
    b_first: Winner
    """The winner when B was shown first."""
    outcome: Winner
    position_bias: bool
    """The judge picked the same position in both orders (so the order decided)."""
    reasons: list[str] = field(default_factory=list)


@dataclass
class PairwiseReport:
    """The comparison's summary and its verdicts."""

    judge: str
    name_a: str
    name_b: str
    items: int
    wins_a: int
    wins_b: int
    ties: int
    win_rate_b: float
    interval: tuple[float, float]
    position_bias_rate: float
    first_position_rate: float
    """Share of single judgments that picked the answer shown first (0.5 is position-neutral)."""
    warnings: list[str] = field(default_factory=list)
    verdicts: list[PairVerdict] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"judge": self.judge, "a": self.name_a, "b": self.name_b, "items": self.items,
                "wins_a": self.wins_a, "wins_b": self.wins_b, "ties": self.ties,
                "win_rate_b": round(self.win_rate_b, 4), "win_rate_b_low": round(self.interval[0], 4),
                "win_rate_b_high": round(self.interval[1], 4),
                "position_bias_rate": round(self.position_bias_rate, 4),
                "first_position_rate": round(self.first_position_rate, 4), "warnings": self.warnings}

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "verdicts": [asdict(v) for v in self.verdicts]}


def win_interval(scores: Sequence[float], z: float = 1.959964) -> tuple[float, float]:
    """A 95% interval of the mean of per-item scores (1 win, 0.5 tie, 0 loss), normal approximation."""
    n = len(scores)
    if n == 0:
        return 0.0, 1.0
    mean = sum(scores) / n
    variance = sum((s - mean) ** 2 for s in scores) / (n - 1) if n > 1 else 0.25
    half = z * math.sqrt(max(variance, 1e-12) / n)
    return max(0.0, mean - half), min(1.0, mean + half)


def _messages(question: str, first: str, second: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": PAIR_PROMPT},
            {"role": "user", "content": f"Question: {question}\n\nAnswer 1:\n{first}\n\nAnswer 2:\n{second}"}]


async def _ask(router: Any, judge: str, question: str, first: str, second: str) -> tuple[str, str]:
    response = await router.complete(judge, _messages(question, first, second), schema=PairChoice,
                                     sampling=Sampling(temperature=0.0, max_tokens=200),
                                     trace_data={"purpose": "pairwise judge"})
    choice = response.parsed if isinstance(response.parsed, PairChoice) else PairChoice.model_validate(
        response.parsed)
    return choice.better, choice.reason


async def judge_pair(router: Any, judge: str, item_id: str, question: str, answer_a: str,
                     answer_b: str) -> PairVerdict:
    """One item, both orders."""
    (p1, r1), (p2, r2) = await asyncio.gather(_ask(router, judge, question, answer_a, answer_b),
                                              _ask(router, judge, question, answer_b, answer_a))
    a_first: Winner = {"1": "A", "2": "B", "tie": "tie"}[p1]  # type: ignore[assignment]
    b_first: Winner = {"1": "B", "2": "A", "tie": "tie"}[p2]  # type: ignore[assignment]
    outcome: Winner = a_first if a_first == b_first else "tie"
    same_position = p1 == p2 and p1 != "tie"
    return PairVerdict(item_id, question, answer_a, answer_b, a_first, b_first, outcome, same_position, [r1, r2])


def same_family_warnings(judge_family: str | None, candidates: dict[str, set[str]], judge: str) -> list[str]:
    """A warning per candidate that shares the judge's provider family."""
    if not judge_family:
        return []
    return [f"the judge ({judge}, family {judge_family}) is of the same provider family as {name}'s model(s): "
            "judges tend to prefer answers of their own family; use a judge of another family to confirm"
            for name, families in candidates.items() if judge_family in families]


async def compare_pairwise(
    router: Any, judge: str, items: Sequence[tuple[str, str, str, str]], *, name_a: str = "A", name_b: str = "B",
    candidate_families: dict[str, set[str]] | None = None, concurrency: int = 4,
) -> PairwiseReport:
    """Judge ``items`` (``(id, question, answer_a, answer_b)``) in both orders; see the module docstring."""
    from agentflow.models.catalog import family_of

    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(item: tuple[str, str, str, str]) -> PairVerdict:
        async with limit:
            return await judge_pair(router, judge, *item)

    verdicts = list(await asyncio.gather(*(one(i) for i in items)))
    n = len(verdicts)
    wins_a = sum(v.outcome == "A" for v in verdicts)
    wins_b = sum(v.outcome == "B" for v in verdicts)
    scores = [1.0 if v.outcome == "B" else 0.5 if v.outcome == "tie" else 0.0 for v in verdicts]
    picks = [(v.a_first, "A") for v in verdicts] + [(v.b_first, "B") for v in verdicts]
    decided = [w for w, _ in picks if w != "tie"]
    first = sum(1 for w, shown in picks if w == shown)
    entry = router.chain(judge)[0].entry
    warnings = same_family_warnings(family_of(entry.model), candidate_families or {}, judge)
    return PairwiseReport(
        judge=f"{judge} ({entry.model})", name_a=name_a, name_b=name_b, items=n, wins_a=wins_a, wins_b=wins_b,
        ties=n - wins_a - wins_b, win_rate_b=sum(scores) / n if n else 0.0, interval=win_interval(scores),
        position_bias_rate=sum(v.position_bias for v in verdicts) / n if n else 0.0,
        first_position_rate=first / len(decided) if decided else 0.0, warnings=warnings, verdicts=verdicts)


def judge_games(report: PairwiseReport) -> list[tuple[str, str, float]]:
    """The verdicts as rating games ``(a, b, score of a)``."""
    score = {"A": 1.0, "B": 0.0, "tie": 0.5}
    return [(report.name_a, report.name_b, score[v.outcome]) for v in report.verdicts]
