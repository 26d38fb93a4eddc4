"""Llama-family weights: loaded from safetensors (or a state dict), fused for the decode loop.

q/k/v projections are concatenated into one matrix and gate/up into another, so a decode step runs two
fewer matrix products per layer. Random weights of a given shape serve the GPU benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentflow.model_server.config import LlamaSpec, ModelLoadError

if TYPE_CHECKING:
    import torch

    from agentflow.model_server.adapter import LoraAdapter


@dataclass
class LayerWeights:
    """One decoder layer, with fused projections."""

    attn_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass
class LlamaWeights:
    """All weights of a Llama-family decoder on one device, in one dtype."""

    spec: LlamaSpec
    embed: torch.Tensor
    layers: list[LayerWeights]
    norm: torch.Tensor
    lm_head: torch.Tensor

    @property
    def nbytes(self) -> int:
        """Bytes one decode step must read (embedding rows aside): every layer, the final norm and lm head."""
        total = self.norm.numel() * self.norm.element_size() + self.lm_head.numel() * self.lm_head.element_size()
        for layer in self.layers:
            for t in (layer.attn_norm, layer.qkv, layer.qkv_bias, layer.o, layer.mlp_norm, layer.gate_up, layer.down):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total


def from_state_dict(
    spec: LlamaSpec,
    get: Callable[[str], torch.Tensor],
    *,
    has: Callable[[str], bool],
    device: torch.device,
    dtype: torch.dtype,
    adapter: LoraAdapter | None = None,
) -> LlamaWeights:
    """Fuse HuggingFace-named tensors (``model.layers.N.self_attn.q_proj.weight`` ...) into :class:`LlamaWeights`;
    a LoRA ``adapter`` is merged into the matrices it changes first (:mod:`agentflow.model_server.adapter`)."""
    import torch

    if adapter is not None:
        adapter.check_covers(has)
        get = adapter.wrap(get)

    def put(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype).contiguous()

    layers: list[LayerWeights] = []
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        qkv = torch.cat([get(p + f"self_attn.{n}_proj.weight").to(device) for n in "qkv"], dim=0)
        bias = None
        if spec.qkv_bias:
            bias = put(torch.cat([get(p + f"self_attn.{n}_proj.bias").to(device) for n in "qkv"], dim=0))
        gate_up = torch.cat([get(p + "mlp.gate_proj.weight").to(device), get(p + "mlp.up_proj.weight").to(device)])
        layers.append(
            LayerWeights(
                attn_norm=put(get(p + "input_layernorm.weight")),
                qkv=put(qkv),
                qkv_bias=bias,
                o=put(get(p + "self_attn.o_proj.weight")),
                mlp_norm=put(get(p + "post_attention_layernorm.weight")),
                gate_up=put(gate_up),
                down=put(get(p + "mlp.down_proj.weight")),
            )
        )
        del qkv, gate_up
    embed = put(get("model.embed_tokens.weight"))
    if spec.tie_word_embeddings or not has("lm_head.weight"):
        lm_head = embed
    else:
        lm_head = put(get("lm_head.weight"))
    return LlamaWeights(spec=spec, embed=embed, layers=layers, norm=put(get("model.norm.weight")), lm_head=lm_head)


def load_weights(model_dir: Path, spec: LlamaSpec, *, device: torch.device, dtype: torch.dtype,
                 adapter: LoraAdapter | None = None) -> LlamaWeights:
    """Load ``*.safetensors`` from a model directory (single file or sharded with an index), merging ``adapter``."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = sorted(p.name for p in model_dir.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{model_dir}: no *.safetensors weights found (other weight formats are not loaded)")
    handles = {name: safe_open(str(model_dir / name), framework="pt", device="cpu") for name in files}
    where: dict[str, str] = {}
    for name, handle in handles.items():
        for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
            where[key] = name

    def get(key: str) -> torch.Tensor:
        if key not in where:
            raise ModelLoadError(f"{model_dir}: tensor {key!r} missing from the safetensors files")
        return handles[where[key]].get_tensor(key)

    return from_state_dict(spec, get, has=lambda k: k in where, device=device, dtype=dtype, adapter=adapter)


def weights_from_module_state(
    spec: LlamaSpec, state: Mapping[str, torch.Tensor], *, device: torch.device, dtype: torch.dtype
) -> LlamaWeights:
    """Build weights from an in-memory HuggingFace ``state_dict()`` (the benchmark shares HF's random init)."""

    def get(key: str) -> torch.Tensor:
        return state[key]

    return from_state_dict(spec, get, has=lambda k: k in state, device=device, dtype=dtype)


def random_weights(spec: LlamaSpec, *, device: torch.device, dtype: torch.dtype, seed: int = 0) -> LlamaWeights:
    """Random weights of the given shape (normal, std 0.02; norms at 1), made directly on the device."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    h, q = spec.hidden_size, spec.num_heads * spec.head_dim
    kv = spec.num_kv_heads * spec.head_dim

    def rnd(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen, device=device, dtype=torch.float32) * 0.02).to(dtype)

    def ones() -> torch.Tensor:
        return torch.ones(h, device=device, dtype=dtype)

    layers = [
        LayerWeights(
            attn_norm=ones(),
            qkv=rnd(q + 2 * kv, h),
            qkv_bias=rnd(q + 2 * kv) if spec.qkv_bias else None,
            o=rnd(h, q),
            mlp_norm=ones(),
            gate_up=rnd(2 * spec.intermediate_size, h),
            down=rnd(h, spec.intermediate_size),
        )
        for _ in range(spec.num_layers)
    ]
    embed = rnd(spec.vocab_size, h)
    lm_head = embed if spec.tie_word_embeddings else rnd(spec.vocab_size, h)
    return LlamaWeights(spec=spec, embed=embed, layers=layers, norm=ones(), lm_head=lm_head)
