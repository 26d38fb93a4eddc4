"""The Llama-family forward pass over a static, per-slot KV cache.

The cache holds ``max_slots`` sequences of up to ``max_len`` tokens each: ``[layers, slots, kv_heads, len,
head_dim]`` for keys and the same for values. A sequence lives in one slot from prefill to finish. Decode
runs over slots ``0..B-1`` with fixed shapes, so one CUDA graph per batch-size bucket replays it; free
slots inside that range compute a throwaway token. On a GPU the non-matmul steps run as Triton kernels
(:mod:`agentflow.model_server.kernels`), or the plain PyTorch versions below, which are also the reference the
kernels and the CPU path are checked against; on a CPU prefill and decode run :mod:`agentflow.model_server.cpu`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agentflow.model_server.cpu import CpuForward, WeightFormat
from agentflow.model_server.weights import LlamaWeights

if TYPE_CHECKING:
    import torch


class DecodeOps(Protocol):
    """The four non-matmul steps of a decode layer; PyTorch and Triton implement the same contract.

    With ``folded`` true the model has folded each RMSNorm weight into the projection that follows it, and
    passes the layer input ``x`` to ``rope_and_cache`` and ``silu_mul``, which scale by ``1/rms(x)`` first.
    """

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor: ...

    folded: bool

    def rope_and_cache(
        self, qkv: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
        k_cache: torch.Tensor, v_cache: torch.Tensor, num_heads: int, x: torch.Tensor | None = None,
        eps: float = 0.0,
    ) -> torch.Tensor: ...

    def attention(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
        attend_len: int, scale: float,
    ) -> torch.Tensor: ...

    def silu_mul(self, gate_up: torch.Tensor, x: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor: ...

    def silu_down(self, gate_up: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor: ...

    def linear(self, x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None,
               out_dtype: torch.dtype | None = None) -> torch.Tensor: ...


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE (HuggingFace's rotate-half layout); ``cos``/``sin`` broadcast over the last dim's halves."""
    import torch

    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


