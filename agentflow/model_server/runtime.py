"""Load a model into a running server: where its files are, device and dtype, weights, kernels, engine, scheduler."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentflow.model_server.adapter import LoraAdapter, load_adapter, resolve_adapter, split_model_ref
from agentflow.model_server.config import LlamaSpec, ModelLoadError, load_spec
from agentflow.model_server.cpu import WEIGHT_FORMATS, WeightFormat
from agentflow.model_server.engine import Engine, EngineConfig
from agentflow.model_server.gguf import GGUFModel, find_gguf
from agentflow.model_server.metrics import ServerMetrics
from agentflow.model_server.model import DecodeOps, LlamaModel
from agentflow.model_server.packaged import PACKAGED_MODELS, packaged_model_path
from agentflow.model_server.scheduler import Scheduler
from agentflow.model_server.tokenizer import Tokenizer
from agentflow.model_server.weights import load_weights

log = logging.getLogger(__name__)

Device = Literal["auto", "cuda", "cpu"]
DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu")
CPU_KV_BUDGET = 4 * 1024**3
"""Bytes of KV cache a CPU server allocates when ``--max-len`` is not given."""


@dataclass
class ServerSettings:
    """Everything ``agentflow model-server serve`` can set."""

    model_dir: Path
    """A HuggingFace model directory, a ``.gguf`` file or a folder holding one, or a packaged model's short name."""
    device: Device = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_batch: int = 32
    queue_limit: int = 256
    max_len: int | None = None
    cuda_graphs: bool = True
    threads: int | None = None
    """CPU threads for prefill and decode (default: every core but one; see
    :func:`agentflow.model_server.cpu.cpu_threads`)."""
    weights: WeightFormat = "auto"
    """``auto`` keeps the device's dtype (bf16 on a GPU, fp32 on a CPU); ``int8`` quantizes the layer matrices and
    the head at load, one scale per output channel (CPU only): a quarter of fp32's bytes per decode step."""
    served_names: tuple[str, ...] = ()
    """Extra names requests may use for the model (like vLLM's ``--served-model-name``)."""
    max_request_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 before they are parsed."""
    allow_hosts: tuple[str, ...] = ()
    """Host header names accepted besides loopback (see :func:`agentflow.model_server.guards.allowed_hosts`)."""
    adapter: Path | None = None
    """A LoRA adapter folder (or the name of one under ``.agentflow/adapters/``) merged into the weights at load;
    ``model_dir`` may name one too, as ``BASE+ADAPTER`` (see :mod:`agentflow.model_server.adapter`)."""


@dataclass
class ServerRuntime:
    """A loaded model with its engine and scheduler, ready to be served."""

    settings: ServerSettings
    model_name: str
    spec: LlamaSpec
    tokenizer: Tokenizer
    engine: Engine
    scheduler: Scheduler
    metrics: ServerMetrics

    @property
    def names(self) -> tuple[str, ...]:
        """Every model name this server answers to: the directory's name first."""
        return (self.model_name, *[n for n in self.settings.served_names if n != self.model_name])

    @property
    def context_len(self) -> int:
        """Tokens one sequence may hold, prompt and output together."""
        return self.engine.model.max_len


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when a GPU is visible; asking for ``cuda`` without one is an error."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not valid; valid: {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA device is visible to PyTorch")
    return device


