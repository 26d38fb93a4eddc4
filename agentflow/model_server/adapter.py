"""LoRA adapters in the server: a base model plus an adapter, merged into the weights when the server loads.

``agentflow tune`` writes an adapter the way ``peft`` saves one (``adapter_config.json`` and
``adapter_model.safetensors``, keys ``base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`` ...)
next to its own ``tune.json``. The server serves it as ``--model BASE+ADAPTER`` (``smollm2-135m+rag-cite``) or
``--model BASE --adapter DIR``: every targeted matrix becomes ``W + scale * B @ A`` (``scale`` is
``lora_alpha / r``, or ``lora_alpha / sqrt(r)`` with rsLoRA) in fp32 before the engine fuses and casts it, so the
decode loop runs exactly as fast as the base model's. ``ADAPTER`` is a folder, or the name of one under
:data:`ADAPTER_DIR` of the folder the server runs in (where ``agentflow tune --name`` writes).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentflow.model_server.config import ModelLoadError

if TYPE_CHECKING:
    import torch

ADAPTER_DIR = Path(".agentflow") / "adapters"
"""Where ``agentflow tune --name NAME`` writes, under the project folder, and where the server looks up a name."""
TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The Llama matrices an adapter may change (the server merges these; embeddings and norms stay the base's)."""
_KEY = re.compile(r"^(?:base_model\.model\.)?(model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+))\.lora_([AB])(?:\.\w+)?\.weight$")


@dataclass(frozen=True)
class LoraAdapter:
    """One LoRA adapter: per base tensor name, its ``A`` and ``B`` matrices and the scale of their product."""

    path: Path
    name: str
    scale: float
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """HuggingFace weight name (``model.layers.0.self_attn.q_proj.weight``) -> ``(A [r, in], B [out, r])``."""
    base: str | None = None
    """The base model the adapter was trained on, as ``tune.json`` names it (``smollm2-135m``)."""

    def delta(self, key: str) -> torch.Tensor | None:
        """``scale * B @ A`` for the weight ``key`` (fp32), or ``None`` when the adapter leaves it alone."""
        pair = self.pairs.get(key)
        if pair is None:
            return None
        a, b = pair
        return (b.float() @ a.float()) * self.scale

    def wrap(self, get: Callable[[str], torch.Tensor]) -> Callable[[str], torch.Tensor]:
        """A tensor getter that returns merged weights; an adapter matrix of the wrong shape is an error."""

        def merged(key: str) -> torch.Tensor:
            weight = get(key)
            change = self.delta(key)
            if change is None:
                return weight
            if tuple(change.shape) != tuple(weight.shape):
                raise ModelLoadError(
                    f"adapter {self.path}: {key} is {tuple(weight.shape)} in the base model but the adapter's B @ A is "
                    f"{tuple(change.shape)}; it was trained on another base ({self.base or 'not recorded'})"
                )
            return (weight.float() + change.to(weight.device)).to(weight.dtype)

        return merged

    def check_covers(self, known: Callable[[str], bool]) -> None:
        """Every tensor the adapter changes must exist in the base model."""
        missing = sorted(k for k in self.pairs if not known(k))
        if missing:
            raise ModelLoadError(f"adapter {self.path}: changes {missing[0]}, which the base model does not have "
                                 f"({len(missing)} such tensors); it was trained on another base "
                                 f"({self.base or 'not recorded'})")


def resolve_adapter(ref: str | Path, *, root: Path | None = None) -> Path:
    """An adapter folder: ``ref`` itself when it is one, else ``root/.agentflow/adapters/ref``."""
    direct = Path(ref).expanduser()
    named = (root or Path.cwd()) / ADAPTER_DIR / str(ref)
    for candidate in (direct, named):
        if (candidate / "adapter_config.json").is_file():
            return candidate.resolve()
    where = named.parent
    present = sorted(p.name for p in where.iterdir() if (p / "adapter_config.json").is_file()) if where.is_dir() else []
    raise ModelLoadError(
        f"adapter {str(ref)!r}: no adapter_config.json in {direct} or {named}; give an adapter folder or the name of "
        f"one in {where} (there: {', '.join(present) or 'none'}); `agentflow tune --name NAME` writes them"
    )


def load_adapter(path: Path) -> LoraAdapter:
    """Read a peft LoRA adapter folder (CPU tensors); refuse the variants the server cannot merge exactly."""
    from safetensors.torch import load_file

    config_path = path / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"adapter {path}: cannot read adapter_config.json ({exc})") from exc
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise ModelLoadError(f"adapter {path}: peft_type {kind!r} is not served; the server merges LORA adapters")
    for flag in ("use_dora", "fan_in_fan_out"):
        if config.get(flag):
            raise ModelLoadError(f"adapter {path}: {flag} adapters are not served (plain LoRA and rsLoRA are)")
    rank, alpha = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModelLoadError(f"adapter {path}: per-module rank_pattern/alpha_pattern is not served")
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    weights_path = path / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise ModelLoadError(f"adapter {path}: adapter_model.safetensors is missing (only safetensors adapters load)")
    tensors = load_file(str(weights_path), device="cpu")
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        found = _KEY.match(key)
        if found is None or found.group(2) not in TARGETS:
            raise ModelLoadError(f"adapter {path}: tensor {key!r} is not a LoRA matrix of "
                                 f"{', '.join(TARGETS)}; the server merges those only")
        halves.setdefault(found.group(1) + ".weight", {})[found.group(3)] = tensor
    pairs = {}
    for key, half in halves.items():
        if set(half) != {"A", "B"}:
            raise ModelLoadError(f"adapter {path}: {key} has lora_{''.join(half)} without its other half")
        pairs[key] = (half["A"], half["B"])
    if not pairs:
        raise ModelLoadError(f"adapter {path}: adapter_model.safetensors holds no LoRA matrices")
    base = None
    meta = path / "tune.json"
    if meta.is_file():
        try:
            base = json.loads(meta.read_text(encoding="utf-8")).get("base")
        except ValueError:
            base = None
    return LoraAdapter(path=path, name=path.name, scale=scale, pairs=pairs, base=base)


def split_model_ref(model: str) -> tuple[str, str | None]:
    """``smollm2-135m+rag-cite`` -> ``("smollm2-135m", "rag-cite")``; no ``+`` -> ``(model, None)``."""
    base, plus, adapter = model.rpartition("+")
    if not plus or not base or not adapter:
        return model, None
    return base, adapter
