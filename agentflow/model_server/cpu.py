"""The CPU forward pass: matrices laid out for a one-row product, few ops per layer, optional int8 weights.

On a CPU a decode step is a chain of matrix-vector products that stream every weight from memory once, so
its speed is set by the bytes read and by how many small PyTorch calls surround them. This path keeps both
down: each matrix is stored transposed (``[in, out]``, which MKL streams faster for one row than the
``[out, in]`` view the GPU path uses; several rows use a oneDNN-packed copy), RMSNorm is one fused call, RoPE is one multiply-add over q and k
together with the step's cos/sin rows gathered once, the key mask is built once per step, attention is one
``scaled_dot_product_attention`` call over the GQA groups, and residual adds happen inside ``addmm``.

``int8`` weights (:class:`Int8Matrix`) are quantized at load, one symmetric scale per output channel, and
multiplied by ``torch._weight_int8pack_mm`` with bf16 activations: a quarter of fp32's bytes per step.
The KV cache and everything between the products stay fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from agentflow.model_server.model import LlamaModel
    from agentflow.model_server.weights import LlamaWeights

PREFILL_ROWS = 16
"""Above this many rows an int8 product expands its weights to fp32 rather than run the int8 kernel."""
WeightFormat = Literal["auto", "int8"]
WEIGHT_FORMATS: tuple[str, ...] = ("auto", "int8")
"""``--weights`` values: ``auto`` keeps the device's dtype (fp32 on a CPU); ``int8`` quantizes at load (CPU only)."""


class DenseMatrix:
    """A float weight for one-row products stored transposed, ``[in, out]`` (``x @ wt``, a residual added in
    place), and optionally a second copy in oneDNN's blocked layout for products of several rows.

    MKL streams the transposed layout fastest for one row (a decode step at batch 1); for 2-8 rows oneDNN's
    prepacked product was about twice as fast as either plain layout here (MKL's small-M GEMM is far from this
    CPU's peak), so a batched decode step or a prompt uses that copy when the model keeps one.
    """

    def __init__(self, weight: torch.Tensor, *, packed: bool = False) -> None:
        import torch

        self.wt = weight.t().contiguous()
        self.packed: torch.Tensor | None = None
        if packed:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 8)

    @property
    def nbytes(self) -> int:
        """Bytes one batch-1 product reads."""
        return self.wt.numel() * self.wt.element_size()

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        if self.packed is not None and x.shape[0] > 1:
            out = torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
            return residual.add_(out) if residual is not None else out
        if residual is not None:
            return residual.addmm_(x, self.wt)
        return torch.mm(x, self.wt)


class Int8Matrix:
    """A weight quantized to int8 with one scale per output row: ``w ~ q * scale[:, None]``."""

    def __init__(self, weight: torch.Tensor) -> None:
        import torch

        w = weight.float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        self.q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
        # bf16 scales: the kernel wants them in the activations' dtype (bf16, its fast path on x86).
        self.scale = scale.to(torch.bfloat16)

    @property
    def nbytes(self) -> int:
        """Bytes one product reads: the int8 matrix and its scales."""
        return self.q.numel() + self.scale.numel() * self.scale.element_size()

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        if x.shape[0] > PREFILL_ROWS:
            # A prompt is compute-bound: expand the weights to fp32 once for the whole prompt (the same values
            # the kernel multiplies by) and use fp32 GEMM, several times faster than the int8 kernel at this shape.
            dense = (self.q.float() * self.scale.float()[:, None]).t()
            return residual.addmm_(x, dense) if residual is not None else torch.mm(x, dense)
        out = torch._weight_int8pack_mm(x.to(torch.bfloat16), self.q, self.scale)
        if residual is not None:
            return residual.add_(out)
        return out.float()


Matrix = DenseMatrix | Int8Matrix


_CORES: list[int] = []
"""torch's default thread count (the physical cores), read once before the server changes it."""


