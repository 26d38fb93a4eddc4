"""``agentflow tune``: LoRA fine-tuning of the local model on a dataset, recorded runs, or a router's labels.

torch, transformers and peft are imported only when the command runs (``pip install 'agentflow[tune]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  agentflow tune --dataset ../shared/data/nq_open_oracle --format nq_open_oracle --limit 200 --name rag-cite
  agentflow tune --from-traces --tag origin=serve --require-feedback --name from-users
  agentflow tune --classify graphs/agentic_rag.yaml --name router
then serve it: agentflow model-server serve --model smollm2-135m+rag-cite
or name it in agentflow.yaml:  large: local/smollm2-135m+rag-cite
"""


def _fraction_or_count(text: str) -> float | int:
    value = float(text)
    if value < 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"give a fraction below 1 (0.1) or a whole count (20), got {text}")
    return int(value) if value >= 1 else value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_parser(subparsers: Any) -> None:
    """Add ``tune`` to the ``agentflow`` command."""
    p = subparsers.add_parser(
        "tune", help="LoRA fine-tune the local model on a dataset, recorded runs or a router (needs the 'tune' extra)",
        description="Fine-tune a local Llama-family model with LoRA (peft on torch, CPU or GPU) and save an adapter "
                    "the model server serves.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_argument_group("training data (one source)")
    source.add_argument("--dataset", type=Path, help="an evaluation set's folder or file (with --format)")
    source.add_argument("--format", dest="fmt", help="the dataset's format (see agentflow eval --help)")
    source.add_argument("--split", help="the dataset's split (default: train where the format has one)")
    source.add_argument("--task", choices=("route", "rag", "qa", "text"),
                        help="what to learn from the dataset (default: from its gold: routes, cited answers, answers)")
    source.add_argument("--offset", type=int, default=0, help="skip the split's first N items (keep them for eval)")
    source.add_argument("--limit", type=_positive, help="take at most N items (after --offset)")
    source.add_argument("--label-examples", type=int, metavar="N",
                        help="route: examples per label in the prompt (default all; the classify node must list as many)")
    source.add_argument("--distractors", type=int, default=1,
                        help="rag: passages placed beside each question's gold ones (default 1)")
    source.add_argument("--from-traces", nargs="?", const=".agentflow/traces.db", metavar="DB",
                        help="recorded runs whose checks passed (and, with feedback, got a thumbs up); "
                             "default store .agentflow/traces.db")
    source.add_argument("--workflow", help="--from-traces: only runs of this workflow")
    source.add_argument("--tag", help="--from-traces: only runs with this tag (origin=serve, variant=b)")
    source.add_argument("--require-feedback", action="store_true",
                        help="--from-traces: only runs that got a thumbs up")
    source.add_argument("--node", help="--from-traces: the answering node (default answer); "
                                       "--classify: the classify node (default the first)")
    source.add_argument("--classify", type=Path, metavar="WORKFLOW",
                        help="a workflow whose classify node's labels and examples are the training data")
    source.add_argument("--examples", type=Path, metavar="FILE",
                        help="examples as JSON lines: {\"prompt\": [messages] or \"text\", \"completion\": \"...\"}")
    out = p.add_argument_group("model and output")
    out.add_argument("--base", default="smollm2-135m",
                     help="the base model: a packaged name, a .gguf file or a HuggingFace folder (default smollm2-135m)")
    out.add_argument("--name", help="save under .agentflow/adapters/NAME (served as BASE+NAME)")
    out.add_argument("--out", type=Path, help="save in this folder instead")
    out.add_argument("--merge", action="store_true", help="also write base+adapter merged weights to OUT/merged")
    out.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    out.add_argument("--threads", type=_positive, help="CPU threads for training")
    out.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                     help="auto (default): bf16 autocast where the device multiplies bf16 natively, else fp32")
    hp = p.add_argument_group("training")
    hp.add_argument("--held-out", type=_fraction_or_count, default=0.1,
                    help="fraction (0.1) or count (20) of examples held out and reported on (default 0.1)")
    hp.add_argument("--seed", type=int, default=0, help="seed of the split, LoRA's initialisation and the order")
    hp.add_argument("--epochs", type=float, default=1.0)
    hp.add_argument("--max-steps", type=_positive, help="stop after N optimizer steps (overrides --epochs)")
    hp.add_argument("--lr", type=float, default=5e-4)
    hp.add_argument("--rank", type=_positive, default=8)
    hp.add_argument("--alpha", type=float, default=16.0)
    hp.add_argument("--batch-size", type=_positive, default=8)
    hp.add_argument("--max-len", type=_positive, default=1024, help="leave out longer examples (tokens)")
    hp.add_argument("--eval-generate", type=int, default=32,
                    help="held-out examples whose greedy completion is checked for an exact match (default 32)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``agentflow tune``; exit code 2 on bad input, 0 when the adapter is saved."""
    from agentflow.errors import UsageError
    from agentflow.errors import AgentflowError

    sources = [s for s in ("dataset", "from_traces", "classify", "examples") if getattr(args, s)]
    if len(sources) != 1:
        raise UsageError("give one source of training data: --dataset with --format, --from-traces, --classify "
                         "or --examples")
    if args.dataset and not args.fmt:
        raise UsageError("--dataset needs --format NAME (the formats of agentflow eval)")
    if not (args.name or args.out):
        raise UsageError("say where the adapter goes: --name NAME (.agentflow/adapters/NAME) or --out DIR")
    try:
        return _run(args, sources[0])
    except AgentflowError as exc:
        print(f"agentflow tune: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, source: str) -> int:
    from agentflow.model_server.adapter import ADAPTER_DIR
    from agentflow.tune.base import load_base
    from agentflow.tune.examples import classify_examples, dataset_examples, load_examples_file, split_examples
    from agentflow.tune.train import TuneConfig, save, save_merged, train

    described = source
    if source == "dataset":
        examples = dataset_examples(args.dataset, args.fmt, task=args.task, split=args.split, offset=args.offset,
                                    limit=args.limit, distractors=args.distractors, seed=args.seed,
                                    label_examples=args.label_examples)
        described = f"{args.fmt}:{args.dataset}"
    elif source == "from_traces":
        from agentflow.tune.traces import TraceFilter, trace_examples

        picked = trace_examples(args.from_traces, TraceFilter(
            workflow=args.workflow, tag=args.tag, node=args.node or "answer",
            require_feedback=args.require_feedback, limit=args.limit or 10_000))
        print(f"{len(picked.examples)} of {picked.considered} recorded runs qualify"
              + "".join(f"; {n} left out: {why}" for why, n in picked.left_out.items()), file=sys.stderr)
        examples = picked.examples
        described = f"traces:{args.from_traces}"
    elif source == "classify":
        examples = classify_examples(args.classify, args.node)
        described = f"classify:{args.classify}"
    else:
        examples = load_examples_file(args.examples)
        described = f"examples:{args.examples}"
    split = split_examples(examples, held_out=args.held_out, seed=args.seed)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    base = load_base(args.base, device=device)
    config = TuneConfig(rank=args.rank, alpha=args.alpha, lr=args.lr, epochs=args.epochs, max_steps=args.max_steps,
                        batch_size=args.batch_size, max_len=args.max_len, seed=args.seed,
                        eval_generate=args.eval_generate, threads=args.threads,
                        precision=args.precision)
    model, result = train(base, split, config, progress=not args.quiet)
    out = args.out or ADAPTER_DIR / args.name
    task = args.task or ("route" if source == "classify" else "")
    save(model, base, result, out, split, task=task, source=described)
    if args.merge:
        save_merged(model, base, out / "merged")
    summary = {k: v for k, v in result.to_dict().items() if k not in ("losses", "config")}
    summary.update(adapter=str(out), first_loss=result.losses[0], last_loss=result.losses[-1])
    print(json.dumps(summary, indent=2))
    served = f"{base.name}+{args.name}" if args.name else f"{base.name} --adapter {out}"
    print(f"saved {out}; serve it with: agentflow model-server serve --model {served}", file=sys.stderr)
    return 0
