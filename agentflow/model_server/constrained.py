"""Constrained decoding on llguidance: a ``response_format`` (JSON schema, any JSON object, regex, Lark grammar)
becomes one token mask per step and sequence.

llguidance (the engine vLLM and SGLang use) compiles the format against the tokenizer and fills a bitmask per
step; :class:`GrammarCompiler` does that for a whole batch at once. Two things are the server's own:

* JSON schemas are read as OpenAI's strict mode reads them: an object that declares ``properties`` and says
  nothing of ``additionalProperties`` takes only the declared ones (a small model otherwise invents keys), and
  whitespace runs are capped at ``MAX_WS`` (a small model otherwise pads until ``max_tokens``).
* Closing within ``max_tokens``. Each sequence keeps a *closing path*: single-byte tokens that finish the output
  from where it stands, found greedily (forced bytes first, then closing quotes and brackets, digits, letters).
  When a sampled token would leave fewer tokens than the path from the new state needs, the path's next token is
  taken instead, so the output still parses when the budget runs out. A path longer than ``MAX_CLOSING`` bytes
  is not looked for (the output may then be cut short, ``finish_reason: length``, as on vLLM).
"""

from __future__ import annotations

import logging
import string
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer
    from llguidance._lib import JsonCompileOptions
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

FormatKind = Literal["json_schema", "json_object", "regex", "grammar"]
MAX_DEPTH = 64
"""Deepest schema nesting compiled (a bound on recursion for schemas sent in requests)."""
MAX_WS = 8
"""Longest whitespace run between JSON tokens."""
MAX_CLOSING = 256
"""Longest closing path looked for, in bytes (one token each)."""
_JSON_OPTIONS: JsonCompileOptions = {"whitespace_pattern": rf"[ \n\t]{{0,{MAX_WS}}}",
                                 "json_allow_general_unicode_escapes": True}
_CLOSERS = b'"}])'
_CLOSING_ORDER = _CLOSERS + ("".join(c for c in string.punctuation if c not in '"}])') + string.digits + " \n\t"
                             + string.ascii_lowercase + string.ascii_uppercase).encode()
_SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
              "additionalItems", "unevaluatedProperties", "unevaluatedItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")


class FormatError(ValueError):
    """A format constrained decoding cannot enforce; the message says where and what is wrong."""


@dataclass
class ResponseFormat:
    """What the output must match: a JSON schema (``None``: any JSON object), a regex or a Lark grammar."""

    kind: FormatKind
    source: str | dict[str, Any] | None
    field: str = "response_format"
    """The request field it came from, named in errors."""

    def grammar(self) -> str:
        """The llguidance grammar (refuses schemas nested past ``MAX_DEPTH`` by name)."""
        from llguidance import LLMatcher

        if self.kind == "regex":
            return LLMatcher.grammar_from_regex(str(self.source))
        if self.kind == "grammar":
            return LLMatcher.grammar_from_lark(str(self.source))
        schema = self.source if isinstance(self.source, dict) and self.source else {"type": "object"}
        check_depth(schema, self.field)
        return LLMatcher.grammar_from_json_schema(declared_only(schema, self.field), overrides=_JSON_OPTIONS)

    @property
    def is_json(self) -> bool:
        """A JSON schema or JSON object format."""
        return self.kind in ("json_schema", "json_object")


