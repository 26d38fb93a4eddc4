"""Parsing replies as JSON and validating them against a schema."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentflow.models.structured import OutputInvalid, extract_json, output_schema


class Item(BaseModel):
    name: str
    count: int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! ```json\n{"a": 1}\n``` hope that helps', {"a": 1}),
        ('Here: {"a": {"b": [1, 2]}} done', {"a": {"b": [1, 2]}}),
        ('["x", "y"]', ["x", "y"]),
    ],
)
def test_json_is_found_in_common_reply_shapes(text: str, value: object) -> None:
    assert extract_json(text) == value


def test_text_without_json_is_invalid() -> None:
    with pytest.raises(OutputInvalid, match="not JSON"):
        extract_json("I cannot do that.")


def test_pydantic_schemas_give_instances_and_clear_errors() -> None:
    schema = output_schema(Item)
    assert schema is not None and schema.name == "Item"
    assert schema.parse('{"name": "a", "count": 2}') == Item(name="a", count=2)
    with pytest.raises(OutputInvalid, match="at count"):
        schema.parse('{"name": "a", "count": "many"}')


def test_json_schemas_are_validated_with_the_failing_path() -> None:
    schema = output_schema({"type": "array", "items": {"type": "string"}, "minItems": 1})
    assert schema is not None and schema.parse('["q1", "q2"]') == ["q1", "q2"]
    with pytest.raises(OutputInvalid, match="at 1"):
        schema.parse('["q1", 2]')
    with pytest.raises(OutputInvalid):
        schema.parse("[]")


def test_no_schema_means_free_text_and_bad_schemas_are_rejected() -> None:
    assert output_schema(None) is None
    with pytest.raises(TypeError, match="Pydantic model class or a JSON Schema"):
        output_schema("json")  # type: ignore[arg-type]
