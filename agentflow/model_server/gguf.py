"""GGUF models in the server: metadata to a :class:`LlamaSpec`, tensors dequantized into :class:`LlamaWeights`.

The file is read with ``gguf``, the format's reference library (``GGUFReader`` maps it; ``quants.dequantize``
expands each quantized tensor to fp32), and the server runs its own forward pass on the result, so a GGUF model
and a safetensors one share every line after loading. Two conversions undo what llama.cpp's converter did:

- tensor names: ``blk.N.attn_q.weight`` is HuggingFace's ``model.layers.N.self_attn.q_proj.weight`` and so on
  (:data:`TENSOR_NAMES`); ``output.weight`` absent means the head is tied to the embeddings;
- for the ``llama`` architecture the converter permutes the rows of q and k (its rotary pairs adjacent
  dimensions, HuggingFace's and the engine's pair the two halves of a head); :func:`unpermute` reverses it.

The tokenizer, special tokens and chat template come from the file's metadata through transformers' own GGUF
converter (:meth:`agentflow.model_server.tokenizer.Tokenizer.load_gguf`), the reference this loader is tested against.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.model_server.config import LlamaSpec, ModelLoadError, RopeSpec
from agentflow.model_server.weights import LlamaWeights, from_state_dict

if TYPE_CHECKING:
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType

    from agentflow.model_server.adapter import LoraAdapter

SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("llama", "qwen2")
"""``general.architecture`` values the engine runs: Llama 1/2/3 (and Mistral, SmolLM2, TinyLlama, which llama.cpp
writes as ``llama``) and Qwen2/2.5 (q/k/v bias)."""
PERMUTED_ARCHITECTURES: tuple[str, ...] = ("llama",)
"""Architectures whose q/k rows llama.cpp's converter permutes (its ``LlamaModel.permute``)."""

_LAYER_TENSORS: dict[str, str] = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_TENSORS: dict[str, str] = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_ROPE_FREQS = "rope_freqs.weight"  # Llama 3.1+ stores its rope scaling as per-frequency factors


def find_gguf(folder: Path) -> Path | None:
    """The one ``*.gguf`` file in ``folder`` (``None`` when there is none); several are an error naming them."""
    files = sorted(folder.glob("*.gguf"))
    if len(files) > 1:
        raise ModelLoadError(
            f"{folder}: holds {len(files)} GGUF files ({', '.join(f.name for f in files)}); "
            "pass the one to serve as --model FILE.gguf"
        )
    return files[0] if files else None


def supported_tensor_types() -> tuple[str, ...]:
    """GGML tensor types ``gguf.quants.dequantize`` expands (F32, F16 and the quantized types it implements)."""
    from gguf import quants

    return ("F32", "F16", *(t.name for t in getattr(quants, "_type_traits", {})))


def tensor_names(num_layers: int) -> dict[str, str]:
    """GGUF tensor name -> the HuggingFace name :func:`agentflow.model_server.weights.from_state_dict` reads."""
    names = dict(_GLOBAL_TENSORS)
    for i in range(num_layers):
        names.update({f"blk.{i}.{g}": f"model.layers.{i}.{h}" for g, h in _LAYER_TENSORS.items()})
    return names


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Reverse llama.cpp's q/k row permutation (interleaved rotary pairs back to rotate-half halves)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes are in the file, and how they are stored."""

    name: str
    shape: tuple[int, ...]
    """Rows first (numpy order, the reverse of the dimensions GGUF lists)."""
    tensor_type: GGMLQuantizationType
    start: int
    """Absolute byte offset in the file."""
    nbytes: int


# Fixed-size metadata value types (gguf.GGUFValueType): struct format of one value.
_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Header:
    """One pass over a GGUF header: metadata, then the tensor table (tensor data is only memory-mapped).

    ``gguf.GGUFReader`` builds a numpy view per part of every field, ~250,000 of them for SmolLM2's vocabulary and
    merges (4-9 s here); this reads each value once with ``struct`` and numeric arrays with one ``frombuffer``.
    """

    def __init__(self, path: Path) -> None:
        import numpy as np

        self.blob = np.memmap(path, mode="r", dtype=np.uint8)
        self.buf = memoryview(self.blob)
        self.pos = 0
        if bytes(self.buf[:4]) != b"GGUF":
            raise ValueError("no GGUF magic bytes")
        version, tensor_count, kv_count = self._unpack("<IQQ", 4)
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} (versions 2 and 3 are read)")
        self.metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = self._string()
            (kind,) = self._unpack("<I")
            self.metadata[key] = self._value(kind)
        table = []
        for _ in range(tensor_count):
            name = self._string()
            (dims,) = self._unpack("<I")
            shape = self._unpack(f"<{dims}Q")
            kind, offset = self._unpack("<IQ")
            table.append((name, tuple(int(d) for d in reversed(shape)), kind, offset))
        alignment = int(self.metadata.get("general.alignment", 32))
        self.data_start = (self.pos + alignment - 1) // alignment * alignment
        self.table = table

    def _unpack(self, fmt: str, at: int | None = None) -> tuple[Any, ...]:
        if at is not None:
            self.pos = at
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def _string(self) -> str:
        (length,) = self._unpack("<Q")
        text = bytes(self.buf[self.pos : self.pos + length]).decode("utf-8", errors="replace")
        self.pos += length
        return text

    def _value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self._unpack("<" + _SCALARS[kind])[0]
        if kind == _STRING:
            return self._string()
        if kind != _ARRAY:
            raise ValueError(f"metadata value type {kind} is not a GGUF type")
        item, count = self._unpack("<IQ")
        if item in _SCALARS:
            import numpy as np

            dtype = np.dtype("<" + _SCALARS[item])
            values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            self.pos += dtype.itemsize * count
            return values.tolist()
        return [self._value(item) for _ in range(count)]