def rstd(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``1/rms`` of each row, in fp32, shape ``[..., 1]``."""
    import torch

    return torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)


class TorchOps:
    """Reference decode steps in plain PyTorch (CPU, or a GPU without Triton)."""

    def __init__(self, *, folded: bool = False) -> None:
        self.folded = folded

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        import torch

        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return weight * xf.to(x.dtype)

    def rope_and_cache(
        self, qkv: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
        k_cache: torch.Tensor, v_cache: torch.Tensor, num_heads: int, x: torch.Tensor | None = None,
        eps: float = 0.0,
    ) -> torch.Tensor:
        import torch

        if x is not None:
            qkv = (qkv.float() * rstd(x, eps)).to(qkv.dtype)
        batch = qkv.shape[0]
        kv_heads, head_dim = k_cache.shape[1], k_cache.shape[3]
        q_dim, kv_dim = num_heads * head_dim, kv_heads * head_dim
        c, s = cos[positions][:, None, :], sin[positions][:, None, :]
        q = rotate(qkv[:, :q_dim].view(batch, num_heads, head_dim), c, s)
        k = rotate(qkv[:, q_dim : q_dim + kv_dim].view(batch, kv_heads, head_dim), c, s)
        v = qkv[:, q_dim + kv_dim :].view(batch, kv_heads, head_dim)
        rows = torch.arange(batch, device=qkv.device)
        k_cache[rows, :, positions] = k
        v_cache[rows, :, positions] = v
        return q

    def attention(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
        attend_len: int, scale: float,
    ) -> torch.Tensor:
        import torch

        batch, heads, head_dim = q.shape
        kv_heads = k_cache.shape[1]
        keys = k_cache[:batch, :, :attend_len]
        values = v_cache[:batch, :, :attend_len]
        qg = q.view(batch, kv_heads, heads // kv_heads, head_dim).float()
        scores = torch.matmul(qg, keys.float().transpose(-1, -2)) * scale
        mask = torch.arange(attend_len, device=q.device)[None, :] > positions[:, None]
        scores.masked_fill_(mask[:, None, None, :], float("-inf"))
        out = torch.matmul(scores.softmax(dim=-1), values.float())
        return out.to(q.dtype).reshape(batch, heads * head_dim)

    @staticmethod
    def linear(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None,
               out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """``x @ weight.T``, plus ``residual`` added in place (saves cuBLAS a copy); optionally cast."""
        out = residual.addmm_(x, weight.t()) if residual is not None else x @ weight.t()
        return out if out_dtype is None else out.to(out_dtype)

    def silu_down(self, gate_up: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """``x + silu_mul(gate_up, x) @ weight.T`` with folded norms (``x``'s storage is reused)."""
        return self.linear(self.silu_mul(gate_up, x, eps), weight, x)

    def silu_mul(self, gate_up: torch.Tensor, x: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
        import torch.nn.functional as F

        if x is not None:
            gate_up = (gate_up.float() * rstd(x, eps)).to(gate_up.dtype)
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up


class LlamaModel:
    """Weights, KV cache and RoPE tables of one served model, with prefill and decode entry points."""

    def __init__(self, weights: LlamaWeights, *, max_slots: int, max_len: int, ops: DecodeOps | None = None,
                 weight_format: WeightFormat = "auto", threads: int | None = None) -> None:
        import torch

        spec = weights.spec
        self.weights, self.spec = weights, spec
        self.max_slots, self.max_len = max_slots, max_len
        self.device, self.dtype = weights.embed.device, weights.embed.dtype
        self.ops: DecodeOps = ops or TorchOps()
        self.folded = bool(getattr(self.ops, "folded", False)) and not spec.qkv_bias
        if self.folded:
            self._fold_norms()
        shape = (spec.num_layers, max_slots, spec.num_kv_heads, max_len, spec.head_dim)
        self.k_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.v_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
        if spec.rope.rope_type == "default":
            dims = torch.arange(0, spec.head_dim, 2, dtype=torch.int64).float() / spec.head_dim
            inv_freq = 1.0 / (spec.rope.theta**dims)
        else:
            inv_freq = torch.tensor(spec.inv_freq(), dtype=torch.float32)
        freqs = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.cos = freqs.cos().to(self.device)
        self.sin = freqs.sin().to(self.device)
        self.scale = spec.head_dim**-0.5
        # On a CPU (no kernels given) prefill and decode run the CPU path, which owns the layer matrices.
        self.cpu: CpuForward | None = None
        if self.device.type == "cpu" and ops is None:
            self.cpu = CpuForward(self, weights=weight_format, threads=threads)
        elif weight_format != "auto":
            raise ValueError(f"weights {weight_format!r} is a CPU option; on {self.device.type} use 'auto'")

    def _fold_norms(self) -> None:
        """Fold each layer's RMSNorm weights into its q/k/v and gate/up matrices (``W @ diag(w)``)."""
        import torch

        for layer in self.weights.layers:
            layer.qkv = (layer.qkv.float() * layer.attn_norm.float()[None, :]).to(self.dtype)
            layer.gate_up = (layer.gate_up.float() * layer.mlp_norm.float()[None, :]).to(self.dtype)
        self._unit = torch.ones(self.spec.hidden_size, device=self.device, dtype=self.dtype)

    def _pre_norm(self, ops: DecodeOps, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # With folded weights the projection carries the norm weight; only 1/rms is applied here.
        return ops.rms_norm(x, self._unit if self.folded else weight, self.spec.rms_norm_eps)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one decode step reads, in the format the step uses (int8 counts its scales)."""
        return self.cpu.nbytes if self.cpu is not None else self.weights.nbytes

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V one token occupies across all layers."""
        s = self.spec
        return 2 * s.num_layers * s.num_kv_heads * s.head_dim * self.k_cache.element_size()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights
        return (self.ops.rms_norm(x, w.norm, self.spec.rms_norm_eps) @ w.lm_head.t()).float()

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Run right-padded prompts ``[B, T]`` into ``slots``; return fp32 logits at each last prompt token."""
        import torch
        import torch.nn.functional as F

        if self.cpu is not None:
            return self.cpu.prefill(tokens, lengths, slots)

        s, w = self.spec, self.weights
        batch, length = tokens.shape
        q_dim, kv_dim = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        cos, sin = self.cos[:length][None, None], self.sin[:length][None, None]
        x = F.embedding(tokens, w.embed)
        ref = TorchOps()
        for i, layer in enumerate(w.layers):
            h = self._pre_norm(ref, x, layer.attn_norm)
            qkv = h @ layer.qkv.t()
            if layer.qkv_bias is not None:
                qkv = qkv + layer.qkv_bias
            q = qkv[..., :q_dim].view(batch, length, s.num_heads, s.head_dim).transpose(1, 2)
            k = qkv[..., q_dim : q_dim + kv_dim].view(batch, length, s.num_kv_heads, s.head_dim).transpose(1, 2)
            v = qkv[..., q_dim + kv_dim :].view(batch, length, s.num_kv_heads, s.head_dim).transpose(1, 2)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            self.k_cache[i, slots, :, :length] = k
            self.v_cache[i, slots, :, :length] = v
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=True)
            x = x + attn.transpose(1, 2).reshape(batch, length, q_dim) @ layer.o.t()
            h = self._pre_norm(ref, x, layer.mlp_norm)
            x = x + ref.silu_mul(h @ layer.gate_up.t()) @ layer.down.t()
        last = x[torch.arange(batch, device=x.device), lengths - 1]
        return self._logits(last)

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, attend_len: int) -> torch.Tensor:
        """One token for each of slots ``0..B-1``; ``attend_len`` bounds the keys read (static under a graph)."""
        import torch
        import torch.nn.functional as F

        if self.cpu is not None:
            return self.cpu.decode(tokens, positions, attend_len)

        s, w, ops = self.spec, self.weights, self.ops
        eps = s.rms_norm_eps
        x = F.embedding(tokens, w.embed)
        for i, layer in enumerate(w.layers):
            if self.folded:
                qkv = ops.linear(x, layer.qkv)
                q = ops.rope_and_cache(qkv, positions, self.cos, self.sin, self.k_cache[i], self.v_cache[i],
                                       s.num_heads, x, eps)
            else:
                h = ops.rms_norm(x, layer.attn_norm, eps)
                if layer.qkv_bias is not None:
                    qkv = torch.addmm(layer.qkv_bias, h, layer.qkv.t())
                else:
                    qkv = ops.linear(h, layer.qkv)
                q = ops.rope_and_cache(qkv, positions, self.cos, self.sin, self.k_cache[i], self.v_cache[i],
                                       s.num_heads)
            attn = ops.attention(q, self.k_cache[i], self.v_cache[i], positions, attend_len, self.scale)
            x = ops.linear(attn, layer.o, x)
            if self.folded:
                x = ops.silu_down(ops.linear(x, layer.gate_up), x, layer.down, eps)
            else:
                act = ops.silu_mul(ops.linear(ops.rms_norm(x, layer.mlp_norm, eps), layer.gate_up))
                x = ops.linear(act, layer.down, x)
        return ops.linear(ops.rms_norm(x, w.norm, eps), w.lm_head, None, torch.float32)

    def copy_slot(self, src: int, dsts: list[int], length: int) -> None:
        """Copy the first ``length`` cached positions of slot ``src`` into each slot of ``dsts`` (``n`` samples)."""
        import torch

        if not dsts:
            return
        index = torch.tensor(dsts, device=self.device)
        for cache in (self.k_cache, self.v_cache):
            cache[:, index, :, :length] = cache[:, src : src + 1, :, :length]
