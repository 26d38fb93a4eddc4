"""The base model to fine-tune, as a trainable transformers model, from whatever the model server serves.

A HuggingFace Llama-family directory loads with transformers as it is. A GGUF file (or a packaged model's short
name, ``smollm2-135m``) is read through the model server's own loader: every tensor dequantized to fp32 with its
q/k rows unpermuted (:meth:`agentflow.model_server.gguf.GGUFModel.hf_tensors`), so training starts from exactly the
weights the model server serves, and an adapter trained here merges back into them. The tokenizer and its chat
template come from the same place the model server takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.errors import InputError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from agentflow.model_server.config import LlamaSpec


class TuneError(InputError):
    """Fine-tuning cannot start or finish: a bad base model, no examples, an option out of range."""


@dataclass
class LoadedBase:
    """A base model ready for LoRA: the transformers module (fp32), its tokenizer and where it came from."""

    name: str
    """The name the model server serves it under (directory name, GGUF stem or packaged short name)."""
    ref: str
    """What was given (``smollm2-135m``, a folder, a ``.gguf`` file): recorded in ``tune.json``."""
    path: Path
    gguf: bool
    spec: LlamaSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def eos_id(self) -> int:
        """The token that ends an assistant turn (``<|im_end|>`` for SmolLM2, ``</s>`` for Llama 2)."""
        if self.spec.eos_token_ids:
            return int(self.spec.eos_token_ids[0])
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise TuneError(f"base model {self.ref}: no end-of-sequence token in its config or tokenizer")
        return int(eos)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


def hf_config(spec: LlamaSpec) -> Any:
    """The transformers config of the model server's :class:`LlamaSpec` (Llama, Mistral without a window, Qwen2)."""
    from transformers import LlamaConfig, Qwen2Config

    rope: dict[str, Any] = {"rope_type": spec.rope.rope_type, "rope_theta": spec.rope.theta}
    if spec.rope.rope_type == "linear":
        rope["factor"] = spec.rope.factor
    elif spec.rope.rope_type == "llama3":
        rope.update(factor=spec.rope.factor, low_freq_factor=spec.rope.low_freq_factor,
                    high_freq_factor=spec.rope.high_freq_factor,
                    original_max_position_embeddings=spec.rope.original_max_position_embeddings)
    common: dict[str, Any] = {
        "vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads, "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings, "rms_norm_eps": spec.rms_norm_eps,
        "tie_word_embeddings": spec.tie_word_embeddings, "rope_theta": spec.rope.theta,
        "bos_token_id": spec.bos_token_id,
        "eos_token_id": list(spec.eos_token_ids) if len(spec.eos_token_ids) > 1 else
        (spec.eos_token_ids[0] if spec.eos_token_ids else None),
    }
    if spec.rope.rope_type != "default":
        common["rope_scaling"] = rope
    if spec.model_type == "qwen2":
        return Qwen2Config(**common)
    return LlamaConfig(**common, head_dim=spec.head_dim, attention_bias=spec.qkv_bias, mlp_bias=False)


def load_base(ref: str | Path, *, device: str = "cpu") -> LoadedBase:
    """Load ``ref`` (a packaged name, a ``.gguf`` file or folder, a HuggingFace directory) for training, fp32."""
    import torch

    from agentflow.model_server.config import ModelLoadError, load_spec
    from agentflow.model_server.gguf import GGUFModel
    from agentflow.model_server.runtime import locate_model
    from agentflow.model_server.tokenizer import Tokenizer

    try:
        source = locate_model(Path(ref))
        if source.gguf:
            gguf_model = GGUFModel(source.path)
            spec = gguf_model.spec()
            gguf_model.check(spec)
            tokenizer = Tokenizer.from_gguf(gguf_model.metadata, model_name=source.name, path=source.path).hf
            get, has = gguf_model.hf_tensors(spec)
            model = _from_tensors(spec, get, has)
            del gguf_model
        else:
            spec = load_spec(source.path)
            tokenizer = Tokenizer.load(source.path).hf
            model = _from_directory(source.path)
    except ModelLoadError as exc:
        raise TuneError(f"base model {ref}: {exc}") from exc
    model.to(torch.device(device))
    return LoadedBase(name=source.name, ref=str(ref), path=source.path, gguf=source.gguf, spec=spec,
                     model=model, tokenizer=tokenizer)


def _from_tensors(spec: LlamaSpec, get: Any, has: Any) -> PreTrainedModel:
    """A transformers model whose weights are the model server's tensors (by HuggingFace name)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(hf_config(spec), dtype=torch.float32)
    state: dict[str, torch.Tensor] = {}
    for key in model.state_dict():
        if key == "lm_head.weight" and (spec.tie_word_embeddings or not has(key)):
            continue
        if key.endswith("rotary_emb.inv_freq"):
            continue
        state[key] = get(key).float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [k for k in missing if k != "lm_head.weight" and not k.endswith("inv_freq")]
    if left or unexpected:
        raise TuneError(f"the base model's tensors do not fit its config: missing {left[:3]}, unexpected "
                        f"{unexpected[:3]}")
    if spec.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


def _from_directory(path: Path) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True).eval()


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory of this process so far: the GPU's allocator peak on CUDA, the resident set's peak on a CPU."""
    import resource
    import sys

    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def module_device(model: Any) -> torch.device:
    return next(model.parameters()).device