class GGUFModel:
    """One opened GGUF file (memory-mapped), parsed once: its metadata, its tensors by name, and (on request)
    its tokenizer, built from that same metadata."""

    def __init__(self, path: Path) -> None:
        try:
            import gguf
        except ImportError as exc:
            raise ModelLoadError(f"{path}: GGUF models need the 'gguf' package (the model-server extra has it): "
                                 "pip install gguf") from exc

        self.path = path
        try:
            header = _Header(path)
        except (ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{path}: not a readable GGUF file ({exc})") from exc
        self.metadata = header.metadata
        self._blob = header.blob
        self.tensors: dict[str, TensorEntry] = {}
        for name, shape, kind, offset in header.table:
            try:
                qtype = gguf.GGMLQuantizationType(kind)
                block, size = gguf.GGML_QUANT_SIZES[qtype]
            except (ValueError, KeyError) as exc:
                raise ModelLoadError(f"{path}: tensor {name} has ggml type {kind}, which gguf does not know") from exc
            count = 1
            for d in shape:
                count *= d
            self.tensors[name] = TensorEntry(name, shape, qtype, header.data_start + offset, count // block * size)
        self.architecture = str(self.field("general.architecture", ""))
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ModelLoadError(
                f"{path}: GGUF architecture {self.architecture!r} (general.architecture) is not supported by the "
                f"model server's engine; supported: {', '.join(SUPPORTED_ARCHITECTURES)} (the Llama family: Llama 1-3, "
                "Mistral, SmolLM2, TinyLlama, Qwen2/2.5). Serve other architectures with vLLM or llama.cpp."
            )

    def field(self, key: str, default: Any = None) -> Any:
        """A metadata value (``default`` when absent)."""
        return self.metadata.get(key, default)

    def arch(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped value: ``arch("block_count")`` reads ``llama.block_count``."""
        value = self.field(f"{self.architecture}.{key}", default)
        if value is None:
            raise ModelLoadError(f"{self.path}: metadata key {self.architecture}.{key} is missing")
        return value

    def spec(self) -> LlamaSpec:
        """The model's shape from the ``{arch}.*`` and ``tokenizer.ggml.*`` metadata."""
        heads = int(self.arch("attention.head_count"))
        hidden = int(self.arch("embedding_length"))
        head_dim = int(self.arch("attention.key_length", hidden // heads))
        rotary = int(self.arch("rope.dimension_count", head_dim))
        if rotary != head_dim:
            raise ModelLoadError(f"{self.path}: partial rotary ({self.architecture}.rope.dimension_count={rotary} "
                                 f"of head_dim {head_dim}) is not supported by the model server's engine")
        if "token_embd.weight" not in self.tensors:
            raise ModelLoadError(f"{self.path}: tensor token_embd.weight is missing")
        eos = [int(v) for k in ("eos_token_id", "eot_token_id", "eom_token_id")
               if (v := self.field(f"tokenizer.ggml.{k}")) is not None]
        bos = self.field("tokenizer.ggml.bos_token_id")
        return LlamaSpec(
            vocab_size=int(self.tensors["token_embd.weight"].shape[0]),
            hidden_size=hidden,
            intermediate_size=int(self.arch("feed_forward_length")),
            num_layers=int(self.arch("block_count")),
            num_heads=heads,
            num_kv_heads=int(self.arch("attention.head_count_kv", heads)),
            head_dim=head_dim,
            max_position_embeddings=int(self.arch("context_length", 2048)),
            rms_norm_eps=float(self.arch("attention.layer_norm_rms_epsilon", 1e-5)),
            tie_word_embeddings="output.weight" not in self.tensors,
            qkv_bias="blk.0.attn_q.bias" in self.tensors,
            rope=self._rope(head_dim),
            model_type=self.architecture,
            bos_token_id=int(bos) if bos is not None else None,
            eos_token_ids=tuple(dict.fromkeys(eos)),
        )

    def _rope(self, head_dim: int) -> RopeSpec:
        theta = float(self.arch("rope.freq_base", 10000.0))
        kind = str(self.arch("rope.scaling.type", "none"))
        factor = float(self.arch("rope.scaling.factor", 1.0))
        original = int(self.arch("rope.scaling.original_context_length", 8192))
        if _ROPE_FREQS in self.tensors:
            return self._llama3_rope(theta, head_dim, original)
        if kind in ("none", "") or (kind == "linear" and factor == 1.0):
            return RopeSpec(theta=theta)
        if kind == "linear":
            return RopeSpec(theta=theta, rope_type="linear", factor=factor)
        raise ModelLoadError(f"{self.path}: rope scaling {kind!r} ({self.architecture}.rope.scaling.type) is not "
                             "supported by the model server's engine; supported: none, linear, and Llama 3's "
                             "rope_freqs")

    def _llama3_rope(self, theta: float, head_dim: int, original: int) -> RopeSpec:
        """Llama 3's scaling from its per-frequency factors, checked against the form the engine computes."""
        factors = self._array(_ROPE_FREQS).astype("float64").reshape(-1)
        rope = RopeSpec(theta=theta, rope_type="llama3", factor=float(factors.max()), low_freq_factor=1.0,
                        high_freq_factor=4.0, original_max_position_embeddings=original)
        base = [1.0 / (theta ** (i / head_dim)) for i in range(0, head_dim, 2)]
        spec = LlamaSpec(0, head_dim, 0, 0, 1, 1, head_dim, 0, rope=rope)
        implied = [b / f for b, f in zip(base, spec.inv_freq(), strict=True)]
        if len(implied) != factors.size or any(abs(a - b) > 1e-3 * b for a, b in zip(implied, factors, strict=True)):
            raise ModelLoadError(f"{self.path}: {_ROPE_FREQS} does not have Llama 3's form (factor "
                                 f"{rope.factor}, low 1, high 4, original {original}); the server cannot serve it")
        return rope

    def _array(self, name: str) -> np.ndarray:
        """A tensor dequantized to fp32, rows first (numpy order, the reverse of GGUF's ``shape``)."""
        from gguf import quants

        t = self.tensors[name]
        raw = self._blob[t.start : t.start + t.nbytes].reshape(*t.shape[:-1], -1)  # rows of stored bytes
        try:
            return quants.dequantize(raw, t.tensor_type)
        except NotImplementedError as exc:
            raise ModelLoadError(self._type_error(name)) from exc

    def _type_error(self, name: str) -> str:
        t = self.tensors[name]
        return (f"{self.path}: tensor {name} has type {t.tensor_type.name}, which cannot be dequantized; "
                f"supported: {', '.join(supported_tensor_types())}")

    def check(self, spec: LlamaSpec) -> None:
        """Fail before dequantizing anything: every tensor is one the engine uses, of a type it can expand."""
        known = tensor_names(spec.num_layers)
        unknown = [n for n in self.tensors if n not in known and n != _ROPE_FREQS]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ModelLoadError(f"{self.path}: tensors the Llama engine has no place for: {shown} (a "
                                 f"{self.architecture} variant the server does not run, such as mixture-of-experts)")
        types = set(supported_tensor_types())
        for name, t in self.tensors.items():
            if t.tensor_type.name not in types:
                raise ModelLoadError(self._type_error(name))

    def hf_tensors(self, spec: LlamaSpec) -> tuple[Callable[[str], torch.Tensor], Callable[[str], bool]]:
        """A getter of fp32 tensors by HuggingFace name (dequantized, q/k rows unpermuted) and a membership test:
        what the engine fuses, and what ``agentflow tune`` builds a trainable model from."""
        import torch

        to_gguf = {hf: g for g, hf in tensor_names(spec.num_layers).items()}
        by_hf = {hf: g for hf, g in to_gguf.items() if g in self.tensors}
        permuted = self.architecture in PERMUTED_ARCHITECTURES

        def get(key: str) -> torch.Tensor:
            if key not in by_hf:
                raise ModelLoadError(f"{self.path}: tensor {to_gguf.get(key, key)} is missing")
            name = by_hf[key]
            w = self._array(name)
            if permuted and (".attn_q." in name or ".attn_k." in name):
                w = unpermute(w, spec.num_heads if ".attn_q." in name else spec.num_kv_heads)
            return torch.from_numpy(w.copy())

        return get, by_hf.__contains__

    def weights(self, spec: LlamaSpec, *, device: torch.device, dtype: torch.dtype,
                adapter: LoraAdapter | None = None) -> LlamaWeights:
        """Dequantize every tensor (one at a time) into the engine's fused layout, merging ``adapter``."""
        self.check(spec)
        get, has = self.hf_tensors(spec)
        return from_state_dict(spec, get, has=has, device=device, dtype=dtype, adapter=adapter)

