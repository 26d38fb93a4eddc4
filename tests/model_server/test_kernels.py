"""The GPU decode kernels against the PyTorch reference: on a CUDA device, or in Triton's CPU interpreter."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
HAS_TRITON = importlib.util.find_spec("triton") is not None

# Triton's interpreter on numpy 2 needs one patch (it converts 1-element arrays with int()).
INTERPRETER_SCRIPT = """
import triton.runtime.interpreter as ti
orig = ti._patch_lang_tensor
def patched(tensor, scope):
    orig(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))
ti._patch_lang_tensor = patched
import torch
from agentflow.model_server.kernels import self_check
for max_len in (384, 1024):
    print(max_len, self_check(torch.device("cpu"), torch.float32, max_len=max_len))
"""


@pytest.mark.skipif(not HAS_TRITON, reason="needs a CUDA device, or the triton package for its CPU interpreter")
def test_kernels_match_the_reference_in_the_interpreter() -> None:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout.split()) == 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_kernels_match_the_reference_on_the_gpu() -> None:
    from agentflow.model_server.kernels import self_check

    assert self_check(torch.device("cuda"), torch.bfloat16, max_len=1024) < 2e-2
    assert self_check(torch.device("cuda"), torch.float32, max_len=384) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_engine_greedy_equals_transformers(stories: Path, hf_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    from agentflow.model_server.engine import EngineRequest
    from agentflow.model_server.runtime import ServerSettings, load_server
    from agentflow.model_server.sampling import SamplingParams

    from .conftest import hf_greedy
    from .test_engine import drain

    # bf16 with CUDA graphs and the Triton kernels, against fp32 transformers: the first tokens must agree.
    runtime = load_server(ServerSettings(model_dir=stories, device="cuda", max_batch=4, max_len=512))
    for prompt in ("Once upon a time", "The cat"):
        want, _ = hf_greedy(hf_model, tokenizer, prompt, 20)
        got = drain(runtime.engine, [EngineRequest("g", tokenizer.encode(prompt),
                                                   SamplingParams(temperature=0, max_tokens=20))])[("g", 0)]
        assert got.token_ids == want[: len(got.token_ids)]
