"""Load a model directory into a running node: device and dtype choice, weights, kernels, engine, scheduler."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentflow.serve.config import LlamaSpec, ModelLoadError, load_spec
from agentflow.serve.engine import Engine, EngineConfig
from agentflow.serve.metrics import NodeMetrics
from agentflow.serve.model import DecodeOps, LlamaModel
from agentflow.serve.scheduler import Scheduler
from agentflow.serve.tokenizer import Tokenizer
from agentflow.serve.weights import load_weights

log = logging.getLogger(__name__)

Device = Literal["auto", "cuda", "cpu"]
DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu")


@dataclass
class NodeSettings:
    """Everything ``agentflow node serve`` can set."""

    model_dir: Path
    device: Device = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_batch: int = 32
    queue_limit: int = 256
    max_len: int | None = None
    cuda_graphs: bool = True
    threads: int | None = None
    served_names: tuple[str, ...] = ()
    """Extra names requests may use for the model (like vLLM's ``--served-model-name``)."""
    max_request_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 before they are parsed."""
    allow_hosts: tuple[str, ...] = ()
    """Host header names accepted besides loopback (see :func:`agentflow.serve.guards.allowed_hosts`)."""


@dataclass
class NodeRuntime:
    """A loaded model with its engine and scheduler, ready to be served."""

    settings: NodeSettings
    model_name: str
    spec: LlamaSpec
    tokenizer: Tokenizer
    engine: Engine
    scheduler: Scheduler
    metrics: NodeMetrics

    @property
    def names(self) -> tuple[str, ...]:
        """Every model name this node answers to: the directory's name first."""
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
        from agentflow.serve.kernels import TritonOps, self_check

        self_check(torch.device("cuda"), torch.bfloat16, max_len=min(max_len, 1024))
        return TritonOps(max_len=max_len, folded=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the PyTorch path, said out loud
        log.warning("Triton decode kernels unavailable (%s); using the PyTorch decode path", exc)
        return None


def load_node(settings: NodeSettings) -> NodeRuntime:
    """Load the model in ``settings.model_dir`` and build its engine (the scheduler is not started yet)."""
    import torch

    model_dir = settings.model_dir.resolve()
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {settings.model_dir} does not exist")
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    spec = load_spec(model_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    weights = load_weights(model_dir, spec, device=torch.device(device), dtype=dtype)
    max_len = min(settings.max_len or spec.max_position_embeddings, spec.max_position_embeddings)
    ops = gpu_ops(max_len) if device == "cuda" else None
    model = LlamaModel(weights, max_slots=settings.max_batch, max_len=max_len, ops=ops)
    tokenizer = Tokenizer.load(model_dir)
    config = EngineConfig(max_batch=settings.max_batch, max_len=max_len, cuda_graphs=settings.cuda_graphs)
    engine = Engine(model, config, tokenizer=tokenizer)
    metrics = NodeMetrics()
    scheduler = Scheduler(engine, queue_limit=settings.queue_limit, metrics=metrics)
    log.info("loaded %s (%d parameters) on %s as %s, context %d, max batch %d", model_dir.name,
             spec.num_parameters, device, dtype, max_len, settings.max_batch)
    return NodeRuntime(settings, model_dir.name, spec, tokenizer, engine, scheduler, metrics)
