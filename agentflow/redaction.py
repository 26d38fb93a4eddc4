"""The one redaction of everything agentflow persists: traces, the model cache, exports, OTel
spans and evaluation outputs all store text only after it went through :func:`redact_text` (or
:func:`redact` for a whole value), so a credential that reached a prompt, a document, a response
or an error message never reaches disk.

What is redacted, wherever it appears in a string:

- provider key formats (``sk-``, ``sk-proj-``, ``sk-ant-``, GitHub, Slack, Hugging Face, Google),
  AWS access key ids, ``Bearer``/``Basic`` credentials and JWTs: the whole token;
- ``key = value``, ``key: value`` and ``"key": "value"`` pairs whose key names a secret
  (``api_key``, ``password``, ``aws_secret_access_key``, ``token``...): the value;
- a bare 40-character AWS secret access key a few characters after the word ``aws`` or ``secret``;
- the password of a URL (``postgresql://user:[REDACTED]@host``);
- the body of a PEM private key block (its ``BEGIN``/``END`` lines are kept);
- values of environment variables named like secrets (``OPENAI_API_KEY``), verbatim.

Lone surrogates (``"\\udcff"`` from JSON input) cannot be encoded as UTF-8 and would make a
write fail; they become U+FFFD in the same step.

This module sits below every other one (it imports nothing of agentflow), so ``models`` and
``eval`` use it as ``tracing`` does. Each pattern is gated by cheap C-level scans for a literal
it needs, so text without any of them pays a few ``in`` tests, not a regex.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(?:^|[-_.])(?:"
    r"api[-_]?key|api[-_]?secret|apikey|secret|client[-_]?secret|secret[-_]?key|"
    r"password|passwd|pwd|authorization|proxy[-_]authorization|auth|bearer|"
    r"access[-_]?token|refresh[-_]?token|id[-_]?token|auth[-_]?token|session[-_]?token|token|"
    r"private[-_]?key|cookie|set[-_]cookie|credentials?|aws[-_]secret[-_]access[-_]key|"
    r"access[-_]?key|secret[-_]?access[-_]?key"
    r")$",
    re.IGNORECASE,
)
"""Keys whose values are secrets, whatever the value looks like: ``api_key``, ``OPENAI_API_KEY``,
``x-api-key``, ``Authorization``, ``client_secret``... (``max_tokens`` and token counts are not)."""

_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)

_SECRET_VALUE = re.compile(
    r"(?:"
    r"\bsk-(?:ant-|proj-|or-v1-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic, OpenRouter
    r"|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{12,}"  # an Authorization header's value
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|\bhf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|\bAIza[0-9A-Za-z_\-]{35}"  # Google
    r"|(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"  # a JWT
    r")"
)
"""Strings that look like credentials wherever they appear (an error message, a prompt)."""

_MIN_PATTERN = 15
"""No credential pattern above matches fewer characters: shorter strings skip the regex."""

_GITHUB = re.compile(r"gh[pousr]_")

_PEM = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?P<body>.*?)"
    r"(?P<end>-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
"""A PEM private key block; a block cut short (no END line) is redacted to the end."""

_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/@\"'<>]{0,256}:"
    r"(?P<value>[^\s@/\"'<>]{1,256})(?=@)")
"""``scheme://user:password@host``: the password. The lookbehind and the bounds keep the
search linear in text made of long runs of scheme characters."""

_PAIR = re.compile(
    r"(?P<kw>(?i:key|secret|passw(?:or)?d|pwd|token|auth(?:orization)?|bearer|cookie|credentials?))"
    r"(?:\\?[\"'])?[ \t]*[:=][ \t]*"
    r"(?=\\?\"(?P<dq>(?:[^\"\\\n]|\\[^\"\n]){0,512})|'(?P<sq>[^'\n]{0,512})"
    r"|(?P<bare>(?:(?i:bearer|basic|token)[ \t]+)?"
    r"[^\s\"'`,;&<>(){}\[\]=][^\s\"'`,;&<>(){}\[\]]{0,511}))"
)
"""The end of a key naming a secret, its separator, and (looked ahead) its value; the key's
start is found by :func:`_redact_pairs`, which asks :func:`is_secret_key` about the whole key.
Values are looked at up to 512 characters (a longer one keeps its tail), so that text full of
separators costs linear time."""

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

_AWS_SECRET = re.compile(
    r"(?i:aws|secret)[^\n]{0,40}?(?<![A-Za-z0-9/+])"
    r"(?P<value>(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"(?=[A-Za-z0-9/+]{0,39}[0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
"""A bare AWS secret access key (40 characters of mixed case with a digit, ``/`` or ``+``)
shortly after ``aws`` or ``secret``; a git hash (lowercase hex) does not match."""

_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for a mapping key whose value must never be stored (``api_key``, ``Authorization``)."""
    return bool(_SECRET_KEY.search(key.strip()))


def hides_value(key: str, value: Any) -> bool:
    """Whether the value under mapping key ``key`` is replaced whole: the key names a secret and
    the value says something (``None``, ``""`` and booleans say nothing secret)."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value):
        return False
    return is_secret_key(key)


def secret_env_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of environment variables named like secrets (``OPENAI_API_KEY``), longest first.

    They are redacted verbatim from every string, so a key echoed in an error message is caught even
    when it does not look like a known key format. Short values (under 8 characters) are ignored:
    they would redact ordinary words.
    """
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return tuple(sorted(values, key=len, reverse=True))


