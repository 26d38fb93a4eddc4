"""Batched, on-device sampling with per-request parameters.

Every row of a decode batch carries its own temperature, top-k, top-p, min-p, penalties, logit bias and
seed; the functions here apply them to a ``[B, V]`` logits tensor in a few whole-batch operations. Random
draws are Gumbel noise from a counter-based hash of ``(seed, step, token id)``, so a seeded request
samples the same tokens whatever else shares its batch, and no per-request generator or launch is needed.
Processing order follows HuggingFace: penalties, logit bias, grammar mask, temperature, top-k, top-p, min-p.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class SamplingParams:
    """What one request asks of the sampler and of the stop logic. ``temperature == 0`` means greedy."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    seed: int | None = None
    max_tokens: int = 16
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        """Whether the sampler takes the arg-max (temperature 0)."""
        return self.temperature == 0.0


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32) on int64 tensors holding values below 2**32."""
    x = ((x ^ (x >> 16)) * 0x21F0AAAD) & _MASK32
    x = ((x ^ (x >> 15)) * 0x735A2D97) & _MASK32
    return x ^ (x >> 15)


def gumbel_noise(seeds: torch.Tensor, steps: torch.Tensor, vocab: int) -> torch.Tensor:
    """Gumbel(0, 1) noise ``[B, V]`` determined by each row's ``(seed, step)`` and the token id alone."""
    import torch

    key = hash32((seeds & _MASK32) ^ hash32(((seeds >> 32) & _MASK32) ^ hash32(steps & _MASK32)))
    ids = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    bits = hash32(hash32(ids[None, :] ^ key[:, None]) ^ ((key[:, None] * 0x7FEB352D) & _MASK32))
    u = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    return -torch.log(-torch.log(u))


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """HF/CTRL repetition penalty: for tokens already in prompt or output, divide positive logits by the
    penalty and multiply negative ones by it. ``seen`` is a ``[B, V]`` bool mask, ``penalty`` ``[B]``."""
    import torch

    p = penalty[:, None]
    penalised = torch.where(logits > 0, logits / p, logits * p)
    return torch.where(seen, penalised, logits)


def apply_frequency_presence(
    logits: torch.Tensor, counts: torch.Tensor, frequency: torch.Tensor, presence: torch.Tensor
) -> torch.Tensor:
    """OpenAI's penalties over output-token ``counts`` ``[B, V]``: ``-frequency*count - presence*(count>0)``."""
    c = counts.to(logits.dtype)
    return logits - frequency[:, None] * c - presence[:, None] * (c > 0).to(logits.dtype)


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Divide each row by its temperature; greedy rows (0) are left as they are."""
    import torch

    t = torch.where(temperature > 0, temperature, torch.ones_like(temperature))
    return logits / t[:, None]


def apply_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's ``top_k`` largest logits (0 = all), then the smallest set whose probability reaches
    ``top_p`` (1 = all). Masked logits become ``-inf``; ties at a threshold are all kept."""
    import torch

    vocab = logits.shape[-1]
    ordered, _ = logits.sort(dim=-1, descending=True)
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), torch.full_like(top_k, vocab))
    ranks = torch.arange(vocab, device=logits.device)[None, :]
    ordered = ordered.masked_fill(ranks >= k[:, None], float("-inf"))
    probs = ordered.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    kept = (mass_before < top_p[:, None]).sum(dim=-1).clamp(min=1)
    kept = torch.minimum(kept, k)
    threshold = ordered.gather(1, (kept - 1)[:, None])
    return logits.masked_fill(logits < threshold, float("-inf"))


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drop tokens whose probability is below ``min_p`` times the row's top probability."""
    probs = logits.softmax(dim=-1)
    floor = min_p[:, None] * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < floor, float("-inf"))


@dataclass
class BatchSampling:
    """Per-row sampling parameters of a batch as device tensors, plus host flags that skip unused steps."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    repetition_penalty: torch.Tensor
    frequency_penalty: torch.Tensor
    presence_penalty: torch.Tensor
    seeds: torch.Tensor
    steps: torch.Tensor
    seen: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    allowed: torch.Tensor | None = None
    all_greedy: bool = False
    use_top: bool = False
    use_min_p: bool = False
    extra: dict[str, bool] = field(default_factory=dict)


def process_logits(logits: torch.Tensor, b: BatchSampling) -> torch.Tensor:
    """Everything before the draw: penalties, bias, grammar mask, temperature, top-k/top-p, min-p."""
    if b.seen is not None:
        logits = apply_repetition_penalty(logits, b.seen, b.repetition_penalty)
    if b.counts is not None:
        logits = apply_frequency_presence(logits, b.counts, b.frequency_penalty, b.presence_penalty)
    if b.bias is not None:
        logits = logits + b.bias
    if b.allowed is not None:
        logits = logits.masked_fill(~b.allowed, float("-inf"))
    if b.all_greedy:
        return logits
    logits = apply_temperature(logits, b.temperature)
    if b.use_top:
        logits = apply_top_k_top_p(logits, b.top_k, b.top_p)
    if b.use_min_p:
        logits = apply_min_p(logits, b.min_p)
    return logits


def sample(logits: torch.Tensor, b: BatchSampling) -> torch.Tensor:
    """Draw one token per row: arg-max for greedy rows, Gumbel-max (an exact sample) for the others."""
    import torch

    processed = process_logits(logits, b)
    if b.all_greedy:
        return processed.argmax(dim=-1)
    noisy = processed + gumbel_noise(b.seeds, b.steps, processed.shape[-1])
    return torch.where(b.temperature > 0, noisy.argmax(dim=-1), processed.argmax(dim=-1))


def logprobs_of(
    logits: torch.Tensor, tokens: torch.Tensor, top: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of the model's own distribution: of each chosen token ``[B]``, and the ``top``
    most likely ``(values [B, top], ids [B, top])``."""
    logp = logits.float().log_softmax(dim=-1)
    chosen = logp.gather(1, tokens[:, None])[:, 0]
    values, ids = logp.topk(max(top, 1), dim=-1)
    return chosen, values, ids
