"""Output formats on llguidance: what a JSON schema accepts, how output closes within its budget, what is refused
by name; and regexes and Lark grammars beside it."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import numpy as np
import pytest

from agentflow.model_server.constrained import Constraint, FormatError, GrammarCompiler, ResponseFormat

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
EOS = 2


@pytest.fixture(scope="module")
def compiler(tokenizer) -> GrammarCompiler:  # type: ignore[no-untyped-def]
    return GrammarCompiler(tokenizer.hf, vocab_size=tokenizer.vocab_size, eos_ids=[EOS])


def fed(compiler: GrammarCompiler, fmt: ResponseFormat, text: str) -> Constraint | None:
    """The constraint after ``text`` fed byte by byte, or ``None`` when a byte is refused."""
    c = compiler.constraint(compiler.compile(fmt))
    for byte in text.encode():
        if c.matcher.try_consume_tokens([compiler.byte_tokens[byte]]) != 1:
            return None
    return c


@pytest.mark.parametrize("text", [
    '{"verdict": "yes", "score": 3}',
    '{"verdict":"no","score":5,"note":null,"tags":["a","bb"],"weight":-1.5e3}',
    '{\n  "verdict": "yes",\n  "score": 1,\n  "weight": true\n}',
])
def test_valid_documents_are_accepted_and_complete(compiler: GrammarCompiler, text: str) -> None:
    c = fed(compiler, ResponseFormat("json_schema", SCHEMA), text)
    assert c is not None and c.complete and c.closing_path() == []
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("text", [
    '{"score": 3}',                      # a required property skipped
    '{"verdict": "maybe"',               # not in the enum
    '{"verdict": "yes", "score": 6',     # out of range
    '{"verdict": "yes", "score": 2, "tags": ["toolong"',  # maxLength
    '{"verdict": "yes", "score": 2, "x"',  # undeclared property (declared-only objects, as OpenAI's strict mode)
    '[1]',                               # not an object
    '{"verdict":          "yes"',        # a whitespace run past MAX_WS
])
def test_invalid_prefixes_are_refused(compiler: GrammarCompiler, text: str) -> None:
    assert fed(compiler, ResponseFormat("json_schema", SCHEMA), text) is None


def test_the_closing_path_is_the_shortest_completion(compiler: GrammarCompiler) -> None:
    compiled = compiler.compile(ResponseFormat("json_schema", SCHEMA))
    assert compiled.shortest == len('{"verdict":"no","score":1}')
    c = fed(compiler, ResponseFormat("json_schema", SCHEMA), '{"verdict": "yes"')
    assert c is not None and len(c.closing_path() or []) == len(',"score":1}')


def test_random_walks_under_a_budget_always_close_into_valid_json(  # type: ignore[no-untyped-def]
    compiler: GrammarCompiler, tokenizer
) -> None:
    rng = random.Random(0)
    compiled = compiler.compile(ResponseFormat("json_schema", SCHEMA))
    assert compiled.shortest is not None
    for _ in range(40):
        c = compiler.constraint(compiled)
        budget = rng.randint(compiled.shortest, 90)
        out: list[int] = []
        while not c.complete and len(out) < budget:
            allowed = np.nonzero(compiler.masks([(c, 0)], 1, tokenizer.vocab_size)[0])[0]
            token = rng.choice([int(t) for t in allowed if t != EOS] or [EOS])
            if token == EOS:
                break
            out.append(c.accept(token, budget - len(out) - 1))
        jsonschema.validate(json.loads(tokenizer.decode(out)), SCHEMA)
        assert len(out) <= budget


def test_json_object_mode_accepts_any_object(compiler: GrammarCompiler) -> None:
    fmt = ResponseFormat("json_object", None)
    c = fed(compiler, fmt, '{"a": [1, 2.5, {"b": null}], "c": "x\\u00e9", "d": false}')
    assert c is not None and c.complete
    assert fed(compiler, fmt, '"just a string"') is None


def test_regex_and_grammar_formats(compiler: GrammarCompiler) -> None:
    labels = ResponseFormat("regex", "(knowledge|chitchat|out_of_scope)")
    assert (c := fed(compiler, labels, "out_of_scope")) is not None and c.complete
    assert fed(compiler, labels, "other") is None
    assert compiler.compile(labels).shortest == len("chitchat")
    cited = ResponseFormat("grammar", 'start: text " [DOC " NUM "]"\ntext: WORD (" " WORD)*\nWORD: /[A-Za-z]+/\n'
                                      'NUM: /[1-9][0-9]?/')
    assert (c := fed(compiler, cited, "Paris [DOC 12]")) is not None and c.complete
    assert fed(compiler, cited, "Paris [DOC x") is None
    path = compiler.compile(cited).closing
    assert path is not None and re.fullmatch(r"[A-Za-z ]+ \[DOC [1-9][0-9]?\]", compiler.ll.decode_str(path))


@pytest.mark.parametrize(("fmt", "where"), [
    (ResponseFormat("json_schema", {"type": "array", "uniqueItems": True}), "Unimplemented keys"),
    (ResponseFormat("json_schema", {"type": "date"}), "Invalid type: date"),
    (ResponseFormat("json_schema", {"$ref": "http://example.com/s.json"}), "not present in a registry"),
    (ResponseFormat("json_schema", {"type": "object", "properties": {"a": {}}, "required": ["b"]}),
     "['b'] not among the properties"),
    (ResponseFormat("regex", "(abc", "response_format.regex"), "response_format.regex: invalid regex"),
    (ResponseFormat("grammar", "start: foo", "response_format.grammar"), 'unknown name: "foo"'),
])
def test_unsupported_formats_are_refused_by_name(compiler: GrammarCompiler, fmt: ResponseFormat, where: str) -> None:
    with pytest.raises(FormatError, match=re.escape(where)):
        compiler.compile(fmt)


def test_token_masks_follow_the_grammar_and_the_budget(  # type: ignore[no-untyped-def]
    compiler: GrammarCompiler, tokenizer
) -> None:
    def allowed(c: Constraint) -> np.ndarray:
        return compiler.masks([(c, 0)], 1, tokenizer.vocab_size)[0]

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    c = compiler.constraint(compiler.compile(ResponseFormat("json_schema", schema)))
    mask = allowed(c)
    texts = {t: tokenizer.mid_text(t) for t in range(tokenizer.vocab_size) if mask[t]}
    assert texts and all(text.lstrip(" \n\t").startswith("{") or text.strip() == "" for text in texts.values())
    assert not mask[1] and not mask[EOS]  # no EOS before the JSON is whole
    for byte in '{"ok": true'.encode():
        token = compiler.byte_tokens[byte]
        assert allowed(c)[token]
        assert c.accept(token, 100) == token
    close, space = compiler.byte_tokens[ord("}")], compiler.byte_tokens[ord(" ")]
    assert allowed(c)[space] and allowed(c)[close]
    assert not c.complete
    assert c.accept(space, 0) == close  # no token left after this one: the closing token instead of a space
    assert c.complete