# gates -------------------------------------------------------------------------------------------
def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate. ``isascii`` is O(1), so ASCII text costs nothing;
    for other text a UTF-8 encoding (which fails on a surrogate) is several times cheaper than a
    regex search."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _may_hold_secret_value(text: str) -> bool:
    """Whether :data:`_SECRET_VALUE` may match in ``text``: each of its alternatives starts with
    a fixed, case-sensitive literal, and a few C-level scans for those are much cheaper than the
    regex (which tries every position of a long prompt)."""
    return "Bearer" in text or _may_hold_prefix(text)


def _may_hold_prefix(text: str) -> bool:
    """Whether ``text`` holds what :data:`_SECRET_VALUE`'s alternatives other than ``Bearer``
    start with.

    Each search for a literal is gated by a one-character search for a character that the
    match needs (``"-" in text`` before ``"sk-" in text``; a Slack token has a ``-`` after its
    ``xox`` prefix): a one-character ``in`` is a ``memchr``, over ten times cheaper than a
    search for a longer literal, and where the character is missing the match is too.
    """
    return (("-" in text and ("sk-" in text or "xox" in text))
            or ("B" in text and "Basic" in text)
            or ("K" in text and "AKIA" in text) or ("z" in text and "AIza" in text)
            or ("J" in text and "eyJ" in text)
            or ("_" in text and ("hf_" in text
                                 or ("gh" in text and _GITHUB.search(text) is not None))))


_PAIR_ENDS = ("key", "token", "secret", "password", "passwd", "pwd", "auth", "authorization",
              "bearer", "cookie", "credential", "credentials")
_PAIR_WORDS = ("key", "token", "secret", "passw", "pwd", "auth", "bearer", "cookie", "credential")


def _may_hold_pair(text: str) -> bool:
    """Whether a ``:`` or ``=`` in ``text`` follows a word that may end a secret's key (what
    :data:`_PAIR` needs), looking only at the few characters before each separator: cheaper than
    scanning a long prompt for every keyword. Past 32 separators (code, JSON) it looks for the
    words anywhere."""
    seen = 0
    for sep in ":=":
        i = text.find(sep)
        while i >= 0:
            seen += 1
            if seen > 32:
                low = text.lower()
                return any(word in low for word in _PAIR_WORDS)
            before = text[max(0, i - 64):i].rstrip(" \t\"'\\")[-13:].lower()
            if before.endswith(_PAIR_ENDS):
                return True
            i = text.find(sep, i + 1)
    return False


# redaction ---------------------------------------------------------------------------------------
def scrub_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so it can be stored as UTF-8."""
    return _SURROGATE.sub("\ufffd", text) if has_surrogates(text) else text


def redact_text(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every credential above replaced by ``[REDACTED]`` and lone surrogates by
    U+FFFD; ``secrets`` are further strings redacted verbatim (see :func:`secret_env_values`).
    Idempotent: redacting redacted text changes nothing."""
    if not text.isascii():
        text = scrub_surrogates(text)
    if len(text) < 8:
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if len(text) >= _MIN_PATTERN and _may_hold_secret_value(text):
        text = _SECRET_VALUE.sub(REDACTED, text)
    # what each context pattern needs, by one-character scans (no lowercase copy yet): a
    # separator, a URL's "@", a PEM line's dashes, or room for a 40-character AWS secret
    if ":" in text or "=" in text or "@" in text or "-" in text or len(text) >= 40:
        text = _redact_context(text)
    return text


def _redact_context(text: str) -> str:
    """Redact PEM bodies, URL passwords, secret ``key = value`` pairs and bare AWS secrets."""
    if "-" in text and "-----BEGIN" in text:
        text = _PEM.sub(lambda m: f"{m['begin']}{REDACTED}{m['end']}", text)
    if "@" in text and "://" in text:
        text = _URL_PASSWORD.sub(_redact_group, text)
    if (":" in text or "=" in text) and _may_hold_pair(text):
        text = _redact_pairs(text)
    if len(text) >= 40:
        low = text.lower()
        if "aws" in low or "secret" in low:
            text = _AWS_SECRET.sub(_redact_group, text)
    return text


def _redact_group(match: re.Match[str]) -> str:
    """The match with its ``value`` group (which ends it) replaced by the marker."""
    if match["value"] == REDACTED:
        return match[0]
    return f"{match.string[match.start():match.start('value')]}{REDACTED}"


def _redact_pairs(text: str) -> str:
    """Redact the values of ``key = value`` pairs whose whole key names a secret.

    :data:`_PAIR` matches only the key's end and the separator (the value is looked ahead), so a
    pair inside the value of a pair that is not a secret (``monkey: password=x``) is still found.
    """
    out: list[str] = []
    last = 0
    for m in _PAIR.finditer(text):
        if m.start() < last:
            continue
        start = m.start()
        while start > 0 and text[start - 1] in _KEY_CHARS:
            start -= 1
        if not is_secret_key(text[start:m.end("kw")]):
            continue
        group = "dq" if m["dq"] is not None else "sq" if m["sq"] is not None else "bare"
        value = m[group]
        if not value or value == REDACTED:
            continue
        a, b = m.span(group)
        out.append(text[last:a])
        out.append(REDACTED)
        last = b
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def redact(value: Any, secrets: Sequence[str] = ()) -> Any:
    """A copy of plain JSON-like data with every string redacted (:func:`redact_text`) and the
    value of every key that names a secret replaced by ``[REDACTED]`` (``None``, ``""`` and
    booleans are kept). Nothing is capped; other objects are returned as they are."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = redact_text(key, secrets) if isinstance(key, str) else key
            if isinstance(name, str) and hides_value(name, item):
                out[name] = REDACTED
            else:
                out[name] = redact(item, secrets)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value