def check_depth(schema: dict[str, Any], where: str) -> None:
    """Refuse a schema nested more than ``MAX_DEPTH`` schemas (or ``4 * MAX_DEPTH`` JSON containers) deep.

    Iterative, so a hostile schema cannot exhaust Python's recursion limit here or later."""
    stack: list[tuple[Any, int, int, str]] = [(schema, 1, 1, where)]
    while stack:
        node, depth, nesting, path = stack.pop()
        if depth > MAX_DEPTH or nesting > 4 * MAX_DEPTH:
            parts = path.split(".")
            short = path if len(parts) <= 6 else ".".join([*parts[:3], "...", *parts[-2:]])
            raise FormatError(f"{short}: the schema is nested more than {MAX_DEPTH} levels deep, the limit for "
                              "constrained decoding; flatten it or use $defs/$ref")
        if isinstance(node, list):
            stack.extend((v, depth, nesting + 1, f"{path}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, dict):
            for key, value in node.items():
                sub = key in _SUBSCHEMA or key in _SUBSCHEMA_LISTS
                if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
                    stack.extend((v, depth + 1, nesting + 2, f"{path}.{key}.{k}") for k, v in value.items())
                else:
                    stack.append((value, depth + (1 if sub else 0), nesting + 1, f"{path}.{key}"))


def declared_only(schema: Any, path: str) -> Any:
    """A copy in which objects that declare ``properties`` and say nothing of ``additionalProperties`` take
    only those (OpenAI's strict reading); a required property that is then impossible is refused by name."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key, value in schema.items():
        if key in _SUBSCHEMA and isinstance(value, dict):
            out[key] = declared_only(value, f"{path}.{key}")
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [declared_only(v, f"{path}.{key}[{i}]") for i, v in enumerate(value)]
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: declared_only(v, f"{path}.{key}.{k}") for k, v in value.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        out["additionalProperties"] = False
        unknown = set(schema.get("required", [])) - set(schema["properties"])
        if unknown:
            raise FormatError(f"{path}.required: {sorted(unknown)} not among the properties (only declared "
                              "properties are generated; declare them or set additionalProperties)")
    return out


@dataclass
class CompiledFormat:
    """A validated format: its llguidance grammar and the closing path from the start (``None``: none found)."""

    format: ResponseFormat
    grammar: str
    closing: list[int] | None = field(default=None)

    @property
    def shortest(self) -> int | None:
        """Tokens the closing path from the start needs (an upper bound on the fewest)."""
        return None if self.closing is None else len(self.closing)


class GrammarCompiler:
    """One tokenizer's llguidance view: validates formats (memoised), makes per-sequence constraints, fills masks."""

    def __init__(self, hf: PreTrainedTokenizerBase, *, vocab_size: int, eos_ids: Sequence[int],
                 cache_size: int = 64) -> None:
        import llguidance
        import llguidance.hf

        try:
            self.ll: LLTokenizer = llguidance.hf.from_tokenizer(
                cast(Any, hf), n_vocab=vocab_size if vocab_size >= len(hf) else None, eos_token=list(eos_ids))
        except ValueError as exc:  # a slow (Python) tokenizer
            raise FormatError(f"constrained decoding needs a fast tokenizer for this model ({exc})") from exc
        self.vocab_size = self.ll.vocab_size
        self.eos_ids = tuple(eos_ids)
        byte_tokens: dict[int, int] = {}
        for token in range(self.vocab_size):
            if not self.ll.is_special_token(token):
                raw = self.ll.decode_bytes([token])
                if len(raw) == 1:
                    byte_tokens.setdefault(raw[0], token)
        for byte in range(128):  # the tokenizer's own token for a byte (llguidance masks forced text to those)
            own = self.ll.tokenize_bytes(bytes([byte]))
            if len(own) == 1 and self.ll.decode_bytes(own) == bytes([byte]):
                byte_tokens[byte] = own[0]
        self.byte_tokens = byte_tokens
        """A single-byte token for each byte that has one."""
        self.closing_order = [byte_tokens[b] for b in _CLOSING_ORDER if b in byte_tokens]
        self.closers = {byte_tokens[b] for b in _CLOSERS if b in byte_tokens}
        self._limits = llguidance.LLParserLimits(verbose_errors=False)
        self._executor = llguidance.LLExecutor()
        self._cache: OrderedDict[str, LLMatcher] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def compile(self, fmt: ResponseFormat) -> CompiledFormat:
        """Validate ``fmt`` against this tokenizer; raises :class:`FormatError` naming ``fmt.field``."""
        from llguidance import LLMatcher

        try:
            grammar = fmt.grammar()
        except ValueError as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"{fmt.field}: {exc}") from exc
        with self._lock:
            matcher = self._cache.get(grammar)
        if matcher is None:  # llguidance drops the GIL while it builds the parser
            matcher = LLMatcher(self.ll, grammar, log_level=0, limits=self._limits)
            if matcher.is_error():
                raise FormatError(f"{fmt.field}: {_error_text(fmt, matcher.get_error())}")
            with self._lock:
                self._cache[grammar] = matcher
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            self._cache.move_to_end(grammar)
            fresh = matcher.deep_copy()
        return CompiledFormat(fmt, grammar, Constraint(self, fresh, None).closing_path())

    def constraint(self, compiled: CompiledFormat) -> Constraint:
        """A fresh per-sequence constraint at the start of ``compiled``."""
        with self._lock:
            pristine = self._cache.get(compiled.grammar)
            matcher = pristine.deep_copy() if pristine is not None else None
        if matcher is None:
            from llguidance import LLMatcher

            matcher = LLMatcher(self.ll, compiled.grammar, log_level=0, limits=self._limits)
        return Constraint(self, matcher, None if compiled.closing is None else list(compiled.closing))

    def masks(self, rows: Sequence[tuple[Constraint, int]], batch: int, vocab: int) -> np.ndarray:
        """Bool masks ``[batch, vocab]``: each constrained row's allowed tokens, every token for the others."""
        from llguidance.numpy import fill_next_token_bitmask_par

        words = (self.vocab_size + 31) // 32
        bits = np.full((batch, words), -1, dtype=np.int32)
        fill_next_token_bitmask_par(self._executor, [(c.matcher, i) for c, i in rows], bits)
        allowed = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little").astype(bool)
        if allowed.shape[1] < vocab:  # logits wider than the tokenizer: extra ids only where unconstrained
            extra = np.ones((batch, vocab - allowed.shape[1]), dtype=bool)
            extra[[i for _, i in rows]] = False
            allowed = np.concatenate([allowed, extra], axis=1)
        return allowed[:, :vocab]


def _error_text(fmt: ResponseFormat, error: str) -> str:
    what = {"regex": "invalid regex", "grammar": "invalid Lark grammar (llguidance syntax)",
            "json_schema": "unsupported JSON schema", "json_object": "unsupported JSON schema"}[fmt.kind]
    return f"{what}: {error.strip()}"


class Constraint:
    """One sequence's place in its format, and the path that closes the output from there."""

    def __init__(self, compiler: GrammarCompiler, matcher: LLMatcher, plan: list[int] | None) -> None:
        self.compiler, self.matcher = compiler, matcher
        self.plan = plan
        """Tokens that finish the output from the current state (``None``: not known)."""

    @property
    def complete(self) -> bool:
        """Nothing but EOS may follow (or the matcher failed): the sequence should stop."""
        return bool(self.matcher.is_stopped())

    def accept(self, token: int, left: int) -> int:
        """Advance past a sampled ``token`` with ``left`` tokens allowed after it; returns the token to keep.

        That is ``token`` itself, unless the output could then no longer close within ``left`` tokens while it
        still can from here: then the closing path's next token (or EOS when the output is already whole)."""
        m = self.matcher
        if self.plan and token == self.plan[0]:
            m.consume_token(token)
            self.plan = self.plan[1:]
            return token
        if left >= MAX_CLOSING:  # far from the end: nothing to guard yet
            self._consume(token)
            self.plan = None
            return token
        before = self.plan if self.plan is not None else self.closing_path()
        self._consume(token)
        # Mid-string or mid-number the path from before usually still closes: checking it is cheaper.
        after = before if before and self._closes(before) else self.closing_path()
        if before is None or len(before) > left + 1 or (after is not None and len(after) <= left):
            self.plan = after
            return token
        m.rollback(1)
        if not before:
            self.plan = []
            return self.compiler.eos_ids[0]
        m.consume_token(before[0])
        self.plan = before[1:]
        return before[0]

    def _closes(self, path: list[int]) -> bool:
        """Whether ``path`` still makes the output whole from here."""
        taken = self.matcher.try_consume_tokens(path)
        whole = taken == len(path) and self.matcher.is_accepting()
        if taken:
            self.matcher.rollback(taken)
        return whole

    def _consume(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            log.warning("constrained decoding: token %d refused (%s); the sequence stops", token,
                        self.matcher.get_error())

    def closing_path(self) -> list[int] | None:
        """Single-byte tokens that make the output whole from here (``[]``: it already is), found greedily: the
        forced bytes, else the first allowed of closing quotes and brackets, punctuation, digits, whitespace and
        letters, skipping (while another will do) the last few picked since a forced byte, so free text cannot
        loop. An upper bound on the shortest path; exact for the usual JSON schemas."""
        m, compiler = self.matcher, self.compiler
        if m.is_error():
            return None
        path: list[int] = []
        recent: list[int] = []
        try:
            while not m.is_accepting():
                if len(path) >= MAX_CLOSING:
                    return None
                run: list[int] = []
                for byte in m.compute_ff_bytes():
                    if byte not in compiler.byte_tokens:
                        break
                    run.append(compiler.byte_tokens[byte])
                taken = m.try_consume_tokens(run) if run else 0  # the whole forced run in one call
                if taken:
                    path.extend(run[:taken])
                    recent.clear()
                    continue
                token = self._first_allowed(recent[-3:])
                if token is None:
                    return None
                path.append(token)
                if token not in compiler.closers:
                    recent.append(token)
            return path
        finally:
            if path:
                m.rollback(len(path))

    def _first_allowed(self, avoid: list[int]) -> int | None:
        """Consume and return the first allowed byte token in closing order, ``avoid`` ones last."""
        order = self.compiler.closing_order
        for token in [t for t in order if t not in avoid] + avoid:
            if self.matcher.try_consume_tokens([token]) == 1:
                return token
        return None
