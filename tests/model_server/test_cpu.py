"""The CPU forward pass: equal to the reference decode, int8 weights close to fp32 on the real SmolLM2 and served
over HTTP with ``weights="int8"``, the thread policy, the ``--weights`` option, and the one-parse GGUF start-up.

The int8 bound is measured, not hoped for: per-channel int8 weights and bf16 activations move SmolLM2's logits by
about 1%, which flips near-ties. On this file greedy int8 output kept fp32's first 19-64 tokens over four prompts
(``benchmarks/node_cpu.py``: the first 29 of 128, and 95% of positions agree when both read fp32's tokens). The
test holds the first 12 tokens of one prompt equal and 90% agreement over 32 tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from openai import OpenAI

from agentflow.model_server import cpu
from agentflow.model_server.config import LlamaSpec
from agentflow.model_server.model import LlamaModel, TorchOps
from agentflow.model_server.runtime import ServerSettings, ServerRuntime, load_server
from agentflow.model_server.weights import random_weights

from .conftest import Served, serve
from .test_cli import parse

pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")

NAME = "smollm2-135m"
PROMPT = "The capital of France is"
TINY = LlamaSpec(vocab_size=64, hidden_size=48, intermediate_size=96, num_layers=2, num_heads=6, num_kv_heads=2,
                 head_dim=8, max_position_embeddings=64)


def test_cpu_decode_equals_the_reference_decode_at_mixed_positions() -> None:
    ref = LlamaModel(random_weights(TINY, device=torch.device("cpu"), dtype=torch.float32, seed=1),
                     max_slots=3, max_len=32, ops=TorchOps())
    fast = LlamaModel(random_weights(TINY, device=torch.device("cpu"), dtype=torch.float32, seed=1),
                      max_slots=3, max_len=32)
    assert ref.cpu is None and fast.cpu is not None
    prompts = torch.tensor([[3, 9, 27, 5, 1, 0], [7, 7, 2, 0, 0, 0], [11, 4, 8, 60, 30, 2]])
    lengths, slots = torch.tensor([5, 3, 6]), torch.tensor([0, 1, 2])
    with torch.inference_mode():
        torch.testing.assert_close(fast.prefill(prompts, lengths, slots), ref.prefill(prompts, lengths, slots),
                                   atol=1e-5, rtol=1e-5)
        tokens, positions = torch.tensor([12, 40, 2]), lengths.clone()
        for _ in range(3):
            want = ref.decode(tokens, positions, 12)
            got = fast.decode(tokens, positions, 12)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            tokens, positions = want.argmax(-1), positions + 1


def test_int8_matrix_is_close_and_a_quarter_of_the_bytes() -> None:
    gen = torch.Generator().manual_seed(0)
    w, x = torch.randn(96, 48, generator=gen), torch.randn(1, 48, generator=gen)
    q = cpu.Int8Matrix(w)
    assert q.nbytes == 96 * 48 + 96 * 2 and q.nbytes < cpu.DenseMatrix(w).nbytes / 3.8
    want = x @ w.t()
    assert float((q(x) - want).norm() / want.norm()) < 0.01
    rows = torch.randn(cpu.PREFILL_ROWS + 4, 48, generator=gen)  # a prompt: the expanded-weights path
    assert float((q(rows) - rows @ w.t()).norm() / (rows @ w.t()).norm()) < 0.01


def test_threads_default_to_all_cores_but_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "_CORES", [2])
    assert cpu.cpu_threads(None, None) == (1, 1)
    assert cpu.cpu_threads(2, None) == (2, 2)
    assert cpu.cpu_threads(None, 2) == (1, 2)
    monkeypatch.setattr(cpu, "_CORES", [1])
    assert cpu.cpu_threads(None, None) == (1, 1)


def test_weights_option_reaches_the_settings() -> None:
    assert parse("model-server", "serve", "--model", "m").weights == "auto"
    assert parse("model-server", "serve", "--model", "m", "--weights", "int8").weights == "int8"
    assert parse("model-server", "serve", "--model", "m", "--quantize", "int8").weights == "int8"
    with pytest.raises(ValueError, match="valid: auto, int8"):
        load_server(ServerSettings(model_dir=Path(NAME), device="cpu", weights="int4"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fp32_node() -> ServerRuntime:
    return load_server(ServerSettings(model_dir=Path(NAME), device="cpu", max_batch=1, max_len=256))


@pytest.fixture(scope="module")
def int8_served() -> Iterator[Served]:
    yield from serve(Path(NAME), max_batch=2, max_len=256, weights="int8")


def greedy(model: LlamaModel, prompt: list[int], steps: int) -> list[int]:
    with torch.inference_mode():
        logits = model.prefill(torch.tensor([prompt]), torch.tensor([len(prompt)]), torch.tensor([0]))
        out: list[int] = []
        for i in range(steps):
            out.append(int(logits[0].argmax()))
            logits = model.decode(torch.tensor(out[-1:]), torch.tensor([len(prompt) + i]), len(prompt) + i + 1)
    return out


def teacher_forced(model: LlamaModel, prompt: list[int], reference: list[int]) -> float:
    ids = prompt + reference
    with torch.inference_mode():
        logits = model.prefill(torch.tensor([prompt]), torch.tensor([len(prompt)]), torch.tensor([0]))
        hits = 0
        for i, want in enumerate(reference):
            hits += int(logits[0].argmax()) == want
            logits = model.decode(torch.tensor([ids[len(prompt) + i]]), torch.tensor([len(prompt) + i]),
                                  len(prompt) + i + 1)
    return hits / len(reference)


def test_int8_greedy_tokens_follow_fp32_on_smollm2(fp32_node: ServerRuntime, int8_served: Served) -> None:
    int8 = int8_served.runtime.engine.model  # type: ignore[attr-defined]
    fp32 = fp32_node.engine.model
    assert int8.weight_bytes < 0.27 * fp32.weight_bytes  # 139 MB against 538 MB
    prompt = fp32_node.tokenizer.encode(PROMPT)
    want = greedy(fp32, prompt, 32)
    assert greedy(int8, prompt, 12) == want[:12]
    assert teacher_forced(int8, prompt, want) >= 0.9


def test_the_model_server_serves_int8_weights_over_http(int8_served: Served) -> None:
    client = OpenAI(base_url=int8_served.base, api_key="unused", max_retries=0)
    out = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=6, temperature=0)
    assert out.choices[0].text.startswith(" Paris")
    chat = client.chat.completions.create(model=NAME, max_tokens=8, temperature=0,
                                          messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in (chat.choices[0].message.content or "")


def test_the_gguf_file_is_parsed_once_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf
    from transformers import AutoTokenizer

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second parse of the GGUF file")

    monkeypatch.setattr(gguf, "GGUFReader", refuse)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    server = load_server(ServerSettings(model_dir=Path(NAME), device="cpu", max_batch=1, max_len=64))
    assert server.tokenizer.encode_chat([{"role": "user", "content": "Hi"}])[:1] == [1]  # <|im_start|>
