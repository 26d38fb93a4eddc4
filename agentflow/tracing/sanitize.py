"""What a trace may keep: secrets redacted, large payloads capped, everything turned into JSON.

Every payload that leaves a run for the trace store or an OpenTelemetry collector goes through
:class:`Sanitizer` first, so API keys and authorization headers never reach disk, and one huge state
(a 50 MB list of chunks) cannot blow up the store. What is cut is replaced by a visible marker that
says how much was dropped, and the UI shows a "truncated" badge where it finds one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
TRUNCATED_KEY = "__truncated__"
"""Key of the marker object that replaces a payload too large to keep."""
TRUNCATED_TAG = "…[truncated"
"""How every cut string ends: ``…[truncated 12,345 chars]``; the UI looks for it."""

_SECRET_KEY = re.compile(
    r"(?:^|[-_.])(?:"
    r"api[-_]?key|api[-_]?secret|apikey|secret|client[-_]?secret|secret[-_]?key|"
    r"password|passwd|pwd|authorization|proxy[-_]authorization|auth|bearer|"
    r"access[-_]?token|refresh[-_]?token|id[-_]?token|auth[-_]?token|session[-_]?token|token|"
    r"private[-_]?key|cookie|set[-_]cookie|credentials?|aws[-_]secret[-_]access[-_]key"
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
    r")"
)
"""Strings that look like credentials wherever they appear (an error message, a prompt)."""


def secret_env_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of environment variables named like secrets (``OPENAI_API_KEY``), longest first.

    They are redacted verbatim from every string, so a key echoed in an error message is caught even
    when it does not look like a known key format. Short values (under 8 characters) are ignored:
    they would redact ordinary words.
    """
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return tuple(sorted(values, key=len, reverse=True))


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for a mapping key whose value must never be stored (``api_key``, ``Authorization``)."""
    return bool(_SECRET_KEY.search(key.strip()))


_MIN_PATTERN = 15
"""No credential pattern above matches fewer characters: shorter strings skip the regex."""

_GITHUB = re.compile(r"gh[pousr]_")


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
            or ("_" in text and ("hf_" in text
                                 or ("gh" in text and _GITHUB.search(text) is not None))))


def _may_end_in_token(low: str) -> bool:
    """Whether a key of a (lowercased) JSON text may end in ``token`` (``access_token``).

    Searching for ``token`` alone would flag every model call (``"tokens"``, ``"max_tokens"``).
    A key that ends in ``token`` once :func:`is_secret_key` has stripped it is followed by its
    closing quote or by whitespace: a space, an escape (``\\n``) or a non-ASCII space.
    """
    i = low.find("token")
    while i >= 0:
        after = low[i + 5:i + 6]
        if after == '"' or after == " " or after == "\\" or after >= "\x80":
            return True
        i = low.find("token", i + 5)
    return False


def _may_hold_secrets(text: str) -> bool:
    """Whether a payload's JSON text may hold something to redact (cheap, C-level scans).

    True wherever a key matching :data:`_SECRET_KEY` or a value matching :data:`_SECRET_VALUE`
    could be, and more often (``"monkey"``, ``"author"``). A payload for which this is False
    needs no redaction.
    """
    low = text.lower()
    return ("key" in low or "secret" in low or "passw" in low or "pwd" in low or "auth" in low
            or "bearer" in low or "cookie" in low or "credential" in low or "headers" in low
            or _may_end_in_token(low) or _may_hold_prefix(text))


def _make_encoder() -> Any:
    """``value -> JSON text``, compact, non-ASCII kept, NaN refused, objects converted by
    :func:`_plain` (or refused): the C encoder built once, rather than once per call as
    :meth:`json.JSONEncoder.encode` does (that set-up costs as much as encoding a small payload)."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                               default=lambda v: _plain_or_fail(v))
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:  # pragma: no cover - CPython always has them
        return encoder.encode
    try:
        chunks = make(None, encoder.default, basestring, None, ":", ",", False, False, False)
    except TypeError:  # pragma: no cover - another interpreter's signature
        return encoder.encode
    join = "".join

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return basestring(value)
        return join(chunks(value, 0))

    return encode


_encode = _make_encoder()
"""Compact JSON text of plain data; raises TypeError, ValueError (NaN) or RecursionError (cycles)."""


