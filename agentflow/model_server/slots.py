"""Per-slot sampling state on the device: each KV-cache slot's parameters, seed, step and token history.

A decode step samples rows ``0..B-1`` straight from views of these tensors, so per-request parameters cost
nothing to gather. Token history (for the penalties) and logit bias are ``[slots, V]`` tensors allocated the
first time a request needs them, and kept up to date only while an active request does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow.model_server.sampling import BatchSampling, SamplingParams, logprobs_of, sample

if TYPE_CHECKING:
    import torch

# Columns of the float table.
_TEMP, _TOP_P, _MIN_P, _REP, _FREQ, _PRES = range(6)
# Columns of the integer table.
_TOP_K, _SEED, _STEP = range(3)


class SlotSampling:
    """Sampling parameters and history for ``max_slots`` sequences, with batched draws over them."""

    def __init__(self, max_slots: int, vocab: int, device: torch.device) -> None:
        import torch

        self.vocab, self.device = vocab, device
        self.floats = torch.zeros((max_slots, 6), dtype=torch.float32, device=device)
        self.ints = torch.zeros((max_slots, 3), dtype=torch.int64, device=device)
        self.params: list[SamplingParams | None] = [None] * max_slots
        self.seen: torch.Tensor | None = None
        self.counts: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self._flags: dict[int, dict[str, bool]] = {}

    def assign(self, slot: int, params: SamplingParams, seed: int, prompt_ids: list[int]) -> None:
        """Give ``slot`` to a new sequence: its parameters, seed, and (when penalised) its prompt history."""
        import torch

        self.params[slot] = params
        self._flags.clear()
        self.floats[slot] = torch.tensor([
            params.temperature, params.top_p, params.min_p, params.repetition_penalty,
            params.frequency_penalty, params.presence_penalty,
        ])
        self.ints[slot] = torch.tensor([params.top_k, seed, 0])
        if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            if self.seen is None:
                self.seen = torch.zeros((len(self.params), self.vocab), dtype=torch.bool, device=self.device)
                self.counts = torch.zeros((len(self.params), self.vocab), dtype=torch.int32, device=self.device)
            assert self.counts is not None
            self.seen[slot] = False
            self.counts[slot] = 0
            ids = torch.tensor([t for t in prompt_ids if 0 <= t < self.vocab], dtype=torch.long)
            self.seen[slot, ids.to(self.device)] = True
        if params.logit_bias:
            if self.bias is None:
                self.bias = torch.zeros((len(self.params), self.vocab), dtype=torch.float32, device=self.device)
            self.bias[slot] = 0.0
            ids = torch.tensor([t for t, _ in params.logit_bias], dtype=torch.long, device=self.device)
            self.bias[slot, ids] = torch.tensor([b for _, b in params.logit_bias], device=self.device)

    def release(self, slot: int) -> None:
        """The sequence in ``slot`` finished."""
        self.params[slot] = None
        self._flags.clear()

    def _flags_for(self, batch: int) -> dict[str, bool]:
        flags = self._flags.get(batch)
        if flags is None:
            active = [p for p in self.params[:batch] if p is not None]
            flags = self._flags_of(active)
            self._flags[batch] = flags
        return flags

    @staticmethod
    def _flags_of(active: list[SamplingParams]) -> dict[str, bool]:
        return {
            "greedy": all(p.greedy for p in active),
            "top": any(p.top_k > 0 or p.top_p < 1.0 for p in active if not p.greedy),
            "min_p": any(p.min_p > 0 for p in active if not p.greedy),
            "history": any(p.repetition_penalty != 1.0 or p.frequency_penalty or p.presence_penalty for p in active),
            "bias": any(bool(p.logit_bias) for p in active),
        }

    def _batch(self, floats: torch.Tensor, ints: torch.Tensor, flags: dict[str, bool], index: torch.Tensor | slice,
               allowed: torch.Tensor | None) -> BatchSampling:
        history = flags["history"] and self.seen is not None
        return BatchSampling(
            temperature=floats[:, _TEMP], top_k=ints[:, _TOP_K], top_p=floats[:, _TOP_P], min_p=floats[:, _MIN_P],
            repetition_penalty=floats[:, _REP], frequency_penalty=floats[:, _FREQ],
            presence_penalty=floats[:, _PRES], seeds=ints[:, _SEED], steps=ints[:, _STEP],
            seen=self.seen[index] if history and self.seen is not None else None,
            counts=self.counts[index] if history and self.counts is not None else None,
            bias=self.bias[index] if flags["bias"] and self.bias is not None else None,
            allowed=allowed, all_greedy=flags["greedy"], use_top=flags["top"], use_min_p=flags["min_p"],
        )

    def sample(self, logits: torch.Tensor, batch: int, allowed: torch.Tensor | None) -> torch.Tensor:
        """Draw for rows ``0..batch-1`` (slot ``i`` is row ``i``) and record the draws in the history."""
        flags = self._flags_for(batch)
        b = self._batch(self.floats[:batch], self.ints[:batch], flags, slice(0, batch), allowed)
        tokens = sample(logits[:batch], b)
        self.ints[:batch, _STEP] += 1
        if b.seen is not None and self.seen is not None and self.counts is not None:
            self.seen[:batch].scatter_(1, tokens[:, None], True)
            self.counts[:batch].scatter_add_(1, tokens[:, None], self._ones(batch))
        return tokens

    def sample_rows(self, logits: torch.Tensor, slots: list[int], allowed: torch.Tensor | None) -> torch.Tensor:
        """Draw one token per row of ``logits`` for the given slots (first tokens after prefill)."""
        import torch

        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        flags = self._flags_of([p for p in (self.params[s] for s in slots) if p is not None])
        b = self._batch(self.floats[index], self.ints[index], flags, index, allowed)
        tokens = sample(logits, b)
        self.ints[index, _STEP] += 1
        if b.seen is not None and self.seen is not None and self.counts is not None:
            self.seen[index, tokens] = True
            self.counts[index, tokens] += 1
        return tokens

    def replace_token(self, slot: int, drawn: int, kept: int) -> None:
        """Record ``kept`` in ``slot``'s history in place of ``drawn`` (a constraint overrode the draw).

        ``drawn`` stays marked as seen: that flag also covers the prompt, whose tokens are not kept here."""
        params = self.params[slot]
        if params is None or self.seen is None or self.counts is None:
            return
        if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            self.counts[slot, drawn] -= 1
            self.counts[slot, kept] += 1
            self.seen[slot, kept] = True

    def _ones(self, batch: int) -> torch.Tensor:
        import torch

        return torch.ones((batch, 1), dtype=torch.int32, device=self.device)

    @staticmethod
    def logprobs(
        logits: torch.Tensor, tokens: torch.Tensor, top: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of the chosen tokens and the ``top`` alternatives (model distribution)."""
        return logprobs_of(logits[: tokens.shape[0]], tokens, top)
