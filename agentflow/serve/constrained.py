"""Token masks for JSON-schema-constrained decoding (``response_format``).

Each token's text, as it reads in the middle of a sequence, goes into a character trie once per tokenizer.
At each step a walk over that trie alongside the grammar (:mod:`agentflow.serve.json_schema`) finds every
token whose whole text the grammar accepts; branches die at their first refused character, and masks are
memoised per parser state. When the tokens left before ``max_tokens`` barely cover the shortest way to close
the JSON, only tokens that keep closing possible are allowed, so the output parses even when cut short.
Tokens that are partial UTF-8 bytes or special tokens are never allowed inside constrained output.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentflow.serve.json_schema import Grammar, State, compile_schema

_Trie = dict[str, "tuple[_Trie, list[int]]"]


@dataclass
class TokenTrie:
    """Every usable token's text, as a character trie: ``{char: (children, token ids ending here)}``."""

    vocab_size: int
    root: _Trie = field(default_factory=dict)

    @classmethod
    def build(cls, texts: Sequence[str | None], vocab_size: int) -> TokenTrie:
        """Build from per-token texts (``None`` for tokens that may not appear in constrained output)."""
        trie = cls(vocab_size=vocab_size)
        for token_id, text in enumerate(texts):
            if not text:
                continue
            node = trie.root
            for i, ch in enumerate(text):
                child = node.setdefault(ch, ({}, []))
                if i == len(text) - 1:
                    child[1].append(token_id)
                node = child[0]
        return trie


def token_texts(
    decode: Callable[[list[int]], str], vocab_size: int, special_ids: set[int], anchor: int | None
) -> list[str | None]:
    """Each token's text in mid-sequence: ``decode([anchor, t])`` minus ``decode([anchor])``, which keeps the
    leading space that SentencePiece decoders strip at the start of a text."""
    prefix = decode([anchor]) if anchor is not None else ""
    texts: list[str | None] = []
    for t in range(vocab_size):
        if t in special_ids:
            texts.append(None)
            continue
        full = decode([anchor, t]) if anchor is not None else decode([t])
        text = full[len(prefix):] if full.startswith(prefix) else None
        texts.append(None if not text or "\ufffd" in text else text)
    return texts


class ConstraintCompiler:
    """Grammars per schema (memoised) over one tokenizer's trie."""

    def __init__(self, trie: TokenTrie, *, cache_size: int = 64) -> None:
        self.trie = trie
        self._grammars: OrderedDict[str, tuple[Grammar, dict[tuple[State, int], np.ndarray]]] = OrderedDict()
        self._cache_size = cache_size

    def constraint(self, schema: dict[str, Any] | None, eos_ids: Sequence[int]) -> JsonConstraint:
        """A fresh per-sequence constraint for ``schema`` (``None``: any JSON object)."""
        key = json.dumps(schema, sort_keys=True)
        entry = self._grammars.get(key)
        if entry is None:
            entry = (Grammar(compile_schema(schema)), {})
            self._grammars[key] = entry
            if len(self._grammars) > self._cache_size:
                self._grammars.popitem(last=False)
        self._grammars.move_to_end(key)
        return JsonConstraint(entry[0], self.trie, entry[1], tuple(eos_ids))


class JsonConstraint:
    """The grammar position of one sequence: which tokens may come next, and whether the JSON is closed."""

    def __init__(
        self, grammar: Grammar, trie: TokenTrie, masks: dict[tuple[State, int], np.ndarray], eos_ids: tuple[int, ...]
    ) -> None:
        self.grammar, self.trie, self._masks, self.eos_ids = grammar, trie, masks, eos_ids
        self.state: State = grammar.initial()
        self.texts: dict[int, str] = {}

    @property
    def complete(self) -> bool:
        """The root JSON value has closed; the sequence should stop."""
        return self.grammar.complete(self.state)

    def allowed(self, remaining_tokens: int) -> np.ndarray:
        """Bool mask ``[V]`` of tokens allowed next when ``remaining_tokens`` may still be generated."""
        need = self.grammar.min_remaining(self.state)
        # Only near the end does the budget constrain the choice; key the memo by it just then.
        budget = remaining_tokens - 1 if remaining_tokens - 1 < need + 64 else -1
        key = (self.state, budget)
        mask = self._masks.get(key)
        if mask is None:
            mask = np.zeros(self.trie.vocab_size, dtype=bool)
            self._walk(self.trie.root, self.state, budget, mask)
            if self.grammar.accepting(self.state):
                mask[list(self.eos_ids)] = True
            if not mask.any():  # nothing fits the budget: allow whatever the grammar allows
                self._walk(self.trie.root, self.state, -1, mask)
            if len(self._masks) > 4096:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _walk(self, node: _Trie, state: State, budget: int, mask: np.ndarray) -> None:
        advance, min_remaining = self.grammar.advance, self.grammar.min_remaining
        for ch, (children, ids) in node.items():
            nxt = advance(state, ch)
            if not nxt:
                continue
            if ids and (budget < 0 or min_remaining(nxt) <= budget):
                mask[ids] = True
            if children:
                self._walk(children, nxt, budget, mask)

    def advance(self, token_id: int, text: str | None) -> None:
        """Move past a sampled token (its mid-sequence ``text``); EOS and unknown tokens leave the state."""
        if token_id in self.eos_ids or not text:
            return
        state = self.state
        for ch in text:
            state = self.grammar.advance(state, ch)
            if not state:
                return
        self.state = state
