"""The paired tests behind the evaluation compare page: a real difference is told from noise,
and a speed-up that a warm cache explains is not called better."""

from __future__ import annotations

import random

import pytest

from agentflow.eval.significance import CacheUse, cache_affected, cache_notes, paired


def test_a_consistent_improvement_is_significant_and_a_coin_flip_is_not() -> None:
    rng = random.Random(7)
    a = [rng.random() for _ in range(200)]
    better = paired(a, [x + 0.05 + rng.gauss(0, 0.05) for x in a])
    assert better.significant and better.p_value < 0.01
    assert better.ci_low > 0 and better.verdict(higher_is_better=True) == "better"
    assert better.verdict(higher_is_better=False) == "worse"
    noise = paired(a, [x + rng.gauss(0, 0.2) for x in a])
    assert not noise.significant and noise.verdict(True) == "within noise"
    assert noise.ci_low < 0 < noise.ci_high
    assert paired(a, a).verdict(True) == "same"


def test_small_samples_are_tested_exactly_or_not_at_all() -> None:
    # 6 items all better by 1: the exact sign-flip p-value is 2 / 2**6
    six = paired([0] * 6, [1] * 6)
    assert six.p_value == pytest.approx(2 / 64) and "exact" in six.method
    assert six.verdict(True) == "better"
    four = paired([0] * 4, [1] * 4)
    assert four.p_value is None and four.verdict(True) == "too few items"
    assert paired([], []).verdict(True) == ""
    with pytest.raises(ValueError, match="as many"):
        paired([1.0], [])


def test_the_tests_are_seeded_so_a_comparison_reads_the_same_every_time() -> None:
    rng = random.Random(3)
    a = [rng.random() for _ in range(50)]
    b = [x + rng.gauss(0.02, 0.1) for x in a]
    assert paired(a, b) == paired(a, b)


def test_a_warm_cache_on_one_side_is_named_and_marks_the_speed_rows() -> None:
    cold = CacheUse(model_calls=20, model_cache_hits=0, embedded=400, items_run=10)
    warm = CacheUse(model_calls=20, model_cache_hits=0, embedded=0, items_run=10)
    notes = cache_notes(cold, warm)
    assert set(notes) == {"embedding"} and "B found them in the warm embedding cache" in notes["embedding"]
    assert cache_affected("latency_p50_s", notes) == [notes["embedding"]]
    assert cache_affected("cost_total", notes) == []  # embeddings cost time, not money
    assert cache_affected("token_f1", notes) == []
    replayed = CacheUse(model_calls=20, model_cache_hits=18, embedded=0, items_run=10)
    notes = cache_notes(warm, replayed)
    assert "A 0%, B 90%" in notes["model"] and cache_affected("cost_per_item", notes)
    assert cache_notes(cold, cold) == {}
    unknown = CacheUse(model_calls=20, model_cache_hits=None, embedded=None, items_run=0)
    assert "not recorded for A" in cache_notes(unknown, warm)["embedding"]
