"""The sampling functions on crafted logits: each control changes the distribution exactly as specified."""

from __future__ import annotations

import math

import pytest
import torch

from agentflow.model_server.sampling import (
    BatchSampling,
    apply_frequency_presence,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k_top_p,
    gumbel_noise,
    logprobs_of,
    sample,
)

VOCAB = 8
DRAWS = 20000


def batch_of(rows: int, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
             seed: int = 0, **extra: object) -> BatchSampling:
    """``rows`` rows with the same parameters and seeds ``seed..seed+rows-1`` (independent draws)."""
    b = BatchSampling(
        temperature=torch.full((rows,), temperature), top_k=torch.full((rows,), top_k, dtype=torch.long),
        top_p=torch.full((rows,), top_p), min_p=torch.full((rows,), min_p),
        repetition_penalty=torch.ones(rows), frequency_penalty=torch.zeros(rows), presence_penalty=torch.zeros(rows),
        seeds=torch.arange(seed, seed + rows, dtype=torch.long), steps=torch.zeros(rows, dtype=torch.long),
        all_greedy=temperature == 0, use_top=top_k > 0 or top_p < 1, use_min_p=min_p > 0,
    )
    for key, value in extra.items():
        setattr(b, key, value)
    return b


def frequencies(logits: torch.Tensor, b: BatchSampling) -> torch.Tensor:
    """Empirical token frequencies of DRAWS independent draws from one logits row."""
    tokens = sample(logits.expand(DRAWS, -1).contiguous(), b)
    return torch.bincount(tokens, minlength=logits.shape[-1]).float() / DRAWS


def assert_close_to(freq: torch.Tensor, probs: torch.Tensor) -> None:
    """Each frequency within 5 binomial standard deviations of its probability (and zeros exactly zero)."""
    sd = (probs * (1 - probs) / DRAWS).sqrt()
    assert torch.all((freq - probs).abs() <= 5 * sd + 1e-9), (freq, probs)


LOGITS = torch.tensor([[3.0, 2.5, 2.0, 1.0, 0.5, 0.0, -1.0, -2.0]])


def test_plain_sampling_follows_the_softmax() -> None:
    assert_close_to(frequencies(LOGITS, batch_of(DRAWS)), LOGITS.softmax(-1)[0])


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_logits(temperature: float) -> None:
    freq = frequencies(LOGITS, batch_of(DRAWS, temperature=temperature))
    assert_close_to(freq, (LOGITS / temperature).softmax(-1)[0])


def test_temperature_zero_rows_are_greedy_inside_a_sampled_batch() -> None:
    b = batch_of(4, temperature=1.0)
    b.temperature = torch.tensor([0.0, 1.0, 0.0, 1.0])
    logits = torch.tensor([[0.0, 5.0, 4.9, 0.0]] * 4)
    for seed in range(20):
        b.seeds = torch.full((4,), seed)
        tokens = sample(logits, b)
        assert tokens[0] == 1 and tokens[2] == 1
    assert torch.equal(apply_temperature(logits, b.temperature)[0], logits[0])


def test_top_k_keeps_exactly_the_k_most_likely() -> None:
    freq = frequencies(LOGITS, batch_of(DRAWS, top_k=3))
    expected = torch.zeros(VOCAB)
    expected[:3] = LOGITS[0, :3].softmax(-1)
    assert_close_to(freq, expected)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([0.7]))
    assert torch.isfinite(kept[0, :2]).all() and torch.isinf(kept[0, 2:]).all()
    kept = apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([0.81]))
    assert torch.isfinite(kept[0, :3]).all() and torch.isinf(kept[0, 3])
    freq = frequencies(logits, batch_of(DRAWS, top_p=0.7))
    assert_close_to(freq, torch.tensor([0.5, 0.3, 0.0, 0.0]) / 0.8)


def test_top_k_and_top_p_apply_per_row() -> None:
    logits = LOGITS.expand(3, -1)
    out = apply_top_k_top_p(logits, torch.tensor([1, 0, 4]), torch.tensor([1.0, 0.5, 1.0]))
    assert torch.isfinite(out).sum(-1).tolist() == [1, 2, 4]


def test_min_p_drops_tokens_below_a_fraction_of_the_top() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = apply_min_p(probs.log(), torch.tensor([0.25]))
    assert torch.isfinite(out[0]).tolist() == [True, True, True, False]
    freq = frequencies(probs.log(), batch_of(DRAWS, min_p=0.5))
    assert_close_to(freq, torch.tensor([0.5, 0.3, 0.0, 0.0]) / 0.8)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([2.0]))
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]
    b = batch_of(DRAWS, seen=seen.expand(DRAWS, -1), repetition_penalty=torch.full((DRAWS,), 2.0))
    assert_close_to(frequencies(logits, b), out.softmax(-1)[0])


def test_frequency_and_presence_penalties_follow_openai() -> None:
    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0, 1, 3, 0]])
    out = apply_frequency_presence(logits, counts, torch.tensor([0.5]), torch.tensor([1.0]))
    assert out.tolist() == [[0.0, -1.5, -2.5, 0.0]]


def test_logit_bias_shifts_the_distribution() -> None:
    bias = torch.zeros(DRAWS, VOCAB)
    bias[:, 7] = 5.0
    bias[:, 0] = -100.0
    freq = frequencies(LOGITS, batch_of(DRAWS, bias=bias))
    assert_close_to(freq, (LOGITS + bias[:1]).softmax(-1)[0])
    assert freq[0] == 0.0


def test_grammar_mask_removes_tokens() -> None:
    allowed = torch.zeros(DRAWS, VOCAB, dtype=torch.bool)
    allowed[:, [2, 5]] = True
    freq = frequencies(LOGITS, batch_of(DRAWS, allowed=allowed))
    expected = torch.zeros(VOCAB)
    expected[[2, 5]] = LOGITS[0, [2, 5]].softmax(-1)
    assert_close_to(freq, expected)


def test_seeded_noise_depends_only_on_seed_step_and_token() -> None:
    seeds, steps = torch.tensor([7, 8, 7]), torch.tensor([0, 0, 1])
    noise = gumbel_noise(seeds, steps, 50)
    alone = gumbel_noise(torch.tensor([7]), torch.tensor([0]), 50)
    assert torch.equal(noise[0], alone[0])
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])
    big = gumbel_noise(torch.arange(2000), torch.zeros(2000, dtype=torch.long), 64).flatten()
    assert abs(float(big.mean()) - 0.5772) < 0.02  # Euler-Mascheroni: the Gumbel(0, 1) mean
    assert abs(float(big.var()) - math.pi**2 / 6) < 0.05


def test_a_seeded_row_draws_the_same_token_whatever_its_batch_mates() -> None:
    logits = torch.randn(1, 100, generator=torch.Generator().manual_seed(0))
    alone = batch_of(1, seed=42)
    mixed = batch_of(3, seed=0)
    mixed.seeds = torch.tensor([1, 42, 3])
    mixed.temperature = torch.tensor([0.7, 1.0, 0.0])
    for step in range(30):
        alone.steps = torch.tensor([step])
        mixed.steps = torch.tensor([5, step, 9])
        assert sample(logits, alone)[0] == sample(logits.expand(3, -1), mixed)[1]


def test_logprobs_are_the_model_distribution() -> None:
    chosen, values, ids = logprobs_of(LOGITS, torch.tensor([2]), 3)
    logp = LOGITS.log_softmax(-1)
    assert chosen[0] == pytest.approx(float(logp[0, 2]))
    assert ids[0].tolist() == [0, 1, 2]
    assert values[0].tolist() == pytest.approx(logp[0, :3].tolist())
