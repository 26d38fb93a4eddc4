"""Ratings from pairwise outcomes: Bradley-Terry strengths on the Elo scale, with bootstrap intervals.

Arenas rank models by fitting a Bradley-Terry model to head-to-head votes and reporting it on the Elo scale
(``P(i beats j) = 1 / (1 + 10 ** ((r_j - r_i) / 400))``); this does the same for agentflow's pairs:

- judge pairs (:mod:`agentflow.eval.pairwise`): each item two evaluations (or variants) share, judged in
  both orders, one outcome;
- feedback pairs: runs of served A/B variants (run tag ``variant``) that got thumbs up or down, matched
  per pair of variants in time order: up against down is a win, two ups or two downs a tie.

A tie counts as half a win for each side. The fit is Hunter's MM algorithm (2004) with a weak prior (one
virtual tie of every player against an average one), so a player who won or lost every game still gets a
finite rating; ratings are centred on 1000. Intervals are the 2.5 and 97.5 percentiles of ratings refitted
on games resampled with replacement (seeded).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Game = tuple[str, str, float]
"""``(a, b, score of a)``: 1 a won, 0 b won, 0.5 a tie."""
SCALE = 400.0 / math.log(10.0)
CENTRE = 1000.0


@dataclass(frozen=True)
class Rating:
    """One player's rating, its 95% interval, and the games behind it."""

    player: str
    rating: float
    low: float
    high: float
    games: int
    wins: float
    """Wins, ties counted as half."""

    def as_dict(self) -> dict[str, Any]:
        return {"player": self.player, "rating": round(self.rating, 1), "low": round(self.low, 1),
                "high": round(self.high, 1), "games": self.games, "wins": self.wins}


def bradley_terry(games: Sequence[Game], *, iterations: int = 500, prior: float = 1.0) -> dict[str, float]:
    """Ratings on the Elo scale (mean ``CENTRE``) of the players in ``games``."""
    players = sorted({p for a, b, _ in games for p in (a, b)})
    if not players:
        return {}
    wins = {p: prior / 2 for p in players}  # the prior: half a win and half a loss against a virtual average
    pairs: dict[tuple[str, str], float] = {}
    for a, b, score in games:
        if score not in (0.0, 0.5, 1.0):
            raise ValueError(f"a game's score must be 1, 0.5 or 0, got {score!r}")
        wins[a] += score
        wins[b] += 1.0 - score
        key = (a, b) if a < b else (b, a)
        pairs[key] = pairs.get(key, 0.0) + 1.0
    strength = {p: 1.0 for p in players}
    for _ in range(iterations):
        new = {}
        for p in players:
            denominator = prior / (strength[p] + 1.0)  # the virtual games against strength 1
            for (a, b), n in pairs.items():
                if p in (a, b):
                    other = b if p == a else a
                    denominator += n / (strength[p] + strength[other])
            new[p] = wins[p] / denominator
        mean_log = sum(math.log(v) for v in new.values()) / len(new)
        new = {p: v / math.exp(mean_log) for p, v in new.items()}
        done = max(abs(math.log(new[p] / strength[p])) for p in players) < 1e-10
        strength = new
        if done:
            break
    return {p: CENTRE + SCALE * math.log(strength[p]) for p in players}


def ratings(games: Sequence[Game], *, bootstrap: int = 200, seed: int = 0) -> list[Rating]:
    """Bradley-Terry ratings with bootstrap 95% intervals, best first."""
    point = bradley_terry(games)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {p: [] for p in point}
    for _ in range(bootstrap if games else 0):
        fitted = bradley_terry([games[rng.randrange(len(games))] for _ in games])
        for p in point:
            samples[p].append(fitted.get(p, CENTRE))
    out = []
    for p, value in point.items():
        values = sorted(samples[p]) or [value]
        low = values[int(0.025 * (len(values) - 1))]
        high = values[int(math.ceil(0.975 * (len(values) - 1)))]
        played = [(a, b, s) for a, b, s in games if p in (a, b)]
        won = sum(s if a == p else 1.0 - s for a, b, s in played)
        out.append(Rating(p, value, low, high, len(played), won))
    return sorted(out, key=lambda r: -r.rating)


def expected(rating_a: float, rating_b: float) -> float:
    """The probability the Elo scale gives ``a`` of beating ``b``."""
    return 1.0 / (1.0 + 10 ** ((rating_b - rating_a) / 400.0))


def feedback_games(runs: Iterable[Any], *, key: str = "variant") -> list[Game]:
    """Games between the variants of rated runs (:class:`~agentflow.tracing.query.RunSummary` with ``tags``,
    ``feedback_up``, ``feedback_down``): per pair of variants, their rated runs matched in time order."""
    by_variant: dict[str, list[tuple[float, int]]] = {}
    for run in runs:
        variant = (run.tags or {}).get(key)
        net = run.feedback_up - run.feedback_down
        if variant is None or net == 0:
            continue
        by_variant.setdefault(variant, []).append((run.started, 1 if net > 0 else -1))
    for rated in by_variant.values():
        rated.sort()
    names = sorted(by_variant)
    games: list[Game] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for (_, va), (_, vb) in zip(by_variant[a], by_variant[b], strict=False):
                games.append((a, b, 0.5 if va == vb else (1.0 if va > vb else 0.0)))
    return games
