"""Prompt log-probabilities: ``/v1/completions`` with ``echo`` and ``logprobs`` (vLLM's convention), scored in
batched passes over the prompts' shared prefix, against transformers' own log-softmax; over HTTP with the
openai SDK, on stories260K and on the real SmolLM2-135M-Instruct (GGUF)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from openai import OpenAI

from agentflow.model_server.scoring import common_prefix, score_prompts

from .conftest import Served, serve


def hf_prompt_logprobs(hf_model, ids: list[int]) -> list[float]:  # type: ignore[no-untyped-def]
    """log p(ids[t] | ids[:t]) for t >= 1, from transformers."""
    with torch.inference_mode():
        logits = hf_model(torch.tensor([ids])).logits[0].float()
    logp = logits.log_softmax(-1)
    return [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]


def client(served: Served) -> OpenAI:
    return OpenAI(base_url=served.base, api_key="unused", max_retries=0)


PROMPTS = [
    "Once upon a time there was a little girl named Lily. She liked to play with her ball.",
    "Once upon a time there was a little girl named Lily. She had a red hat.",
    "Once upon a time there was a big dog.",
]


def test_common_prefix_keeps_a_suffix_for_every_prompt() -> None:
    assert common_prefix([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix([[1, 2], [1, 2, 3]]) == 1  # the shorter prompt keeps its last token to score
    assert common_prefix([[5, 6], [7, 8]]) == 0


def test_scores_equal_transformers_and_share_the_prefix_in_two_passes(server: Served, hf_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.encode(p) for p in PROMPTS]
    model = server.runtime.engine.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        result = score_prompts(model, ids, top=3)
    assert result.prefix_tokens == common_prefix(ids) > 5
    # the prefix of all three once, that of the two about Lily once more, then the rests
    assert 2 <= result.forward_passes <= 4
    assert result.computed_tokens < sum(len(p) for p in ids) - 2 * result.prefix_tokens
    assert result.shared_tokens >= 2 * result.prefix_tokens
    for prompt, scores in zip(ids, result.prompts, strict=True):
        assert [s.token_id for s in scores] == prompt
        assert scores[0].logprob is None
        expected = hf_prompt_logprobs(hf_model, prompt)
        got = [s.logprob for s in scores[1:]]
        assert got == pytest.approx(expected, abs=2e-3)
        for s in scores[1:]:
            assert len(s.top) == 3 and s.top[0][1] >= s.logprob - 1e-4  # type: ignore[operator]


def test_a_small_token_budget_splits_suffixes_into_more_passes_with_the_same_scores(server: Served, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.encode(p) for p in PROMPTS]
    model = server.runtime.engine.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        one = score_prompts(model, ids)
        split = score_prompts(model, ids, max_tokens=8)
    assert split.forward_passes > one.forward_passes
    for a, b in zip(one.prompts, split.prompts, strict=True):
        assert [s.logprob for s in a[1:]] == pytest.approx([s.logprob for s in b[1:]], abs=1e-4)


def test_ablations_share_a_tree_of_prefixes_and_score_as_if_alone(server: Served, tokenizer) -> None:  # type: ignore[no-untyped-def]
    from itertools import product

    parts = [" Tom had a red ball and a small blue car.", " Lily liked to sing songs in the big garden.",
             " The dog ran fast to the old tree by the river.", " Mom made a warm cake for the happy kids."]
    prompts = ["Once upon a time." + "".join(p for p, keep in zip(parts, mask, strict=True) if keep) + " The end."
               for mask in product([True, False], repeat=4)]
    ids = [tokenizer.encode(p) for p in prompts]
    model = server.runtime.engine.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        shared = score_prompts(model, ids)
        alone = [score_prompts(model, [p]) for p in ids]
    assert shared.computed_tokens < 0.75 * sum(len(p) for p in ids)
    for together, single in zip(shared.prompts, alone, strict=True):
        assert [s.token_id for s in together] == [s.token_id for s in single.prompts[0]]
        assert [s.logprob for s in together[1:]] == pytest.approx([s.logprob for s in single.prompts[0][1:]],
                                                                   abs=1e-4)


def test_a_prompt_that_is_the_start_of_another_scores_like_alone(server: Served, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.encode(p) for p in ("Once upon a time there was a dog", "Once upon a time there was a dog who",
                                         "Once upon a time there was a dog who ran")]
    model = server.runtime.engine.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        together = score_prompts(model, ids)
        alone = [score_prompts(model, [p]).prompts[0] for p in ids]
    for a, b in zip(together.prompts, alone, strict=True):
        assert [s.logprob for s in a[1:]] == pytest.approx([s.logprob for s in b[1:]], abs=1e-4)


def test_a_prompt_sent_twice_is_scored_once(server: Served, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.encode(p) for p in PROMPTS]
    model = server.runtime.engine.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        once = score_prompts(model, ids)
        twice = score_prompts(model, ids + ids[::-1])
    assert twice.computed_tokens == once.computed_tokens
    assert [[s.logprob for s in p] for p in twice.prompts] == [[s.logprob for s in p] for p in
                                                                once.prompts + once.prompts[::-1]]


def test_echo_with_max_tokens_0_scores_prompts_over_http(server: Served, hf_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    out = client(server).completions.create(model="stories260K", prompt=PROMPTS, echo=True, logprobs=2, max_tokens=0)
    assert len(out.choices) == len(PROMPTS)
    for prompt, choice in zip(PROMPTS, out.choices, strict=True):
        assert choice.text == prompt
        lp = choice.logprobs
        assert lp is not None and lp.token_logprobs is not None and lp.top_logprobs is not None
        ids = tokenizer.encode(prompt)
        assert len(lp.token_logprobs) == len(ids)
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        assert lp.token_logprobs[1:] == pytest.approx(hf_prompt_logprobs(hf_model, ids), abs=2e-3)
        assert all(len(t) >= 2 for t in lp.top_logprobs[1:])
    assert out.usage is not None and out.usage.completion_tokens == 0
    assert out.usage.prompt_tokens_details is not None and out.usage.prompt_tokens_details.cached_tokens > 0


def test_echo_with_generation_puts_the_prompt_before_the_completion(server: Served, tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompt = PROMPTS[2]
    plain = client(server).completions.create(model="stories260K", prompt=prompt, max_tokens=4, temperature=0,
                                            logprobs=1)
    echoed = client(server).completions.create(model="stories260K", prompt=prompt, max_tokens=4, temperature=0,
                                             logprobs=1, echo=True)
    assert echoed.choices[0].text == prompt + plain.choices[0].text
    lp, gen = echoed.choices[0].logprobs, plain.choices[0].logprobs
    assert lp is not None and gen is not None and lp.token_logprobs is not None and gen.token_logprobs is not None
    n = len(tokenizer.encode(prompt))
    assert len(lp.token_logprobs) == n + len(gen.token_logprobs)
    assert lp.token_logprobs[n:] == pytest.approx(gen.token_logprobs, abs=1e-4)
    # lm-evaluation-harness reads a continuation's log-likelihood this way (max_tokens=1, echo, logprobs)
    assert all(v is not None and v <= 0 for v in lp.token_logprobs[1:])


def test_echo_without_logprobs_echoes_text_only(server: Served) -> None:
    out = client(server).completions.create(model="stories260K", prompt=PROMPTS[0], echo=True, max_tokens=0)
    assert out.choices[0].text == PROMPTS[0] and out.choices[0].logprobs is None


@pytest.mark.parametrize("body, field", [
    ({"prompt": "Once", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "Once", "echo": True, "stream": True, "logprobs": 1}, "echo"),
])
def test_scoring_requests_that_cannot_be_served_are_400_naming_the_field(server: Served, body, field) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.base + "/completions", json={"model": "stories260K", **body})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == field


def test_scoring_counts_in_metrics(server: Served) -> None:
    client(server).completions.create(model="stories260K", prompt=PROMPTS, echo=True, logprobs=0, max_tokens=0)
    text = httpx.get(server.url + "/metrics").text
    scored = [line for line in text.splitlines() if line.startswith("agentflow_model_server_scored_prompts_total")]
    assert scored and int(scored[0].split()[-1]) >= len(PROMPTS)


# ---------------------------------------------------------------- the real SmolLM2-135M-Instruct


@pytest.fixture(scope="module")
def smol() -> Iterator[Served]:
    pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")
    yield from serve(Path("smollm2-135m"), max_batch=4, max_len=512)


@pytest.fixture(scope="module")
def smol_reference():  # type: ignore[no-untyped-def]
    pytest.importorskip("accelerate", reason="transformers loads GGUF files with accelerate (the 'test' extra)")
    from transformers import AutoModelForCausalLM

    from agentflow.model_server.packaged import packaged_model_path

    path = packaged_model_path("smollm2-135m")
    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True).eval()


def test_smollm2_prompt_logprobs_equal_transformers_and_rank_the_right_answer(smol: Served, smol_reference) -> None:  # type: ignore[no-untyped-def]
    question = "Question: What is the capital of France?\nAnswer:"
    answers = [" Paris", " a banana sandwich"]
    out = client(smol).completions.create(model="smollm2-135m", prompt=[question + a for a in answers], echo=True,
                                          logprobs=0, max_tokens=0)
    tok = smol.runtime.tokenizer  # type: ignore[attr-defined]
    totals = []
    for answer, choice in zip(answers, out.choices, strict=True):
        ids = tok.encode(question + answer)
        lp = choice.logprobs.token_logprobs  # type: ignore[union-attr]
        assert lp[1:] == pytest.approx(hf_prompt_logprobs(smol_reference, ids), abs=5e-3)
        totals.append(sum(lp[len(tok.encode(question)):]))
    assert totals[0] > totals[1]