def gpu_ops(max_len: int) -> DecodeOps | None:
    """Triton decode kernels when they import and pass their self-check on this GPU; ``None`` otherwise."""
    import torch

    try:
        from agentflow.model_server.kernels import TritonOps, self_check

        self_check(torch.device("cuda"), torch.bfloat16, max_len=min(max_len, 1024))
        return TritonOps(max_len=max_len, folded=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the PyTorch path, said out loud
        log.warning("Triton decode kernels unavailable (%s); using the PyTorch decode path", exc)
        return None


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a HuggingFace directory, or one GGUF file."""

    name: str
    """The model name requests use: the directory's name, the GGUF file's stem, or the packaged short name."""
    path: Path
    gguf: bool


def locate_model(model: Path) -> ModelSource:
    """Resolve ``--model``: a HuggingFace directory, a ``.gguf`` file, a folder holding one, or a packaged name."""
    if model.is_file():
        if model.suffix.lower() != ".gguf":
            raise ModelLoadError(f"--model {model}: a file must be a .gguf model; otherwise give a model directory")
        return ModelSource(model.stem, model.resolve(), gguf=True)
    if model.is_dir():
        folder = model.resolve()
        found = None if (folder / "config.json").is_file() else find_gguf(folder)
        return ModelSource(folder.name, found or folder, gguf=found is not None)
    if str(model) in PACKAGED_MODELS:
        return ModelSource(str(model), packaged_model_path(str(model)), gguf=True)
    raise ModelLoadError(
        f"--model {model} does not exist; give a HuggingFace model directory, a .gguf file (or a folder holding "
        f"one), or a packaged model name: {', '.join(sorted(PACKAGED_MODELS))}"
    )


def locate_with_adapter(model: Path, adapter: Path | None) -> tuple[ModelSource, LoraAdapter | None]:
    """The base model and the adapter to merge: ``--adapter``, or the ``+ADAPTER`` of ``BASE+ADAPTER``; the
    model's name becomes ``BASE+ADAPTER`` (the adapter folder's name)."""
    ref: str | Path | None = adapter
    if not model.exists() and adapter is None:
        base, named = split_model_ref(str(model))
        if named is not None:
            model, ref = Path(base), named
    source = locate_model(model)
    if ref is None:
        return source, None
    loaded = load_adapter(resolve_adapter(ref))
    return ModelSource(f"{source.name}+{loaded.name}", source.path, source.gguf), loaded


def default_max_len(spec: LlamaSpec, *, max_batch: int, device: str, dtype_bytes: int) -> int:
    """The model's context, cut on a CPU so the KV cache of ``max_batch`` slots fits :data:`CPU_KV_BUDGET`.

    SmolLM2's 8,192-token context at 32 slots would otherwise zero 12 GB of fp32 cache before the first request.
    """
    if device == "cuda":
        return spec.max_position_embeddings
    per_token = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * dtype_bytes * max_batch
    fits = max(512, CPU_KV_BUDGET // per_token // 256 * 256)
    return min(spec.max_position_embeddings, fits)


def load_server(settings: ServerSettings) -> ServerRuntime:
    """Load the model ``settings.model_dir`` names and build its engine (the scheduler is not started yet)."""
    import torch

    source, adapter = locate_with_adapter(settings.model_dir, settings.adapter)
    device = resolve_device(settings.device)
    if settings.weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights {settings.weights!r} is not valid; valid: {', '.join(WEIGHT_FORMATS)}")
    if settings.weights != "auto" and device != "cpu":
        raise ValueError(f"--weights {settings.weights} is a CPU option (the GPU path serves bf16); use --device cpu")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if source.gguf:
        gguf_model = GGUFModel(source.path)
        spec = gguf_model.spec()
        tokenizer = Tokenizer.from_gguf(gguf_model.metadata, model_name=source.name, path=source.path)
        weights = gguf_model.weights(spec, device=torch.device(device), dtype=dtype, adapter=adapter)
        del gguf_model  # drop the memory map of the quantized file
    else:
        spec = load_spec(source.path)
        weights = load_weights(source.path, spec, device=torch.device(device), dtype=dtype, adapter=adapter)
        tokenizer = Tokenizer.load(source.path)
    default_len = default_max_len(spec, max_batch=settings.max_batch, device=device, dtype_bytes=dtype.itemsize)
    max_len = min(settings.max_len or default_len, spec.max_position_embeddings)
    ops = gpu_ops(max_len) if device == "cuda" else None
    model = LlamaModel(weights, max_slots=settings.max_batch, max_len=max_len, ops=ops,
                       weight_format=settings.weights, threads=settings.threads)
    config = EngineConfig(max_batch=settings.max_batch, max_len=max_len, cuda_graphs=settings.cuda_graphs)
    engine = Engine(model, config, tokenizer=tokenizer)
    metrics = ServerMetrics()
    scheduler = Scheduler(engine, queue_limit=settings.queue_limit, metrics=metrics)
    if adapter is not None:
        log.info("merged LoRA adapter %s (%d matrices, scale %g) into %s", adapter.path, len(adapter.pairs),
                 adapter.scale, source.path)
    log.info("loaded %s from %s (%d parameters) on %s as %s (weights: %s, %.0f MB read per step), context %d of "
             "%d, max batch %d", source.name, source.path, spec.num_parameters, device, dtype, settings.weights,
             model.weight_bytes / 1e6, max_len, spec.max_position_embeddings, settings.max_batch)
    return ServerRuntime(settings, source.name, spec, tokenizer, engine, scheduler, metrics)
