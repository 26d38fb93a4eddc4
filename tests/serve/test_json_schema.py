"""The JSON-schema grammar and its token masks: what it accepts, how it closes, what it refuses by name."""

from __future__ import annotations

import json
import random
import string

import jsonschema
import pytest

from agentflow.serve.constrained import ConstraintCompiler
from agentflow.serve.json_schema import Grammar, SchemaError, compile_schema

SCHEMA = {
    "type": "object",
    "$defs": {"tag": {"type": "string", "maxLength": 5}},
    "properties": {
        "verdict": {"enum": ["yes", "no"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "note": {"type": ["string", "null"], "maxLength": 20},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 3},
        "weight": {"anyOf": [{"type": "number"}, {"type": "boolean"}]},
    },
    "required": ["verdict", "score"],
}


def feed(grammar: Grammar, text: str):  # type: ignore[no-untyped-def]
    state = grammar.initial()
    for ch in text:
        state = grammar.advance(state, ch)
        if not state:
            return None
    return state


@pytest.mark.parametrize("text", [
    '{"verdict": "yes", "score": 3}',
    '{"verdict":"no","score":5,"note":null,"tags":["a","bb"],"weight":-1.5e3}',
    '{\n  "verdict": "yes",\n  "score": 1,\n  "weight": true\n}',
])
def test_valid_documents_are_accepted_and_complete(text: str) -> None:
    g = Grammar(compile_schema(SCHEMA))
    state = feed(g, text)
    assert state and g.complete(state) and g.min_remaining(state) == 0
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("text", [
    '{"score": 3}',                      # a required property skipped
    '{"verdict": "maybe"',               # not in the enum
    '{"verdict": "yes", "score": 6',     # out of range
    '{"verdict": "yes", "score": 2, "tags": ["toolong"',  # maxLength
    '{"verdict": "yes", "score": 2, "x"',  # undeclared property
    '[1]',                               # not an object
])
def test_invalid_prefixes_are_refused(text: str) -> None:
    assert feed(Grammar(compile_schema(SCHEMA)), text) is None


def test_min_remaining_is_the_shortest_completion() -> None:
    g = Grammar(compile_schema(SCHEMA))
    assert g.min_remaining(g.initial()) == len('{"verdict":"no","score":1}')
    state = feed(g, '{"verdict": "yes"')
    assert g.min_remaining(state) == len(',"score":1}')


def test_random_walks_under_a_budget_always_close_into_valid_json() -> None:
    rng = random.Random(0)
    for _ in range(60):
        g = Grammar(compile_schema(SCHEMA))
        state, out = g.initial(), ""
        budget = rng.randint(g.min_remaining(state), 90)
        while not g.complete(state):
            left = budget - len(out) - 1
            options = [c for c in string.printable if (s := g.advance(state, c)) and g.min_remaining(s) <= left]
            ch = rng.choice(options)
            state, out = g.advance(state, ch), out + ch
        jsonschema.validate(json.loads(out), SCHEMA)
        assert len(out) <= budget


def test_json_object_mode_accepts_any_object() -> None:
    g = Grammar(compile_schema(None))
    text = '{"a": [1, 2.5, {"b": null}], "c": "x\\u00e9", "d": false}'
    assert g.complete(feed(g, text))
    assert feed(g, '"just a string"') is None


@pytest.mark.parametrize(("schema", "where"), [
    ({"type": "string", "pattern": "^a"}, "keyword 'pattern'"),
    ({"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}}, "schema.properties.x"),
    ({"type": "date"}, "unknown type 'date'"),
    ({"$ref": "http://example.com/s.json"}, "only local"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "['b'] not among the properties"),
])
def test_unsupported_schemas_are_refused_by_name(schema: dict, where: str) -> None:
    with pytest.raises(SchemaError, match=where.replace("[", r"\[").replace("]", r"\]")):
        compile_schema(schema)


def test_token_masks_follow_the_grammar_and_the_budget(tokenizer) -> None:  # type: ignore[no-untyped-def]
    compiler = ConstraintCompiler(tokenizer.trie())
    c = compiler.constraint({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}, [1, 2])
    allowed = c.allowed(100)
    texts = {t: tokenizer.mid_text(t) for t in range(tokenizer.vocab_size) if allowed[t]}
    assert texts and all(text.lstrip(" \n\t").startswith("{") or text.strip() == "" for text in texts.values())
    assert not allowed[1] and not allowed[2]  # no EOS before the JSON is whole
    for ch in '{"ok": tru':
        ids = [t for t in range(tokenizer.vocab_size) if tokenizer.mid_text(t) == ch]
        assert ids and c.allowed(100)[ids[0]]
        c.advance(ids[0], ch)
    e = [t for t in range(tokenizer.vocab_size) if tokenizer.mid_text(t) == "e"][0]
    c.advance(e, "e")
    close = [t for t in range(tokenizer.vocab_size) if tokenizer.mid_text(t) == "}"][0]
    space = [t for t in range(tokenizer.vocab_size) if tokenizer.mid_text(t) == " "][0]
    assert c.allowed(100)[space] and c.allowed(100)[close]
    assert c.allowed(1)[close] and not c.allowed(1)[space]  # one token left: only what closes the JSON
    assert not c.complete
    c.advance(close, "}")
    assert c.complete
