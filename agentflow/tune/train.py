"""LoRA fine-tuning on the CPU or a GPU: tokenize, train with a progress bar, report on the held-out split, save.

Prompts are tokenized exactly as the model server tokenizes a request (the chat template with the generation prompt,
no added special tokens), the completion follows with the end-of-turn token, and the loss counts the
completion's tokens only; the vocabulary projection runs on those positions alone, which on a 49k-token
vocabulary is most of the saving when prompts carry documents. Everything random (LoRA's initialisation,
dropout, the order of examples) follows ``seed``: the same data and seed give the same adapter.

The forward and backward passes run under bf16 autocast where the device multiplies bf16 natively (a GPU
with bf16, a CPU with AVX-512 BF16 or AMX: there a training step is 2-4x faster than in fp32); the LoRA
weights, the optimizer and the loss stay fp32 (``precision="fp32"`` keeps everything fp32).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.tune.base import LoadedBase, TuneError, module_device, peak_memory_mb
from agentflow.tune.examples import Split, TrainExample

if TYPE_CHECKING:
    import torch

DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TuneConfig:
    """The knobs of one fine-tuning run (defaults suit a 135M model on a few hundred examples)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = DEFAULT_TARGETS
    lr: float = 5e-4
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    max_len: int = 1024
    """Longer examples (prompt and completion in tokens) are left out, and counted."""
    seed: int = 0
    warmup: float = 0.05
    """Fraction of the steps over which the learning rate rises linearly; then it decays (cosine) to 10%."""
    eval_generate: int = 32
    """Held-out examples whose greedy completion is compared with the gold (exact match), after training."""
    threads: int | None = None
    precision: str = "auto"
    """auto: bf16 autocast where the device multiplies bf16 natively, else fp32; bf16 or fp32 to choose."""


