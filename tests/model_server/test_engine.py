"""The engine in-process on stories260K: exactness against transformers, batching, seeds, n, stops, aborts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentflow.model_server.config import ModelLoadError, load_spec, spec_from_dict
from agentflow.model_server.engine import Engine, EngineConfig, EngineRequest, StepOutput
from agentflow.model_server.model import LlamaModel, TorchOps
from agentflow.model_server.sampling import SamplingParams
from agentflow.model_server.tokenizer import Tokenizer
from agentflow.model_server.weights import load_weights

from .conftest import hf_greedy

PROMPTS = ["Once upon a time", "The cat", "Lily and Ben", "One day, a little"]


def make_engine(stories: Path, tokenizer: Tokenizer, *, max_batch: int = 8, overlap: bool = True,
                folded: bool = False) -> Engine:
    spec = load_spec(stories)
    weights = load_weights(stories, spec, device=torch.device("cpu"), dtype=torch.float32)
    model = LlamaModel(weights, max_slots=max_batch, max_len=512, ops=TorchOps(folded=folded))
    return Engine(model, EngineConfig(max_batch=max_batch, max_len=512, overlap=overlap), tokenizer=tokenizer)


def drain(engine: Engine, requests: list[EngineRequest]) -> dict[tuple[str, int], StepOutput]:
    """Run to completion; one merged output (all tokens, all text, last finish reason) per sample."""
    for r in requests:
        engine.add_request(r)
    merged: dict[tuple[str, int], StepOutput] = {}
    with torch.inference_mode():
        while engine.has_work():
            for out in engine.step():
                m = merged.setdefault((out.request_id, out.index), StepOutput(out.request_id, out.index, []))
                m.token_ids += out.token_ids
                m.text += out.text
                m.logprobs += out.logprobs
                m.finish_reason = out.finish_reason or m.finish_reason
    return merged


def greedy(max_tokens: int = 80, **kw: object) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine(stories: Path, tokenizer: Tokenizer) -> Engine:
    return make_engine(stories, tokenizer)


def test_greedy_output_equals_transformers_generate(engine: Engine, hf_model, tokenizer: Tokenizer) -> None:
    for prompt in PROMPTS[:2]:
        want_ids, want_text = hf_greedy(hf_model, tokenizer, prompt, 120)
        got = drain(engine, [EngineRequest("r", tokenizer.encode(prompt), greedy(120))])[("r", 0)]
        assert got.token_ids == want_ids[: len(got.token_ids)]
        assert got.text == want_text[: len(got.text)]
        assert len(got.token_ids) == len(want_ids) or got.finish_reason == "length"


def test_readme_continuation(engine: Engine, tokenizer: Tokenizer) -> None:
    got = drain(engine, [EngineRequest("r", tokenizer.encode("The cat"), greedy(40))])[("r", 0)]
    assert got.text.startswith(" and a boy were playing in the park. They liked to play with their toys")


@pytest.mark.parametrize("folded", [False, True])
def test_batched_equals_one_at_a_time(stories: Path, tokenizer: Tokenizer, folded: bool) -> None:
    eng = make_engine(stories, tokenizer, folded=folded)
    together = drain(eng, [EngineRequest(f"r{i}", tokenizer.encode(p), greedy(60)) for i, p in enumerate(PROMPTS)])
    for i, p in enumerate(PROMPTS):
        alone = drain(eng, [EngineRequest("solo", tokenizer.encode(p), greedy(60))])[("solo", 0)]
        assert together[(f"r{i}", 0)].token_ids == alone.token_ids


def test_overlapped_steps_give_the_same_tokens(stories: Path, tokenizer: Tokenizer, engine: Engine) -> None:
    plain = make_engine(stories, tokenizer, overlap=False)
    reqs = lambda: [EngineRequest(f"r{i}", tokenizer.encode(p), greedy(50)) for i, p in enumerate(PROMPTS)]  # noqa: E731
    a, b = drain(plain, reqs()), drain(engine, reqs())
    assert {k: v.token_ids for k, v in a.items()} == {k: v.token_ids for k, v in b.items()}


def test_seeded_sampling_is_reproducible_whatever_the_batch(engine: Engine, tokenizer: Tokenizer) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=40, seed=1234, max_tokens=40)
    alone = drain(engine, [EngineRequest("s", tokenizer.encode("The cat"), params)])[("s", 0)]
    mates = [EngineRequest(f"m{i}", tokenizer.encode(p), SamplingParams(temperature=0.8, seed=i, max_tokens=60,
                                                                        repetition_penalty=1.2))
             for i, p in enumerate(PROMPTS)]
    crowded = drain(engine, [*mates[:2], EngineRequest("s", tokenizer.encode("The cat"), params), *mates[2:]])
    assert crowded[("s", 0)].token_ids == alone.token_ids
    other_seed = drain(engine, [EngineRequest("o", tokenizer.encode("The cat"),
                                              SamplingParams(temperature=1.0, top_p=0.9, top_k=40, seed=99,
                                                             max_tokens=40))])[("o", 0)]
    assert other_seed.token_ids != alone.token_ids


def test_n_samples_share_one_prefill_and_differ(engine: Engine, tokenizer: Tokenizer) -> None:
    params = SamplingParams(temperature=1.0, seed=7, max_tokens=30)
    out = drain(engine, [EngineRequest("n", tokenizer.encode("Once upon a time"), params, n=4)])
    texts = [out[("n", i)].text for i in range(4)]
    assert len(set(texts)) == 4 and all(texts)
    again = drain(engine, [EngineRequest("n", tokenizer.encode("Once upon a time"), params, n=4)])
    assert [again[("n", i)].text for i in range(4)] == texts
    greedy_n = drain(engine, [EngineRequest("g", tokenizer.encode("The cat"), greedy(20), n=3)])
    assert len({tuple(greedy_n[("g", i)].token_ids) for i in range(3)}) == 1


def test_stop_strings_and_max_tokens(engine: Engine, tokenizer: Tokenizer) -> None:
    full = drain(engine, [EngineRequest("f", tokenizer.encode("Once upon a time"), greedy(40))])[("f", 0)]
    assert full.finish_reason == "length" and len(full.token_ids) == 40
    stopped = drain(engine, [EngineRequest("s", tokenizer.encode("Once upon a time"),
                                           greedy(40, stop=("Lily",)))])[("s", 0)]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index("Lily")]


def test_eos_ends_a_story_unless_ignored(engine: Engine, tokenizer: Tokenizer) -> None:
    out = drain(engine, [EngineRequest("e", tokenizer.encode("Once upon a time"), greedy(400))])[("e", 0)]
    assert out.finish_reason == "stop" and len(out.token_ids) < 400
    ignored = drain(engine, [EngineRequest("i", tokenizer.encode("Once upon a time"),
                                           greedy(len(out.token_ids) + 20, ignore_eos=True))])[("i", 0)]
    assert ignored.finish_reason == "length"


def test_logprobs_match_the_model(engine: Engine, tokenizer: Tokenizer, hf_model) -> None:
    ids = tokenizer.encode("The cat")
    out = drain(engine, [EngineRequest("l", ids, greedy(3, logprobs=2))])[("l", 0)]
    with torch.inference_mode():
        logp = hf_model(torch.tensor([ids])).logits[0, -1].log_softmax(-1)
    first = out.logprobs[0]
    assert first.token_id == int(logp.argmax())
    assert first.logprob == pytest.approx(float(logp.max()), abs=1e-4)
    assert [t for t, _ in first.top] == logp.topk(2).indices.tolist()


def test_abort_frees_the_slots(engine: Engine, tokenizer: Tokenizer) -> None:
    engine.add_request(EngineRequest("long", tokenizer.encode("The cat"), greedy(300, ignore_eos=True), n=2))
    with torch.inference_mode():
        for _ in range(3):
            engine.step()
        assert engine.num_running == 2
        engine.abort("long")
        finished = []
        while engine.has_work():
            finished += [o for o in engine.step() if o.finish_reason]
    assert sorted(o.finish_reason for o in finished) == ["abort", "abort"]
    assert engine.num_running == 0 and len(engine._free) == engine.config.max_batch  # noqa: SLF001


def test_requests_wait_for_free_slots(stories: Path, tokenizer: Tokenizer) -> None:
    eng = make_engine(stories, tokenizer, max_batch=2)
    out = drain(eng, [EngineRequest(f"r{i}", tokenizer.encode(p), greedy(10)) for i, p in enumerate(PROMPTS)])
    assert all(len(out[(f"r{i}", 0)].token_ids) == 10 for i in range(4))
    with pytest.raises(ValueError, match="n=3 exceeds"):
        eng.add_request(EngineRequest("big", [1, 2], greedy(), n=3))


def test_unsupported_architectures_are_refused_by_name() -> None:
    with pytest.raises(ModelLoadError, match="model_type 'gpt2' is not supported.*llama, mistral, qwen2"):
        spec_from_dict({"model_type": "gpt2"})
    with pytest.raises(ModelLoadError, match="rope type 'yarn'"):
        spec_from_dict({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
                        "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"rope_type": "yarn"}})