class Sanitizer:
    """Turns any payload into capped, redacted JSON values.

    ``max_chars`` caps each string, ``max_items`` each list and mapping, ``max_depth`` nesting, and
    ``max_bytes`` the JSON text of one whole payload (see :meth:`dumps`).
    """

    def __init__(
        self,
        *,
        max_chars: int = 32_000,
        max_items: int = 2_000,
        max_depth: int = 24,
        max_bytes: int = 1_000_000,
        secrets: Iterable[str] | None = None,
    ) -> None:
        self.max_chars = max_chars
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.secrets = tuple(secrets) if secrets is not None else secret_env_values()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings redacted verbatim wherever they appear (see :func:`secret_env_values`)."""
        return self._secrets

    @secrets.setter
    def secrets(self, values: Iterable[str]) -> None:
        self._secrets = tuple(values)
        # how each secret may appear in JSON text: as it is, and as JSON writes it (quotes,
        # backslashes), computed once rather than for every payload
        forms = dict.fromkeys(f for v in self._secrets for f in (v, _encode(v)[1:-1]))
        self._secret_forms = tuple(forms)

    # strings ------------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Redact secrets inside a string, then cap it."""
        if len(value) < 8:
            return value
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if len(value) >= _MIN_PATTERN and _may_hold_secret_value(value):
            value = _SECRET_VALUE.sub(REDACTED, value)
        if len(value) > self.max_chars:
            cut = len(value) - self.max_chars
            value = f"{value[: self.max_chars]}{TRUNCATED_TAG} {cut:,} chars]"
        return value

    # values -------------------------------------------------------------------------------
    def clean(self, value: Any, depth: int = 0) -> Any:
        """A JSON-ready copy of ``value``: secrets redacted, strings, lists and depth capped."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if depth >= self.max_depth:
            return f"{TRUNCATED_TAG} nested deeper than {self.max_depth}]"
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self._sequence(list(value), depth)
        if isinstance(value, bytes):
            return f"<{len(value):,} bytes>"
        converted = _plain(value)
        if converted is not value:
            return self.clean(converted, depth)
        return self.text(repr(value))

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= self.max_items:
                out[TRUNCATED_KEY] = f"{len(value) - self.max_items:,} more keys dropped"
                break
            name = self.text(str(key))  # a key can be a credential too (a map of tokens)
            if is_secret_key(name) and item not in (None, ""):
                out[name] = REDACTED
            elif name.lower() == "headers" and isinstance(item, Mapping):
                out[name] = {self.text(str(k)): REDACTED if _is_auth_header(str(k))
                             else self.clean(v, depth + 1) for k, v in item.items()}
            else:
                out[name] = self.clean(item, depth + 1)
        return out

    def _sequence(self, value: list[Any], depth: int) -> list[Any]:
        kept = [self.clean(v, depth + 1) for v in value[: self.max_items]]
        if len(value) > self.max_items:
            kept.append(f"{TRUNCATED_TAG} {len(value) - self.max_items:,} more items]")
        return kept

    # whole payloads -----------------------------------------------------------------------
    def dumps(self, value: Any, *, cleaned: bool = False) -> str:
        """The JSON text of a cleaned payload, replaced by a marker object when over ``max_bytes``.

        The marker keeps a preview of the start of the payload, so a capped span still says
        what it held: ``{"__truncated__": "payload of 3,456,789 bytes capped at ...", "preview": ...}``.
        ``cleaned`` says the value already went through :meth:`clean`.
        """
        text = None if cleaned else self.dumps_if_clean(value)
        if text is None:
            text = json.dumps(value if cleaned else self.clean(value), ensure_ascii=False,
                              separators=(",", ":"))
        if len(text) <= self.max_bytes:
            return text
        preview = text[: min(self.max_bytes // 2, 8_000)]
        marker = {TRUNCATED_KEY: f"payload of {len(text):,} bytes capped at {self.max_bytes:,}",
                  "preview": f"{preview}{TRUNCATED_TAG} {len(text) - len(preview):,} chars]"}
        return json.dumps(marker, ensure_ascii=False, separators=(",", ":"))


    def dumps_if_clean(self, value: Any) -> str | None:
        """The JSON text of a payload that plainly needs nothing redacted or cut, else ``None``.

        Most payloads (node updates, model calls without credentials) are small and clean: one C
        encoder call and three scans of its text replace walking the payload value by value.
        """
        try:
            text = _encode(value)
        except (TypeError, ValueError, RecursionError):
            return None
        if len(text) > self.max_chars or _may_hold_secrets(text):
            return None
        for form in self._secret_forms:
            if form in text:
                return None
        return text


def _plain_or_fail(value: Any) -> Any:
    converted = _plain(value)
    if converted is value:
        raise TypeError("not plain data")  # the careful path turns it into its repr
    return converted


def _is_auth_header(name: str) -> bool:
    lowered = name.lower()
    return is_secret_key(lowered) or "auth" in lowered or "key" in lowered or "token" in lowered


def _plain(value: Any) -> Any:
    """Pydantic models, dataclasses and objects with ``as_dict``/``to_dict`` as plain data."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # a model that cannot serialise itself is shown by its repr
            return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    for name in ("as_dict", "to_dict"):
        method = getattr(value, name, None)
        if callable(method):
            try:
                return method()
            except Exception:
                return value
    return value
