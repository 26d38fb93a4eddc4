"""What a trace may keep: secrets redacted, large payloads capped, everything turned into JSON.

Every payload that leaves a run for the trace store or an OpenTelemetry collector goes through
:class:`Sanitizer` first, so API keys and authorization headers never reach disk, and one huge state
(a 50 MB list of chunks) cannot blow up the store. What is cut is replaced by a visible marker that
says how much was dropped, and the UI shows a "truncated" badge where it finds one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from agentflow.redaction import (  # noqa: F401  (re-exported: the one redaction lives there)
    _MIN_PATTERN,
    _SECRET_VALUE,
    REDACTED,
    _may_hold_prefix,
    _may_hold_secret_value,
    has_surrogates,
    hides_value,
    is_secret_key,
    redact_text,
    secret_env_values,
)

TRUNCATED_KEY = "__truncated__"
"""Key of the marker object that replaces a payload too large to keep."""
TRUNCATED_TAG = "…[truncated"
"""How every cut string ends: ``…[truncated 12,345 chars]``; the UI looks for it."""


def _may_end_in_token(low: str) -> bool:
    """Whether a key of a (lowercased) JSON text may end in ``token`` (``access_token``).

    Searching for ``token`` alone would flag every model call (``"tokens"``, ``"max_tokens"``).
    A key that ends in ``token`` once :func:`is_secret_key` has stripped it is followed by its
    closing quote or by whitespace: a space, an escape (``\\n``) or a non-ASCII space; a
    ``token=...``, ``token: ...`` or ``'token': ...`` pair inside a string by its separator or
    quote.
    """
    i = low.find("token")
    while i >= 0:
        after = low[i + 5:i + 6]
        if (after == '"' or after == " " or after == "\\" or after == "=" or after == ":"
                or after == "'" or after >= "\x80"):
            return True
        i = low.find("token", i + 5)
    return False


def _may_hold_secrets(text: str) -> bool:
    """Whether a payload's JSON text may hold something to redact (cheap, C-level scans).

    True wherever a key naming a secret, a credential of :mod:`agentflow.redaction` (a token
    format, a secret ``key = value`` pair, a URL password, a PEM block, a bare AWS secret) or a
    lone surrogate could be, and more often (``"monkey"``, ``"author"``). A payload for which
    this is False needs no redaction.
    """
    low = text.lower()
    return ("key" in low or "secret" in low or "passw" in low or "pwd" in low or "auth" in low
            or "bearer" in low or "cookie" in low or "credential" in low or "headers" in low
            or "aws" in low or ("@" in text and "://" in text)
            or _may_end_in_token(low) or _may_hold_prefix(text) or has_surrogates(text))


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
        """Redact secrets inside a string (:func:`agentflow.redaction.redact_text`), then cap."""
        value = redact_text(value, self._secrets)
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
            if hides_value(name, item):
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
