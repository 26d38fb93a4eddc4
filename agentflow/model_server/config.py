"""Model architecture description read from a HuggingFace ``config.json``.

The server runs its own forward pass for the Llama family (Llama 1/2/3, Mistral without sliding window,
Qwen2 with its q/k/v bias). Anything else is refused here, with the supported list in the message, so a
user learns at load time rather than from wrong text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("llama", "mistral", "qwen2")
SUPPORTED_ROPE_TYPES: tuple[str, ...] = ("default", "linear", "llama3")


class ModelLoadError(ValueError):
    """The model directory cannot be served: missing files or an unsupported architecture."""


@dataclass(frozen=True)
class RopeSpec:
    """Rotary embedding parameters (``rope_type`` as HuggingFace names it)."""

    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True)
class LlamaSpec:
    """The shape of a Llama-family decoder, enough to build and run it."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    rope: RopeSpec = field(default_factory=RopeSpec)
    model_type: str = "llama"
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()

    @property
    def num_parameters(self) -> int:
        """Parameter count (embeddings and lm head counted once when tied)."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        q = self.num_heads * self.head_dim
        attn = h * (q + 2 * kv) + q * h + (q + 2 * kv if self.qkv_bias else 0)
        mlp = 3 * h * self.intermediate_size
        per_layer = attn + mlp + 2 * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.vocab_size * h + self.num_layers * per_layer + h + head

    def inv_freq(self) -> list[float]:
        """RoPE inverse frequencies, one per pair of head dimensions."""
        dim, r = self.head_dim, self.rope
        base = [1.0 / (r.theta ** (i / dim)) for i in range(0, dim, 2)]
        if r.rope_type == "linear":
            return [f / r.factor for f in base]
        if r.rope_type == "llama3":
            low_wl = r.original_max_position_embeddings / r.low_freq_factor
            high_wl = r.original_max_position_embeddings / r.high_freq_factor
            out = []
            for f in base:
                wavelen = 2 * math.pi / f
                if wavelen < high_wl:
                    out.append(f)
                elif wavelen > low_wl:
                    out.append(f / r.factor)
                else:
                    smooth = (r.original_max_position_embeddings / wavelen - r.low_freq_factor) / (
                        r.high_freq_factor - r.low_freq_factor
                    )
                    out.append((1 - smooth) * f / r.factor + smooth * f)
            return out
        return base


def _rope_from(cfg: dict[str, Any]) -> RopeSpec:
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    rope_type = str(params.get("rope_type", params.get("type", "default")))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ModelLoadError(
            f"config.json: rope type {rope_type!r} is not supported by the model server's engine; "
            f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
        )
    return RopeSpec(
        theta=theta,
        rope_type=rope_type,
        factor=float(params.get("factor", 1.0)),
        low_freq_factor=float(params.get("low_freq_factor", 1.0)),
        high_freq_factor=float(params.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(params.get("original_max_position_embeddings", 8192)),
    )


def spec_from_dict(cfg: dict[str, Any], *, generation: dict[str, Any] | None = None) -> LlamaSpec:
    """Build a :class:`LlamaSpec` from the contents of ``config.json`` (and ``generation_config.json``)."""
    model_type = str(cfg.get("model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"config.json: model_type {model_type!r} is not supported by the model server's engine; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}. Serve other architectures with vLLM behind the same "
            "'self-hosted' profile."
        )
    if model_type == "mistral" and cfg.get("sliding_window") not in (None, 0):
        window = int(cfg["sliding_window"])
        if window < int(cfg.get("max_position_embeddings", 0)):
            raise ModelLoadError(f"config.json: sliding_window={window} is not supported by the model server's engine")
    heads = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    eos: list[int] = []
    for source in (generation or {}, cfg):
        value = source.get("eos_token_id")
        for tok in value if isinstance(value, list) else [value]:
            if isinstance(tok, int) and tok not in eos:
                eos.append(tok)
    return LlamaSpec(
        vocab_size=int(cfg["vocab_size"]),
        hidden_size=int(cfg["hidden_size"]),
        intermediate_size=int(cfg["intermediate_size"]),
        num_layers=int(cfg["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=head_dim,
        max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        rope=_rope_from(cfg),
        model_type=model_type,
        bos_token_id=cfg.get("bos_token_id") if isinstance(cfg.get("bos_token_id"), int) else None,
        eos_token_ids=tuple(eos),
    )


def load_spec(model_dir: Path) -> LlamaSpec:
    """Read ``config.json`` (and ``generation_config.json`` when present) from a model directory."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"{model_dir}: no config.json and no .gguf file; expected a HuggingFace model directory or a GGUF model"
        )
    cfg = json.loads(config_path.read_text(encoding="utf-8"))
    gen_path = model_dir / "generation_config.json"
    generation = json.loads(gen_path.read_text(encoding="utf-8")) if gen_path.is_file() else None
    return spec_from_dict(cfg, generation=generation)


# Random-weight shapes used by the GPU benchmark (TinyLlama-1.1B and Llama-3-8B).
LLAMA_1B = LlamaSpec(
    vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_layers=22, num_heads=32,
    num_kv_heads=4, head_dim=64, max_position_embeddings=2048, eos_token_ids=(2,),
)
LLAMA_8B = LlamaSpec(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
    num_kv_heads=8, head_dim=128, max_position_embeddings=8192, rope=RopeSpec(theta=500000.0),
    eos_token_ids=(128001,),
)
