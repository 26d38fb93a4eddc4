"""Triton kernels for the decode step on a GPU: RMSNorm, RoPE with the KV-cache write, attention, SiLU-mul.

Each replaces several small PyTorch launches with one, which is what keeps a batch-1 decode step near the
memory-bandwidth roofline (a decode step is a few matrix-vector products and many tiny ops). They follow
the :class:`agentflow.model_server.model.DecodeOps` contract; :func:`self_check` compares them with the PyTorch
reference on random inputs, and the engine falls back to PyTorch when Triton is missing or the check fails.
Attention is split along the sequence (flash-decoding) so a long context still spreads over the chip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch


@triton.jit
def _rms_norm_kernel(x_ptr, w_ptr, out_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    y = (x * rstd).to(w.dtype) * w
    tl.store(out_ptr + row * n_cols + cols, y, mask=mask)


@triton.jit
def _row_rstd(x_ptr, row, hidden, eps, HIDDEN_POW2: tl.constexpr):
    cols = tl.arange(0, HIDDEN_POW2)
    x = tl.load(x_ptr + row * hidden + cols, mask=cols < hidden, other=0.0).to(tl.float32)
    return 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / hidden + eps)


@triton.jit
def _rope_cache_kernel(
    qkv_ptr, q_out_ptr, pos_ptr, cos_ptr, sin_ptr, k_cache_ptr, v_cache_ptr, x_ptr, hidden, eps,
    qkv_stride, cache_slot_stride, cache_head_stride,
    NUM_HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, FOLD: tl.constexpr,
    HIDDEN_POW2: tl.constexpr,
):
    b = tl.program_id(0)
    head = tl.program_id(1)
    half: tl.constexpr = HEAD_DIM // 2
    offs = tl.arange(0, half)
    pos = tl.load(pos_ptr + b)
    cos = tl.load(cos_ptr + pos * half + offs)
    sin = tl.load(sin_ptr + pos * half + offs)
    if FOLD:  # the RMSNorm weight is folded into the projection; apply the row's 1/rms here
        scale = _row_rstd(x_ptr, b, hidden, eps, HIDDEN_POW2)
    else:
        scale = 1.0
    row = qkv_ptr + b * qkv_stride
    if head < NUM_HEADS:
        src = row + head * HEAD_DIM
        x1 = tl.load(src + offs).to(tl.float32) * scale
        x2 = tl.load(src + half + offs).to(tl.float32) * scale
        dst = q_out_ptr + (b * NUM_HEADS + head) * HEAD_DIM
        tl.store(dst + offs, (x1 * cos - x2 * sin).to(q_out_ptr.dtype.element_ty))
        tl.store(dst + half + offs, (x2 * cos + x1 * sin).to(q_out_ptr.dtype.element_ty))
    else:
        kv = head - NUM_HEADS
        src = row + NUM_HEADS * HEAD_DIM + kv * HEAD_DIM
        x1 = tl.load(src + offs).to(tl.float32) * scale
        x2 = tl.load(src + half + offs).to(tl.float32) * scale
        base = b * cache_slot_stride + kv * cache_head_stride + pos * HEAD_DIM
        k_dst = k_cache_ptr + base
        tl.store(k_dst + offs, (x1 * cos - x2 * sin).to(k_cache_ptr.dtype.element_ty))
        tl.store(k_dst + half + offs, (x2 * cos + x1 * sin).to(k_cache_ptr.dtype.element_ty))
        v_src = row + (NUM_HEADS + KV_HEADS) * HEAD_DIM + kv * HEAD_DIM
        full = tl.arange(0, HEAD_DIM)
        v = (tl.load(v_src + full).to(tl.float32) * scale).to(v_cache_ptr.dtype.element_ty)
        tl.store(v_cache_ptr + base + full, v)


@triton.jit
def _attn_partial_kernel(
    q_ptr, k_cache_ptr, v_cache_ptr, pos_ptr, out_ptr, lse_ptr,
    cache_slot_stride, cache_head_stride, chunk, scale,
    NUM_HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, GROUP_PAD: tl.constexpr,
    BLOCK_N: tl.constexpr, SPLITS: tl.constexpr, IS_FP32: tl.constexpr, USE_DOT: tl.constexpr,
):
    b = tl.program_id(0)
    kv = tl.program_id(1)
    split = tl.program_id(2)
    GROUP: tl.constexpr = NUM_HEADS // KV_HEADS
    g = tl.arange(0, GROUP_PAD)
    d = tl.arange(0, HEAD_DIM)
    g_mask = g < GROUP
    heads = kv * GROUP + g
    q = tl.load(q_ptr + (b * NUM_HEADS + heads)[:, None] * HEAD_DIM + d[None, :], mask=g_mask[:, None], other=0.0)
    length = tl.load(pos_ptr + b) + 1
    start = split * chunk
    stop = tl.minimum(start + chunk, length)
    m = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    acc_l = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)
    base = b * cache_slot_stride + kv * cache_head_stride
    for n0 in range(start, stop, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_mask = n < stop
        offs = base + n[:, None] * HEAD_DIM + d[None, :]
        k = tl.load(k_cache_ptr + offs, mask=n_mask[:, None], other=0.0)
        if not USE_DOT:  # head dims under 16 are below tl.dot's minimum tile
            s = tl.sum(q[:, None, :].to(tl.float32) * k[None, :, :].to(tl.float32), axis=2) * scale
        elif IS_FP32:
            s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        else:
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        v = tl.load(v_cache_ptr + offs, mask=n_mask[:, None], other=0.0)
        if not USE_DOT:
            pv = tl.sum(p[:, :, None] * v[None, :, :].to(tl.float32), axis=1)
        elif IS_FP32:
            pv = tl.dot(p, v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v).to(tl.float32)
        acc = acc * alpha[:, None] + pv
        acc_l = acc_l * alpha + tl.sum(p, axis=1)
        m = m_new
    safe_l = tl.where(acc_l > 0, acc_l, 1.0)
    out = acc / safe_l[:, None]
    if SPLITS == 1:
        dst = out_ptr + (b * NUM_HEADS + heads)[:, None] * HEAD_DIM + d[None, :]
        tl.store(dst, out.to(out_ptr.dtype.element_ty), mask=g_mask[:, None])
    else:
        row = (b * NUM_HEADS + heads) * SPLITS + split
        tl.store(out_ptr + row[:, None] * HEAD_DIM + d[None, :], out, mask=g_mask[:, None])
        lse = tl.where(acc_l > 0, m + tl.log(safe_l), float("-inf"))
        tl.store(lse_ptr + row, lse, mask=g_mask)


@triton.jit
def _attn_reduce_kernel(part_ptr, lse_ptr, out_ptr, HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr):
    row = tl.program_id(0)
    s = tl.arange(0, SPLITS)
    d = tl.arange(0, HEAD_DIM)
    lse = tl.load(lse_ptr + row * SPLITS + s)
    weights = tl.exp(lse - tl.max(lse, axis=0))
    parts = tl.load(part_ptr + (row * SPLITS + s)[:, None] * HEAD_DIM + d[None, :])
    out = tl.sum(parts * weights[:, None], axis=0) / tl.sum(weights, axis=0)
    tl.store(out_ptr + row * HEAD_DIM + d, out.to(out_ptr.dtype.element_ty))


@triton.jit
def _silu_mul_kernel(gu_ptr, out_ptr, x_ptr, inter, hidden, eps, BLOCK: tl.constexpr, FOLD: tl.constexpr,
                     HIDDEN_POW2: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < inter
    if FOLD:
        scale = _row_rstd(x_ptr, row, hidden, eps, HIDDEN_POW2)
    else:
        scale = 1.0
    gate = tl.load(gu_ptr + row * 2 * inter + cols, mask=mask, other=0.0).to(tl.float32) * scale
    up = tl.load(gu_ptr + row * 2 * inter + inter + cols, mask=mask, other=0.0)
    if FOLD:
        up = (up.to(tl.float32) * scale).to(gu_ptr.dtype.element_ty)
    act = (gate / (1.0 + tl.exp(-gate))).to(up.dtype)
    tl.store(out_ptr + row * inter + cols, act * up, mask=mask)


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, out_ptr, res_ptr, N, K, xres_ptr, hidden, eps,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, HAS_RES: tl.constexpr, SILU: tl.constexpr,
                 HIDDEN_POW2: tl.constexpr):
    # One row of x against BLOCK_N rows of W: many small programs keep enough loads in flight to stream W
    # at close to full bandwidth, where a tiled GEMM launches too few blocks for a single row. With SILU,
    # x is the gate/up row and the input is silu(gate * r) * (up * r), r = 1/rms(xres) (folded norm).
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    acc = tl.zeros([BLOCK_N], tl.float32)
    if SILU:
        scale = _row_rstd(xres_ptr, 0, hidden, eps, HIDDEN_POW2)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_mask = ks < K
        if SILU:
            gate = tl.load(x_ptr + ks, mask=k_mask, other=0.0).to(tl.float32) * scale
            up = tl.load(x_ptr + K + ks, mask=k_mask, other=0.0).to(tl.float32) * scale
            x = gate / (1.0 + tl.exp(-gate)) * up
        else:
            x = tl.load(x_ptr + ks, mask=k_mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + rows[:, None] * K + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        acc += tl.sum(w.to(tl.float32) * x[None, :], axis=1)
    if HAS_RES:
        acc += tl.load(res_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + rows, acc.to(out_ptr.dtype.element_ty), mask=row_mask)


class TritonOps:
    """:class:`~agentflow.model_server.model.DecodeOps` as Triton kernels (one launch per step, two for split
    attention).

    With ``folded=True`` the model folds each pre-attention and pre-MLP RMSNorm weight into the projection
    after it, and the RoPE and SiLU kernels apply the row's ``1/rms`` themselves: two launches fewer per layer.
    """

    def __init__(self, *, max_len: int, block_n: int = 32, folded: bool = False, programs: int | None = None) -> None:
        self.block_n, self.max_len, self.folded = block_n, max_len, folded
        if programs is None:
            try:
                import torch

                programs = 2 * torch.cuda.get_device_properties(0).multi_processor_count
            except (RuntimeError, AssertionError):
                programs = 264
        self.programs = programs

    # Batch-1 matrix-vector products: the Triton GEMV (True, ``gemv_block_n`` rows per program) or cuBLAS
    # (False). The engine captures a graph with each setting and keeps the fastest; elsewhere cuBLAS is used.
    gemv = False
    gemv_block_n = 4

    def variants(self, batch: int) -> list[dict[str, object]]:
        """Settings worth timing against each other when capturing the graph for ``batch`` rows."""
        if batch != 1:
            return [{"gemv": False}]
        return [{"gemv": True, "gemv_block_n": n} for n in (2, 4, 8)] + [{"gemv": False}]

    def _use_gemv(self, x: torch.Tensor) -> bool:
        return self.gemv and x.shape[0] == 1 and x.is_contiguous()

    def _gemv(self, x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None,
              out_dtype: torch.dtype | None, xres: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
        import torch

        n, k = weight.shape
        out = torch.empty((1, n), device=x.device, dtype=out_dtype or weight.dtype)
        block_n = self.gemv_block_n
        hidden = xres.shape[-1] if xres is not None else 1
        _gemv_kernel[(triton.cdiv(n, block_n),)](
            x, weight, out, residual if residual is not None else out, n, k,
            xres if xres is not None else x, hidden, eps,
            BLOCK_N=block_n, BLOCK_K=min(2048, triton.next_power_of_2(k)), HAS_RES=residual is not None,
            SILU=xres is not None, HIDDEN_POW2=triton.next_power_of_2(hidden), num_warps=8 if block_n >= 8 else 4,
        )
        return out

    def linear(self, x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None,
               out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """``x @ weight.T`` (plus ``residual``, whose storage may be reused); optionally in ``out_dtype``."""
        if not self._use_gemv(x):
            return _torch_linear(x, weight, residual, out_dtype)
        return self._gemv(x, weight, residual, out_dtype)

    def silu_down(self, gate_up: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """``x + silu_mul(gate_up scaled by 1/rms(x)) @ weight.T`` (folded norm); one kernel at batch 1."""
        if not self._use_gemv(gate_up):
            return self.linear(self.silu_mul(gate_up, x, eps), weight, x)
        return self._gemv(gate_up, weight, x, None, x, eps)

    def splits_for(self, batch: int, kv_heads: int, attend_len: int) -> int:
        """Sequence splits for attention: enough programs to fill the chip, each split at least one block."""
        splits = 1
        while (splits < 16 and batch * kv_heads * splits * 2 <= self.programs
               and splits * 2 * self.block_n <= attend_len):
            splits *= 2
        return splits

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        import torch

        out = torch.empty_like(x)
        n_cols = x.shape[-1]
        _rms_norm_kernel[(x.numel() // n_cols,)](x, weight, out, n_cols, eps, BLOCK=triton.next_power_of_2(n_cols))
        return out

    def rope_and_cache(
        self, qkv: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
        k_cache: torch.Tensor, v_cache: torch.Tensor, num_heads: int, x: torch.Tensor | None = None,
        eps: float = 0.0,
    ) -> torch.Tensor:
        """RoPE on q and k, k and v into the cache; with ``x`` given, first scale by ``1/rms(x)`` (folded norm)."""
        import torch

        batch = qkv.shape[0]
        kv_heads, head_dim = k_cache.shape[1], k_cache.shape[3]
        q = torch.empty((batch, num_heads, head_dim), device=qkv.device, dtype=qkv.dtype)
        hidden = x.shape[-1] if x is not None else 1
        _rope_cache_kernel[(batch, num_heads + kv_heads)](
            qkv, q, positions, cos, sin, k_cache, v_cache, x if x is not None else qkv, hidden, eps,
            qkv.stride(0), k_cache.stride(0), k_cache.stride(1),
            NUM_HEADS=num_heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, FOLD=x is not None,
            HIDDEN_POW2=triton.next_power_of_2(hidden),
        )
        return q

    def attention(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
        attend_len: int, scale: float,
    ) -> torch.Tensor:
        import torch

        batch, heads, head_dim = q.shape
        kv_heads = k_cache.shape[1]
        splits = self.splits_for(batch, kv_heads, attend_len)
        chunk = triton.cdiv(triton.cdiv(attend_len, splits), self.block_n) * self.block_n
        out = torch.empty((batch, heads, head_dim), device=q.device, dtype=q.dtype)
        group_pad = max(16, triton.next_power_of_2(heads // kv_heads))
        meta = dict(
            NUM_HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, GROUP_PAD=group_pad, BLOCK_N=self.block_n,
            IS_FP32=q.dtype == torch.float32, USE_DOT=head_dim >= 16,
        )
        if splits == 1:
            _attn_partial_kernel[(batch, kv_heads, 1)](
                q, k_cache, v_cache, positions, out, out, k_cache.stride(0), k_cache.stride(1), chunk, scale,
                SPLITS=1, **meta,
            )
        else:
            part = torch.empty((batch * heads * splits, head_dim), device=q.device, dtype=torch.float32)
            lse = torch.empty((batch * heads * splits,), device=q.device, dtype=torch.float32)
            _attn_partial_kernel[(batch, kv_heads, splits)](
                q, k_cache, v_cache, positions, part, lse, k_cache.stride(0), k_cache.stride(1), chunk, scale,
                SPLITS=splits, **meta,
            )
            _attn_reduce_kernel[(batch * heads,)](part, lse, out, HEAD_DIM=head_dim, SPLITS=splits)
        return out.view(batch, heads * head_dim)

    def silu_mul(self, gate_up: torch.Tensor, x: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
        """``silu(gate) * up``; with ``x`` given, both halves are first scaled by ``1/rms(x)`` (folded norm)."""
        import torch

        batch, inter = gate_up.shape[0], gate_up.shape[1] // 2
        out = torch.empty((batch, inter), device=gate_up.device, dtype=gate_up.dtype)
        block = 1024
        hidden = x.shape[-1] if x is not None else 1
        _silu_mul_kernel[(batch, triton.cdiv(inter, block))](
            gate_up, out, x if x is not None else gate_up, inter, hidden, eps, BLOCK=block, FOLD=x is not None,
            HIDDEN_POW2=triton.next_power_of_2(hidden),
        )
        return out


def _torch_linear(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None,
                  out_dtype: torch.dtype | None) -> torch.Tensor:
    from agentflow.model_server.model import TorchOps

    return TorchOps.linear(x, weight, residual, out_dtype)


def self_check(device: torch.device, dtype: torch.dtype, *, max_len: int = 384, seed: int = 0) -> float:
    """Compare every Triton op with the PyTorch reference on fresh random inputs; return the worst relative error.

    Raises ``AssertionError`` when an output is wrong (beyond ``dtype`` rounding) or left unwritten (NaN).
    """
    import torch

    from agentflow.model_server.model import TorchOps

    gen = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    tol = 2e-2 if dtype != torch.float32 else 1e-4
    ref, fast = TorchOps(), TritonOps(max_len=max_len, programs=64)
    worst = 0.0

    def compare(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
        nonlocal worst
        err = float((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-12))
        assert not torch.isnan(got).any(), f"{name}: NaN in Triton output"
        assert err < tol, f"{name}: relative error {err:.2e} over {tol:.0e}"
        worst = max(worst, err)

    for batch, heads, kv_heads, head_dim in ((3, 8, 2, 64), (2, 8, 4, 8)):
        _check_shapes(fast, ref, rnd, compare, gen, device, max_len, batch, heads, kv_heads, head_dim)
    return worst


def _check_shapes(fast: TritonOps, ref: Any, rnd: Any, compare: Any, gen: Any, device: torch.device, max_len: int,
                  batch: int, heads: int, kv_heads: int, head_dim: int) -> None:
    import torch

    x, w = rnd(batch, 320), rnd(320)
    compare("rms_norm", fast.rms_norm(x, w, 1e-5), ref.rms_norm(x, w, 1e-5))
    fast.gemv = True
    for fast.gemv_block_n, (n, k) in ((2, (300, 320)), (4, (37, 2500)), (8, (61, 320))):
        mat, row, res = rnd(n, k), rnd(1, k), rnd(1, n)
        compare(f"gemv {n}x{k}", fast.linear(row, mat), ref.linear(row, mat))
        compare(f"gemv {n}x{k} + residual", fast.linear(row, mat, res.clone()), ref.linear(row, mat, res.clone()))
        compare(f"gemv {n}x{k} fp32 out", fast.linear(row, mat, None, torch.float32),
                ref.linear(row, mat, None, torch.float32))
        gu2, xr, wd = rnd(1, 2 * k), rnd(1, n), rnd(n, k)
        compare(f"silu_down {n}x{k}", fast.silu_down(gu2, xr.clone(), wd, 1e-5),
                ref.silu_down(gu2, xr.clone(), wd, 1e-5))
    fast.gemv, fast.gemv_block_n = False, 4
    gu = rnd(batch, 2 * 700)
    compare("silu_mul", fast.silu_mul(gu), ref.silu_mul(gu))
    rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)
    compare("silu_mul folded", fast.silu_mul(gu, x, 1e-5), ref.silu_mul((gu.float() * rstd).to(gu.dtype)))
    qkv = rnd(batch, (heads + 2 * kv_heads) * head_dim)
    positions = torch.tensor([0, max_len // 3, max_len - 1][:batch], device=device)
    angles = torch.rand(max_len, head_dim // 2, generator=gen).to(device) * 6.0
    cos, sin = angles.cos(), angles.sin()
    caches = [rnd(4, kv_heads, max_len, head_dim) for _ in range(2)]
    fast_caches = [c.clone() for c in caches]
    q_ref = ref.rope_and_cache(qkv, positions, cos, sin, caches[0], caches[1], heads)
    q_fast = fast.rope_and_cache(qkv, positions, cos, sin, fast_caches[0], fast_caches[1], heads)
    compare("rope q", q_fast, q_ref)
    compare("rope k cache", fast_caches[0], caches[0])
    compare("rope v cache", fast_caches[1], caches[1])
    folded_caches = [c.clone() for c in caches]
    scaled = (qkv.float() * rstd).to(qkv.dtype)
    q_scaled = ref.rope_and_cache(scaled, positions, cos, sin, caches[0], caches[1], heads)
    q_folded = fast.rope_and_cache(qkv, positions, cos, sin, folded_caches[0], folded_caches[1], heads, x, 1e-5)
    compare("rope folded q", q_folded, q_scaled)
    compare("rope folded k cache", folded_caches[0], caches[0])
    compare("rope folded v cache", folded_caches[1], caches[1])
    scale = head_dim**-0.5
    want = ref.attention(q_ref, caches[0], caches[1], positions, max_len, scale)
    compare("attention", fast.attention(q_ref, caches[0], caches[1], positions, max_len, scale), want)
