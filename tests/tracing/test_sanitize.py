"""Redaction and capping: what a trace may keep."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from agentflow.documents import Chunk
from agentflow.tracing.sanitize import REDACTED, Sanitizer, secret_env_values


def test_secret_keys_and_auth_headers_are_redacted_but_token_counts_are_kept() -> None:
    s = Sanitizer(secrets=())
    cleaned = s.clean({
        "api_key": "abc", "OPENAI_API_KEY": "abc", "Authorization": "Bearer xyz", "password": "pw",
        "headers": {"X-Api-Key": "k", "Content-Type": "application/json", "x-goog-token": "t"},
        "tokens": {"prompt_tokens": 12, "completion_tokens": 3}, "max_tokens": 256, "token": "t",
        "nested": [{"client_secret": "s", "keep": "me"}],
    })
    assert cleaned["api_key"] == cleaned["Authorization"] == cleaned["password"] == REDACTED
    assert cleaned["token"] == cleaned["OPENAI_API_KEY"] == REDACTED
    assert cleaned["headers"] == {"X-Api-Key": REDACTED, "Content-Type": "application/json",
                                  "x-goog-token": REDACTED}
    assert cleaned["tokens"] == {"prompt_tokens": 12, "completion_tokens": 3}
    assert cleaned["max_tokens"] == 256
    assert cleaned["nested"] == [{"client_secret": REDACTED, "keep": "me"}]


def test_credentials_inside_text_are_redacted_wherever_they_appear() -> None:
    s = Sanitizer(secrets=())
    text = ("failed with sk-proj-abcdefghijklmnop1234 and header Authorization: Bearer "
            "eyJhbGciOiJIUzI1NiJ9.payload and AKIAABCDEFGHIJKLMNOP, hf_" + "a" * 34)
    out = s.text(text)
    assert "abcdefghijklmnop1234" not in out and "eyJhbGci" not in out
    assert "AKIAABCDEFGHIJKLMNOP" not in out and "hf_aaaa" not in out
    assert out.count(REDACTED) == 4 and out.startswith("failed with [REDACTED] and header")


def test_credentials_used_as_mapping_keys_are_redacted_too() -> None:
    key = "sk-proj-abcdefghijklmnop1234"
    s = Sanitizer(secrets=("plain-looking-value-42",))
    payload = {key: 1, "per_user": {"hf_" + "a" * 34: "quota"}, "plain-looking-value-42": 2,
               "headers": {key: "x"}}
    text = s.dumps(payload)
    assert key not in text and "hf_aaaa" not in text and "plain-looking" not in text
    assert s.clean(payload)["per_user"] == {REDACTED: "quota"}


def test_values_of_secret_environment_variables_are_redacted_verbatim() -> None:
    env = {"MY_SERVICE_TOKEN": "plain-looking-value-42", "HOME": "/root", "SHORT_KEY": "abc"}
    assert secret_env_values(env) == ("plain-looking-value-42",)
    s = Sanitizer(secrets=secret_env_values(env))
    assert s.clean({"error": "401 for plain-looking-value-42"}) == {"error": f"401 for {REDACTED}"}


def test_models_dataclasses_and_odd_values_become_json() -> None:
    @dataclass
    class Point:
        x: int
        y: float

    s = Sanitizer(secrets=())
    out = s.clean({"chunk": Chunk(id="c1", text="t", source="a.md"), "p": Point(1, float("nan")),
                   "b": b"\x00\x01", "set": {1}, "obj": object()})
    assert out["chunk"]["id"] == "c1" and out["chunk"]["source"] == "a.md"
    assert out["p"] == {"x": 1, "y": "nan"}
    assert out["b"] == "<2 bytes>" and out["set"] == [1]
    assert out["obj"].startswith("<object object")
    json.dumps(out)


def test_deep_nesting_is_cut_with_a_marker() -> None:
    value: dict = {}
    cur = value
    for _ in range(40):
        cur["a"] = {}
        cur = cur["a"]
    text = json.dumps(Sanitizer(max_depth=5, secrets=()).clean(value))
    assert "nested deeper than 5" in text


@pytest.mark.parametrize("payload", [
    {"messages": [{"role": "user", "content": "line one\nsk-proj-abcdefghijklmnop1234"}]},
    {"nested": {"deeper": [{"X-Api-Key": "k-123"}]}},
    {"config": {"client_secret": {"value": "s"}}},
    {"headers": {"X-Trace": "1", "Proxy-Authorization": "Basic dXNlcjpwYXNz"}},
    {"error": "401: Bearer eyJhbGciOiJIUzI1NiJ9.abc rejected"},
    {"note": "plain-looking-value-42 leaked"},
])
def test_whole_payloads_are_redacted_on_every_path(payload: dict) -> None:
    s = Sanitizer(secrets=("plain-looking-value-42",))
    text = s.dumps(payload)
    for secret in ("abcdefghijklmnop1234", "k-123", '"s"', "dXNlcjpwYXNz", "eyJhbGci",
                   "plain-looking-value-42"):
        assert secret not in text
    assert REDACTED in text
    assert json.loads(text) == s.clean(payload)  # the fast path and the careful one agree


def test_clean_payloads_take_the_fast_path_unchanged() -> None:
    s = Sanitizer(secrets=())
    payload = {"tokens": {"prompt_tokens": 3}, "max_tokens": 9, "answer": "ok [DOC 1]", "n": 1.5,
               "chunk": Chunk(id="c", text="t")}
    assert s.dumps_if_clean(payload) is not None
    assert json.loads(s.dumps(payload)) == s.clean(payload)


@pytest.mark.parametrize("key", ["access_token ", "token\n", "id_token\t", "Token\u00a0", "token"])
def test_keys_named_after_a_token_are_redacted_whatever_whitespace_ends_them(key: str) -> None:
    """Secret key names are matched once stripped; the fast path's text scan sees them unstripped
    (``"access_token ":``), so it must not rely on the closing quote alone."""
    s = Sanitizer(secrets=())
    payload = {key: "abc123-value", "n": 1}
    assert s.dumps_if_clean(payload) is None
    assert json.loads(s.dumps(payload)) == {key: REDACTED, "n": 1}


def test_token_counts_keep_the_fast_path() -> None:
    s = Sanitizer(secrets=())
    payload = {"tokens": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
               "max_tokens": 9, "sampling": {"max_tokens": 9}, "text": "spent 7 tokens"}
    assert s.dumps_if_clean(payload) is not None


CREDENTIALS = [
    "sk-proj-abcdefghijklmnop1234", "sk-ant-abcdefghijklmnopqrst", "Bearer abcdefghijklmnop",
    "Basic dXNlcjpwYXNzd29yZA==", "AKIAABCDEFGHIJKLMNOP", "ghp_" + "a" * 36, "gho_" + "b" * 36,
    "xoxb-1234567890-abcdefghij", "hf_" + "c" * 34, "AIza" + "d" * 35,
]


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_every_kind_of_credential_in_a_value_leaves_the_fast_path_and_is_redacted(
        credential: str) -> None:
    s = Sanitizer(secrets=())
    payload = {"messages": [{"role": "user", "content": f"use {credential} please"}],
               "duration_s": 1.5e-05, "cache_hit": False}
    assert s.dumps_if_clean(payload) is None
    text = s.dumps(payload)
    assert credential.split()[-1] not in text and REDACTED in text


def test_the_value_prefilter_is_true_wherever_the_credential_pattern_matches() -> None:
    """The prefilter gates each literal with a one-character search; it may say yes for nothing,
    never no for a match, whatever the text around the credential."""
    import random

    from agentflow.tracing.sanitize import _SECRET_VALUE, _may_hold_secret_value

    rnd = random.Random(7)
    filler = "abcxyzKBAI-_ ghfo\n\"é1"
    for credential in CREDENTIALS:
        for _ in range(200):
            text = "".join(rnd.choice(filler) for _ in range(rnd.randint(0, 30)))
            cut = rnd.randint(0, len(text))
            text = text[:cut] + " " + credential + " " + text[cut:]
            assert _SECRET_VALUE.search(text) and _may_hold_secret_value(text), text
    for _ in range(2_000):  # and on random text: never a match without a yes
        text = "".join(rnd.choice(filler + "skABhxoAKIAz") for _ in range(rnd.randint(0, 60)))
        if _SECRET_VALUE.search(text):
            assert _may_hold_secret_value(text), text


def test_secrets_set_after_the_sanitizer_is_made_are_checked_in_json_form_too() -> None:
    s = Sanitizer(secrets=())
    s.secrets = ('quote"d-secret-value',)
    payload = {"error": 'failed with quote"d-secret-value'}
    assert s.dumps_if_clean(payload) is None  # JSON writes it with a backslash before the quote
    assert "secret-value" not in s.dumps(payload)


CONTEXT_SECRETS = [
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "postgresql://user:pass-1234@host/db",
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBody\n-----END EC PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", '{"api_key": "abc-12345"}',
    "token=abc12345", "'token': 'abc12345'", "Token: abc12345", "password: abc12345",
    "pwd=abc12345", "x-api-key: k-12345678",
]


@pytest.mark.parametrize("credential", CONTEXT_SECRETS)
def test_secrets_in_context_leave_the_fast_path_and_both_paths_agree(credential: str) -> None:
    s = Sanitizer(secrets=())
    payload = {"messages": [{"role": "user", "content": f"see {credential} here"}], "n": 1}
    assert s.dumps_if_clean(payload) is None
    text = s.dumps(payload)
    assert REDACTED in text
    assert json.loads(text) == s.clean(payload)


def test_the_fast_path_never_skips_text_that_redaction_would_change() -> None:
    """The payload-level prefilter may say yes for nothing, never no where redaction acts."""
    import random

    from agentflow.redaction import redact_text
    from agentflow.tracing.sanitize import _encode, _may_hold_secrets

    rnd = random.Random(11)
    filler = "abc xyz:=@/\"'\n-_tokenKEYé"
    for _ in range(3_000):
        text = "".join(rnd.choice(filler) for _ in range(rnd.randint(0, 40)))
        if rnd.random() < 0.6:
            cut = rnd.randint(0, len(text))
            text = text[:cut] + rnd.choice(CONTEXT_SECRETS + CREDENTIALS + ["\udcff"]) + text[cut:]
        if redact_text(text) != text:
            assert _may_hold_secrets(_encode({"content": text})), text


@pytest.mark.parametrize("value", ["hello \udcff", "\ud800", {"\udcff": "x"}, ["a\udfffb"]])
def test_lone_surrogates_become_replacement_characters_so_the_payload_is_storable(
        value: object) -> None:
    s = Sanitizer(secrets=())
    payload = {"question": value}
    assert s.dumps_if_clean(payload) is None
    text = s.dumps(payload)
    text.encode("utf-8")  # would raise UnicodeEncodeError with a lone surrogate left
    assert "\ufffd" in text