def cpu_threads(threads: int | None, decode_threads: int | None) -> tuple[int, int]:
    """``(prefill, decode)`` thread counts: ``threads`` for both, or by default every core but one.

    Every op ends in an OpenMP barrier, and when another process holds a core the barrier waits for a
    descheduled thread, a scheduler slice per op. On this 2-core machine under load (load average ~7), two
    threads decoded at 3 tok/s and one at 23, and a 500-token prefill took 6.5 s with two and 1.6 s with one.
    A decode step is memory-bound, so the spare core buys little even when the machine is idle, and it keeps
    the host (HTTP, tokenizer, the workflow beside the server) responsive.
    """
    if not _CORES:
        import torch

        _CORES.append(max(1, torch.get_num_threads()))
    default = max(1, _CORES[0] - 1)
    return threads or default, decode_threads or threads or default


PACKED_COPY_LIMIT = 2 * 1024**3
"""Largest fp32 model (bytes) that also keeps the oneDNN copy of its matrices for batched steps."""


def _can_pack(weights: LlamaWeights) -> bool:
    import torch

    return torch.backends.mkldnn.is_available() and weights.nbytes <= PACKED_COPY_LIMIT


@dataclass
class CpuLayer:
    """One decoder layer's weights for the CPU path."""

    attn_norm: torch.Tensor
    qkv: Matrix
    qkv_bias: torch.Tensor | None
    o: Matrix
    mlp_norm: torch.Tensor
    gate_up: Matrix
    down: Matrix