PRECISIONS = ("auto", "bf16", "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the training passes (None: plain fp32), or a TuneError for a bad choice."""
    import torch

    if precision not in PRECISIONS:
        raise TuneError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    else:
        native = False
    if native or precision == "bf16":
        return torch.bfloat16
    return None


@dataclass
class TuneResult:
    """What a run did and measured: written to ``tune.json`` beside the adapter."""

    base: str
    examples_train: int
    examples_held_out: int
    skipped_too_long: int
    steps: int
    train_s: float
    peak_memory_mb: float
    device: str
    precision: str
    """What the training passes ran in: bf16 (autocast) or fp32."""
    losses: list[float] = field(default_factory=list)
    held_out_loss_before: float | None = None
    held_out_loss_after: float | None = None
    held_out_exact_before: float | None = None
    held_out_exact_after: float | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    prompt_len: int


def encode(base: LoadedBase, example: TrainExample) -> Encoded:
    """Prompt ids as the model server builds them, then the completion and the end-of-turn token."""
    tok = base.tokenizer
    if isinstance(example.prompt, tuple):
        if not base.has_chat_template:
            raise TuneError(f"base model {base.ref} has no chat template; give plain-text prompts "
                            "(a .jsonl of {\"prompt\": \"...\", \"completion\": \"...\"}) or a chat model")
        text = tok.apply_chat_template(list(example.prompt), tokenize=False, add_generation_prompt=True)
        prompt = list(tok(text, add_special_tokens=False)["input_ids"])
    else:
        prompt = list(tok(example.prompt, add_special_tokens=True)["input_ids"]) if example.prompt else []
        if not prompt and base.spec.bos_token_id is not None:
            prompt = [base.spec.bos_token_id]
    completion = list(tok(example.completion, add_special_tokens=False)["input_ids"])
    return Encoded(prompt + completion + [base.eos_id], len(prompt))


def completion_loss(model: Any, batch: list[Encoded], device: torch.device) -> torch.Tensor:
    """Mean cross-entropy of the completion tokens of a right-padded batch (logits at those positions only)."""
    import torch
    import torch.nn.functional as F

    width = max(len(e.ids) for e in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, e in enumerate(batch):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        mask[r, : len(e.ids)] = 1
        for c in range(e.prompt_len - 1, len(e.ids) - 1):  # position c predicts token c + 1
            rows.append(r)
            cols.append(c)
            targets.append(e.ids[c + 1])
    inner = _decoder(model)
    hidden = inner.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
    logits = inner.lm_head(picked).float()
    return F.cross_entropy(logits, torch.tensor(targets, device=device))


def _decoder(model: Any) -> Any:
    """The ``*ForCausalLM`` module under a peft wrapper (or the module itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def held_out_loss(model: Any, encoded: Sequence[Encoded], batch_size: int) -> float | None:
    """Mean completion loss over the held-out examples (``None`` when there are none)."""
    import torch

    if not encoded:
        return None
    device = module_device(model)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = list(encoded[start:start + batch_size])
            tokens = sum(len(e.ids) - e.prompt_len for e in batch)
            total += float(completion_loss(model, batch, device)) * tokens
            count += tokens
    return total / max(count, 1)


def greedy_completion(model: Any, base: LoadedBase, prompt_ids: list[int], max_new: int) -> list[int]:
    """Greedy tokens after ``prompt_ids`` until the end-of-turn token (excluded) or ``max_new``."""
    import torch

    device = module_device(model)
    with torch.no_grad():
        out = _decoder(model).generate(torch.tensor([prompt_ids], device=device), max_new_tokens=max_new,
                                       do_sample=False, eos_token_id=base.eos_id, pad_token_id=base.eos_id)
    new = out[0, len(prompt_ids):].tolist()
    return new[: new.index(base.eos_id)] if base.eos_id in new else new


def exact_match(model: Any, base: LoadedBase, encoded: Sequence[Encoded], limit: int) -> float | None:
    """Share of held-out examples whose greedy completion is the gold completion, token for token."""
    chosen = list(encoded[:limit])
    if not chosen:
        return None
    model.eval()
    hits = 0
    for e in chosen:
        gold = e.ids[e.prompt_len:-1]
        hits += greedy_completion(model, base, e.ids[: e.prompt_len], len(gold) + 4) == gold
    return hits / len(chosen)


def train(base: LoadedBase, split: Split, config: TuneConfig, *, progress: bool = True,
          log: Callable[[str], None] | None = None) -> tuple[Any, TuneResult]:
    """Train a LoRA adapter on ``split.train``; returns the peft model and what was measured."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    say = log or (lambda text: print(text, file=sys.stderr))
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    encoded = [encode(base, e) for e in split.train]
    kept = [e for e in encoded if len(e.ids) <= config.max_len]
    held = [e for e in (encode(base, x) for x in split.held_out) if len(e.ids) <= config.max_len]
    skipped = len(encoded) - len(kept)
    if not kept:
        raise TuneError(f"every training example is longer than --max-len {config.max_len} tokens")
    if skipped:
        say(f"left out {skipped} training examples longer than {config.max_len} tokens")
    device = module_device(base.model)
    amp = autocast_dtype(config.precision, device)
    loss_before = held_out_loss(base.model, held, config.batch_size)
    exact_before = exact_match(base.model, base, held, config.eval_generate) if config.eval_generate else None
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.targets), task_type="CAUSAL_LM", bias="none")
    torch.manual_seed(config.seed)
    model = get_peft_model(base.model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(kept) / config.batch_size)
    steps = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    warm = max(1, int(steps * config.warmup))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    rng = random.Random(config.seed)
    order: list[int] = []
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, desc=f"tune {base.name}", unit="step", disable=not progress, file=sys.stderr)
    for step in range(steps):
        if len(order) < config.batch_size:
            fresh = list(range(len(kept)))
            rng.shuffle(fresh)
            order += fresh
        batch = [kept[i] for i in order[: config.batch_size]]
        del order[: config.batch_size]
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = completion_loss(model, batch, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        bar.update(1)
    bar.close()
    train_s = time.perf_counter() - started
    loss_after = held_out_loss(model, held, config.batch_size)
    exact_after = exact_match(model, base, held, config.eval_generate) if config.eval_generate else None
    result = TuneResult(
        base=base.ref, examples_train=len(kept), examples_held_out=len(held), skipped_too_long=skipped,
        steps=steps, train_s=round(train_s, 2), peak_memory_mb=round(peak_memory_mb(device.type), 1),
        device=device.type, precision="bf16" if amp is not None else "fp32", losses=losses, held_out_loss_before=_round(loss_before),
        held_out_loss_after=_round(loss_after), held_out_exact_before=exact_before,
        held_out_exact_after=exact_after, config={**asdict(config), "targets": list(config.targets)},
    )
    return model, result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def save(model: Any, base: LoadedBase, result: TuneResult, out: Path, split: Split, *, task: str, source: str,
         extra: dict[str, Any] | None = None) -> Path:
    """Write the adapter (peft's safetensors files), ``tune.json`` and the two splits' examples under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    meta = {"base": base.ref, "base_name": base.name, "task": task, "source": source, **(extra or {}),
            "result": result.to_dict()}
    (out / "tune.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for name, rows in (("train.jsonl", split.train), ("held_out.jsonl", split.held_out)):
        with (out / name).open("w", encoding="utf-8") as handle:
            for example in rows:
                handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
    return out


def save_merged(model: Any, base: LoadedBase, out: Path) -> Path:
    """Base plus adapter as one HuggingFace model directory (fp32 safetensors, config, tokenizer) the model server
    serves."""
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    base.tokenizer.save_pretrained(str(out))
    generation = {"bos_token_id": base.spec.bos_token_id, "eos_token_id": list(base.spec.eos_token_ids) or base.eos_id}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    return out
