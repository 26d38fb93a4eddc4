"""Prompt log-probabilities: every prompt token's log-probability under the model, many prompts at once.

``/v1/completions`` with ``echo`` and ``logprobs`` (vLLM's convention) reports, for each prompt token after
the first, ``log p(token | tokens before it)``. Scoring is one causal forward pass over the whole prompt with
logits kept at every position, so it runs apart from the decode loop and its KV-cache slots:

1. the prompts' longest common prefix runs once (batch 1), keeping each layer's rotated keys and values;
   the prompts then branch on their next token, and each branch of several prompts does the same with its
   own common prefix (a tree of shared prefixes: ablations that keep the first source share it, and those
   that also keep the second share that too);
2. the rest of every prompt (its suffix) runs in batches of up to ``max_tokens`` padded tokens, its queries
   attending to the shared prefixes' keys (broadcast, never copied per prompt) and causally to its own;
3. logits are computed a block of rows at a time and reduced at once to the target token's log-probability
   (and the ``top`` alternatives), so ``[rows, vocab]`` never exists for a whole batch.

ContextCite's ablations of one context share everything up to the first dropped source, and multiple-choice
options share their question, so the prefix is usually most of each prompt. A prompt sent twice is scored once
(64 ablations of four sources hold at most 16 different contexts). The same layer code serves the
CPU path (:class:`~agentflow.model_server.cpu.CpuForward`'s matrices) and the plain PyTorch path (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from agentflow.model_server.model import LlamaModel

LOGIT_ROWS = 256
"""Rows whose logits exist at once (SmolLM2's vocabulary: 256 x 49,152 fp32 = 50 MB)."""


@dataclass
class TokenScore:
    """One prompt position: its token, ``log p(token | prefix)`` (``None`` for the first token, which has no
    context) and the ``top`` most likely tokens there with their log-probabilities."""

    token_id: int
    logprob: float | None
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class ScoreResult:
    """Per prompt, one :class:`TokenScore` per token; and what the batch cost."""

    prompts: list[list[TokenScore]]
    prefix_tokens: int
    """Tokens of the common prefix, computed once for all prompts."""
    forward_passes: int
    """Batched forward passes run: the prefix's, plus one per batch of suffixes."""
    computed_tokens: int
    """Token positions the passes computed (padding included), against ``sum(len(p))`` without sharing."""
    shared_tokens: int = 0
    """Prompt tokens not computed again because a prefix shared by several prompts ran once for them."""


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the longest common prefix, short of every prompt's last token (each keeps a suffix)."""
    shortest = min(len(p) for p in prompts)
    n = 0
    first = prompts[0]
    while n < shortest - 1 and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


class _Layers:
    """A layer's steps over 2-D rows, on whichever matrices the model keeps (CPU path or plain weights)."""

    def __init__(self, model: LlamaModel) -> None:
        import torch

        self.model, self.spec = model, model.spec
        s = self.spec
        self.q_dim, self.kv_dim = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        self.cpu = model.cpu
        self._unit = torch.ones(s.hidden_size, device=model.device, dtype=model.dtype)

    def count(self) -> int:
        return self.spec.num_layers

    def qkv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.cpu is not None:
            return self.cpu._qkv(self.cpu.layers[i], x)
        layer = self.model.weights.layers[i]
        norm = self._unit if self.model.folded else layer.attn_norm
        h = F.rms_norm(x, (x.shape[-1],), norm, self.spec.rms_norm_eps)
        qkv = h @ layer.qkv.t()
        return qkv + layer.qkv_bias if layer.qkv_bias is not None else qkv

    def out_and_mlp(self, i: int, attn: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.cpu is not None:
            layer = self.cpu.layers[i]
            return self.cpu._mlp(layer, layer.o(attn, x))
        w = self.model.weights.layers[i]
        x = x + attn @ w.o.t()
        norm = self._unit if self.model.folded else w.mlp_norm
        gate_up = F.rms_norm(x, (x.shape[-1],), norm, self.spec.rms_norm_eps) @ w.gate_up.t()
        inter = gate_up.shape[-1] // 2
        return x + (F.silu(gate_up[:, :inter]) * gate_up[:, inter:]) @ w.down.t()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.cpu is not None:
            return self.cpu._logits(x)
        w = self.model.weights
        return (F.rms_norm(x, (x.shape[-1],), w.norm, self.spec.rms_norm_eps) @ w.lm_head.t()).float()


def _rope(model: LlamaModel, t: torch.Tensor, start: int) -> torch.Tensor:
    """Rotate ``[B, T, H, D]`` for positions ``start..start+T-1`` (HuggingFace's rotate-half layout)."""
    from agentflow.model_server.model import rotate

    length = t.shape[1]
    cos = model.cos[start : start + length][None, :, None, :]
    sin = model.sin[start : start + length][None, :, None, :]
    return rotate(t, cos, sin)


def _forward(
    layers: _Layers, tokens: torch.Tensor, start: int, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Hidden states ``[B, T, hidden]`` of right-padded ``tokens`` at positions ``start..``, attending to ``past``
    (each layer's ``[1, kv_heads, start, head_dim]`` keys and values) and causally to themselves; also this
    call's own keys and values per layer."""
    import torch
    import torch.nn.functional as F

    model, s = layers.model, layers.spec
    batch, length = tokens.shape
    heads, kv_heads, hd = s.num_heads, s.num_kv_heads, s.head_dim
    embed = layers.cpu.embed if layers.cpu is not None else model.weights.embed
    x = F.embedding(tokens, embed).reshape(batch * length, -1)
    mask = None
    if past is not None and start > 0:
        own = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        mask = torch.cat((torch.ones(length, start, dtype=torch.bool, device=x.device), own), dim=1)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i in range(layers.count()):
        qkv = layers.qkv(i, x).view(batch, length, -1)
        q = _rope(model, qkv[..., : layers.q_dim].reshape(batch, length, heads, hd), start).transpose(1, 2)
        k = _rope(model, qkv[..., layers.q_dim : layers.q_dim + layers.kv_dim].reshape(batch, length, kv_heads, hd),
                  start).transpose(1, 2)
        v = qkv[..., layers.q_dim + layers.kv_dim :].reshape(batch, length, kv_heads, hd).transpose(1, 2)
        kept.append((k, v))
        if mask is not None:
            assert past is not None
            pk, pv = past[i]
            keys = torch.cat((pk.expand(batch, -1, -1, -1), k), dim=2)
            values = torch.cat((pv.expand(batch, -1, -1, -1), v), dim=2)
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=model.scale, enable_gqa=True)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=model.scale, enable_gqa=True)
        x = layers.out_and_mlp(i, attn.transpose(1, 2).reshape(batch * length, layers.q_dim).to(x.dtype), x)
    return x.view(batch, length, -1), kept


def _reduce(layers: _Layers, hidden: torch.Tensor, targets: torch.Tensor, top: int) -> tuple[list[float], list[
        list[tuple[int, float]]]]:
    """Log-probabilities of ``targets`` ``[N]`` after hidden rows ``[N, hidden]``, and the ``top`` alternatives."""
    chosen: list[float] = []
    alts: list[list[tuple[int, float]]] = []
    for begin in range(0, hidden.shape[0], LOGIT_ROWS):
        logp = layers.logits(hidden[begin : begin + LOGIT_ROWS]).log_softmax(dim=-1)
        chosen += logp.gather(1, targets[begin : begin + LOGIT_ROWS, None])[:, 0].tolist()
        if top > 0:
            values, ids = logp.topk(top, dim=-1)
            alts += [list(zip(i, v, strict=True)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
        else:
            alts += [[] for _ in range(logp.shape[0])]
    return chosen, alts


def score_prompts(model: LlamaModel, prompts: list[list[int]], *, top: int = 0,
                  max_tokens: int = 8192) -> ScoreResult:
    """Every token's log-probability in each prompt (see the module docstring); ``top`` alternatives per position.

    ``max_tokens`` bounds the padded tokens of one batch of suffixes. Must run where the model's threads are
    owned (the server's engine thread), under ``torch.inference_mode``.
    """
    if not prompts or any(not p for p in prompts):
        raise ValueError("every prompt to score needs at least one token")
    unique: dict[tuple[int, ...], int] = {}
    for prompt in prompts:
        unique.setdefault(tuple(prompt), len(unique))
    if len(unique) < len(prompts):  # the same prompt twice is scored once (ablations of few sources repeat)
        once = score_prompts(model, [list(p) for p in unique], top=top, max_tokens=max_tokens)
        rows = [once.prompts[unique[tuple(p)]] for p in prompts]
        return ScoreResult(rows, once.prefix_tokens, once.forward_passes, once.computed_tokens,
                           once.shared_tokens + sum(len(p) for p in prompts) - sum(len(p) for p in unique))
    if model.cpu is not None:
        model.cpu._use_threads(model.cpu.prefill_threads)
    run = _Run(_Layers(model), prompts, top, max_tokens)
    run.node(list(range(len(prompts))), 0, None, None)
    return ScoreResult(run.scores, common_prefix(prompts), run.passes, run.computed, run.shared)


class _Run:
    """One scoring call: the prompts, their scores so far, and what the passes cost."""

    def __init__(self, layers: _Layers, prompts: list[list[int]], top: int, max_tokens: int) -> None:
        self.layers, self.prompts, self.top, self.max_tokens = layers, prompts, top, max_tokens
        self.scores: list[list[TokenScore]] = [[TokenScore(prompt[0], None)] for prompt in prompts]
        self.passes = self.computed = self.shared = 0

    def node(self, group: list[int], start: int, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
             last: torch.Tensor | None) -> None:
        """Score ``group``, whose prompts share their first ``start`` tokens (already run: ``past`` holds their
        keys and values, ``last`` the hidden state of the last one): their further common prefix once, then
        each branch of the prompts after it the same way (a tree of shared prefixes), the rest batched."""
        import torch

        if len(group) == 1:
            self.leaves(group, start, past, last)
            return
        p = start + common_prefix([self.prompts[g][start:] for g in group])
        if p > start:
            segment = self.prompts[group[0]][start:p]
            tokens = torch.tensor([segment], dtype=torch.long, device=self.layers.model.device)
            hidden, kv = _forward(self.layers, tokens, start, past)
            self.passes += 1
            self.computed += len(segment)
            self.shared += len(segment) * (len(group) - 1)
            rows = ([last[None]] if last is not None else []) + [hidden[0, :-1]]
            targets = segment if last is not None else segment[1:]
            if targets:
                chosen, alts = _reduce(self.layers, torch.cat(rows)[: len(targets)],
                                       torch.tensor(targets, dtype=torch.long, device=hidden.device), self.top)
                shared = [TokenScore(t, c, a) for t, c, a in zip(targets, chosen, alts, strict=True)]
                for g in group:
                    self.scores[g].extend(shared)
            past = kv if past is None else [(torch.cat((pk, k), dim=2), torch.cat((pv, v), dim=2))
                                             for (pk, pv), (k, v) in zip(past, kv, strict=True)]
            last = hidden[0, -1]
        branches: dict[int, list[int]] = {}
        for g in group:
            branches.setdefault(self.prompts[g][p], []).append(g)
        if p == start and len(branches) == 1:  # one prompt ends where the others go on: nothing more to share
            self.leaves(group, start, past, last)
            return
        alone = [b[0] for b in branches.values() if len(b) == 1]
        for branch in branches.values():
            if len(branch) > 1:
                self.node(branch, p, past, last)
        if alone:
            self.leaves(alone, p, past, last)

    def leaves(self, group: list[int], start: int, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
               last: torch.Tensor | None) -> None:
        """The rest of each prompt of ``group`` after ``start``, in batches of up to ``max_tokens`` padded tokens."""
        order = sorted(group, key=lambda j: len(self.prompts[j]))
        batch: list[int] = []
        for j in order + [-1]:
            rest = [len(self.prompts[g]) - start for g in batch] + ([len(self.prompts[j]) - start] if j >= 0 else [])
            if batch and (j < 0 or max(rest) * (len(batch) + 1) > self.max_tokens):
                self.computed += _score_group(self.layers, self.prompts, batch, start, past, last, self.top,
                                              self.scores)
                self.passes += 1
                batch = []
            if j >= 0:
                batch.append(j)


def _score_group(
    layers: _Layers, prompts: list[list[int]], group: list[int], p: int,
    past: list[tuple[torch.Tensor, torch.Tensor]] | None, last_prefix: torch.Tensor | None, top: int,
    scores: list[list[TokenScore]],
) -> int:
    """Score the suffixes of ``group`` in one batch; append to ``scores``; return the padded tokens computed."""
    import torch

    suffixes = [prompts[g][p:] for g in group]
    length = max(len(s) for s in suffixes)
    tokens = torch.zeros((len(group), length), dtype=torch.long, device=layers.model.device)
    for r, s in enumerate(suffixes):
        tokens[r, : len(s)] = torch.tensor(s)
    hidden, _ = _forward(layers, tokens, p, past)
    rows: list[torch.Tensor] = []
    targets: list[int] = []
    for r, s in enumerate(suffixes):
        if last_prefix is not None:  # the prefix's last position predicts the suffix's first token
            rows.append(last_prefix[None])
            targets.append(s[0])
        if len(s) > 1:
            rows.append(hidden[r, : len(s) - 1])
            targets += s[1:]
    if rows:
        target = torch.tensor(targets, dtype=torch.long, device=hidden.device)
        chosen, alts = _reduce(layers, torch.cat(rows), target, top)
    else:
        chosen, alts = [], []
    at = 0
    for g, s in zip(group, suffixes, strict=True):
        for token in s[1:] if last_prefix is None else s:
            scores[g].append(TokenScore(token, chosen[at], alts[at]))
            at += 1
    return len(group) * length