class CpuForward:
    """Prefill and decode of a :class:`~agentflow.model_server.model.LlamaModel` on the CPU, over its KV cache.

    Takes over the model's layer matrices (the ``[out, in]`` originals are dropped to keep one copy in memory).
    """

    def __init__(self, model: LlamaModel, *, weights: WeightFormat = "auto", threads: int | None = None,
                 decode_threads: int | None = None) -> None:
        import torch

        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights {weights!r} is not valid; valid: {', '.join(WEIGHT_FORMATS)}")
        self.model, self.spec, self.weights = model, model.spec, weights
        w = model.weights
        self.packed = weights == "auto" and model.max_slots > 1 and _can_pack(w)

        def make(weight: torch.Tensor) -> Matrix:
            return Int8Matrix(weight) if weights == "int8" else DenseMatrix(weight, packed=self.packed)

        self.layers: list[CpuLayer] = []
        for layer in w.layers:
            self.layers.append(CpuLayer(layer.attn_norm, make(layer.qkv), layer.qkv_bias, make(layer.o),
                                        layer.mlp_norm, make(layer.gate_up), make(layer.down)))
            # Free the originals: the CPU path is the only reader of these matrices from now on.
            layer.qkv = layer.o = layer.gate_up = layer.down = torch.empty(0, dtype=layer.attn_norm.dtype)
        self.embed, self.norm = w.embed, w.norm
        self.lm_head: Matrix = make(w.lm_head)
        if w.lm_head is not w.embed:
            w.lm_head = w.embed  # the original head is no longer read; keep the attribute a valid tensor
        s = self.spec
        self.q_dim, self.kv_dim = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        half = s.head_dim // 2
        # RoPE as one multiply-add: t * cos2 + swap_halves(t) * sin2, with sin2 = [-sin, sin].
        self.cos2 = torch.cat((model.cos, model.cos), dim=-1)
        self.sin2 = torch.cat((-model.sin, model.sin), dim=-1)
        self.half = half
        self.key_positions = torch.arange(model.max_len)
        self.rows = torch.arange(model.max_slots)
        self.prefill_threads, self.decode_threads = cpu_threads(threads, decode_threads)

    def _use_threads(self, n: int) -> None:
        import torch

        # Per call, from whichever thread runs the engine: OpenMP's thread count is per calling thread.
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    @property
    def nbytes(self) -> int:
        """Bytes of weights one decode step reads (embedding rows aside): every matrix, norm and bias."""
        total = self.lm_head.nbytes + self.norm.numel() * self.norm.element_size()
        for layer in self.layers:
            total += layer.qkv.nbytes + layer.o.nbytes + layer.gate_up.nbytes + layer.down.nbytes
            for t in (layer.attn_norm, layer.mlp_norm, layer.qkv_bias):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total

    def _rope(self, qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        import torch

        h = self.half
        return torch.addcmul(qk * cos, torch.cat((qk[..., h:], qk[..., :h]), dim=-1), sin)

    def _qkv(self, layer: CpuLayer, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        h = F.rms_norm(x, (x.shape[-1],), layer.attn_norm, self.spec.rms_norm_eps)
        qkv = layer.qkv(h)
        return qkv + layer.qkv_bias if layer.qkv_bias is not None else qkv

    def _mlp(self, layer: CpuLayer, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        gate_up = layer.gate_up(F.rms_norm(x, (x.shape[-1],), layer.mlp_norm, self.spec.rms_norm_eps))
        inter = gate_up.shape[-1] // 2
        return layer.down(F.silu(gate_up[:, :inter]) * gate_up[:, inter:], x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return self.lm_head(F.rms_norm(x, (x.shape[-1],), self.norm, self.spec.rms_norm_eps)).float()

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, attend_len: int) -> torch.Tensor:
        """One token for each of slots ``0..B-1`` at ``positions``; fp32 logits ``[B, V]``."""
        import torch
        import torch.nn.functional as F

        s, m = self.spec, self.model
        self._use_threads(self.decode_threads)
        batch = tokens.shape[0]
        heads, kv_heads, hd = s.num_heads, s.num_kv_heads, s.head_dim
        qk_end = self.q_dim + self.kv_dim
        x = F.embedding(tokens, self.embed)
        cos, sin = self.cos2[positions][:, None, :], self.sin2[positions][:, None, :]
        rows = self.rows[:batch]
        # 0 where a key may be attended (written positions up to each row's own), -inf elsewhere: an additive
        # float mask built once per step (a bool one is converted again in every layer's attention call).
        allowed = self.key_positions[:attend_len][None, :] <= positions[:, None]
        mask = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))[:, None, None, :]
        for i, layer in enumerate(self.layers):
            qkv = self._qkv(layer, x)
            qk = self._rope(qkv[:, :qk_end].view(batch, heads + kv_heads, hd), cos, sin)
            k_cache, v_cache = m.k_cache[i], m.v_cache[i]
            k_cache[rows, :, positions] = qk[:, heads:]
            v_cache[rows, :, positions] = qkv[:, qk_end:].view(batch, kv_heads, hd)
            q = qk[:, :heads].view(batch, kv_heads, heads // kv_heads, hd)
            attn = F.scaled_dot_product_attention(q, k_cache[:batch, :, :attend_len], v_cache[:batch, :, :attend_len],
                                                  attn_mask=mask, scale=m.scale)
            x = layer.o(attn.reshape(batch, self.q_dim), x)
            x = self._mlp(layer, x)
        return self._logits(x)

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Right-padded prompts ``[B, T]`` into ``slots``; fp32 logits at each last prompt token."""
        import torch
        import torch.nn.functional as F

        s, m = self.spec, self.model
        self._use_threads(self.prefill_threads)
        batch, length = tokens.shape
        heads, kv_heads, hd = s.num_heads, s.num_kv_heads, s.head_dim
        qk_end = self.q_dim + self.kv_dim
        x = F.embedding(tokens, self.embed).view(batch * length, -1)
        cos, sin = self.cos2[:length][None, :, None, :], self.sin2[:length][None, :, None, :]
        for i, layer in enumerate(self.layers):
            qkv = self._qkv(layer, x).view(batch, length, -1)
            qk = self._rope(qkv[..., :qk_end].view(batch, length, heads + kv_heads, hd), cos, sin).transpose(1, 2)
            q, k = qk[:, :heads], qk[:, heads:]
            v = qkv[..., qk_end:].view(batch, length, kv_heads, hd).transpose(1, 2)
            m.k_cache[i, slots, :, :length] = k
            m.v_cache[i, slots, :, :length] = v
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=m.scale, enable_gqa=True)
            x = layer.o(attn.transpose(1, 2).reshape(batch * length, self.q_dim), x)
            x = self._mlp(layer, x)
        last = x.view(batch, length, -1)[torch.arange(batch), lengths - 1]
        return self._logits(last)
