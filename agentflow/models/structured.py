"""Structured output: a Pydantic model or a JSON Schema in, a validated object out.

The router asks the provider for JSON matching the schema, parses and validates the reply, and on
failure sends one repair request that quotes the error. A reply that still does not validate is a
:class:`~agentflow.errors.ModelError`; nothing is ever filled in with a default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agentflow.models.types import Message, OutputConstraint

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class OutputInvalid(ValueError):
    """A reply that does not parse or validate; the message is fit to show the model."""


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """The schema a reply must match, and how to turn a reply into the validated object."""

    name: str
    json_schema: dict[str, Any]
    model: type[BaseModel] | None = None

    def validate(self, value: Any) -> Any:
        """Validate a JSON value: a model instance for Pydantic schemas, the value otherwise."""
        if self.model is not None:
            if isinstance(value, self.model):
                return value
            try:
                return self.model.model_validate(value)
            except ValidationError as exc:
                raise OutputInvalid(_pydantic_message(exc)) from exc
        import jsonschema  # only for raw JSON Schemas

        try:
            jsonschema.validate(value, self.json_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
            raise OutputInvalid(f"at {where}: {exc.message}") from exc
        except jsonschema.SchemaError as exc:
            raise OutputInvalid(f"the output schema itself is invalid: {exc.message}") from exc
        return value

    def parse(self, text: str) -> Any:
        """Parse a reply's text as JSON (fenced or bare) and validate it."""
        return self.validate(extract_json(text))

    def response_format(self) -> dict[str, Any]:
        """The OpenAI ``response_format`` asking for this schema."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.json_schema, "strict": False},
        }

    def repair_messages(self, reply: str, error: str) -> list[Message]:
        """The two messages appended to a conversation to ask for a corrected reply."""
        schema = json.dumps(self.json_schema, separators=(",", ":"))
        return [
            {"role": "assistant", "content": reply},
            {
                "role": "user",
                "content": (
                    f"Your previous reply could not be used: {error}. Reply again with only a "
                    f"JSON value, no other text, that matches this JSON Schema: {schema}"
                ),
            },
        ]


def output_schema(schema: type[BaseModel] | Mapping[str, Any] | None) -> OutputSchema | None:
    """Normalise what a caller passes as ``schema=`` (``None`` means free text)."""
    if schema is None:
        return None
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return OutputSchema(_name(schema.__name__), schema.model_json_schema(), schema)
    if isinstance(schema, Mapping):
        data = dict(schema)
        return OutputSchema(_name(str(data.get("title") or "output")), data)
    raise TypeError(
        f"schema must be a Pydantic model class or a JSON Schema mapping, got {type(schema).__name__}"
    )


def _name(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:64] or "output"


def extract_json(text: str) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost braces."""
    stripped = text.strip()
    candidates = [stripped]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = stripped.find(open_), stripped.rfind(close)
        if 0 <= start < end:
            candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    preview = stripped[:120] + ("..." if len(stripped) > 120 else "")
    raise OutputInvalid(f"the reply is not JSON: {preview!r}")


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "the top level"
        parts.append(f"at {where}: {err['msg']}")
    return "; ".join(parts)


ABSTAIN_TEXT = "The documents do not contain this information."
"""The abstention the augmented prompt asks for (``prompts/rag_answer.j2``)."""


def citation_grammar(
    numbers: Sequence[int], *, abstain: str = ABSTAIN_TEXT, sentences: int = 3,
    sentence_chars: int = 200,
) -> OutputConstraint:
    """A Lark grammar (llguidance's dialect) for an answer of 1 to ``sentences`` sentences, each
    ending in ``[DOC n]`` citations (``n`` among ``numbers``) and an optional period, or the
    abstention alone.

    A sentence's text holds no square brackets, so the text terminal stops where a citation
    starts (Lark terminals match greedily: one that could swallow ``[DOC`` would never let a
    citation begin), and no period or line break: a model about to end a sentence must cite
    first, which is where a small model that does not cite by itself gets made to (and one that
    would repeat a heading line after line cannot). At most ``sentence_chars`` characters, so it
    cites within a bounded length whatever it does.
    """
    if not numbers:
        raise ValueError("citation_grammar needs the numbers of at least one document")
    if sentences < 1 or sentence_chars < 1:
        raise ValueError(f"citation_grammar needs sentences >= 1 and sentence_chars >= 1, got "
                         f"{sentences} and {sentence_chars}")
    cites = " | ".join(json.dumps(f"[DOC {n}]") for n in sorted(set(numbers)))
    pieces = " | ".join(" ".join(["seg"] * k) for k in range(1, sentences + 1))
    grammar = "\n".join((
        f"start: cited | {json.dumps(abstain)}",
        f"cited: {pieces}",
        'seg: TEXT CITE+ "."?',
        "TEXT: /[^\\[\\].\\n]{1," + str(sentence_chars) + "}/",
        f"CITE: {cites}",
    ))
    return OutputConstraint(kind="grammar", pattern=grammar, name="citations")
