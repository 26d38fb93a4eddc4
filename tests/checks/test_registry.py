"""Check kinds are registered: run_check, the check node, YAML and its schema all read the registry."""

from __future__ import annotations

import pytest

from agentflow.checks import (
    CheckCall,
    CheckOptions,
    CheckResult,
    Judge,
    check_kinds,
    default_threshold,
    register_check,
    run_check,
)
from agentflow.checks.registry import CheckRegistry
from agentflow.errors import ConfigError, GraphBuildError, SpecError
from agentflow.graph.context import Services
from agentflow.models import build_router
from agentflow.models.embeddings import HashEmbedder
from agentflow.nodes.checks import check

BUILT_IN = {"attribution", "citations", "faithfulness", "relevancy", "self_consistency"}


def offline_judge() -> Judge:
    return Judge(build_router(None, env={}, encoder=HashEmbedder.lexical()))


class LengthOptions(CheckOptions):
    max_words: int = 5
    """Longest answer that passes."""
    words_output: str | None = None
    """State field that receives the answer's word count."""


async def _length(call: CheckCall, options: LengthOptions) -> CheckResult:
    """Answers of at most ``max_words`` words pass."""
    words = len(call.answer.split())
    return call.result(score=1.0 if words <= options.max_words else 0.0,
                       reason=f"{words} words (at most {options.max_words})",
                       details={"words": words, "question": call.question})


@pytest.fixture
def length_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``length`` kind in the global registry for one test (the registry is restored)."""
    monkeypatch.setattr(check_kinds, "_kinds", dict(check_kinds._kinds))
    register_check("length", options=LengthOptions, default_threshold=1.0, reads=("answer",),
                   outputs={"words_output": lambda result, call: result.details["words"]})(_length)


def test_the_built_in_kinds_are_registered_with_their_defaults() -> None:
    assert BUILT_IN <= set(check_kinds.names())
    assert default_threshold("citations") == 0.75 and default_threshold("faithfulness") == 0.8
    assert default_threshold("self_consistency") == 0.6 and default_threshold("attribution") == 0.75
    assert check_kinds.get("citations").reads == ("answer", "documents")
    assert not check_kinds.get("self_consistency").judges_abstention


def test_relevancy_default_depends_on_the_judge() -> None:
    from agentflow.checks.ragas import RELEVANCY_OFFLINE_THRESHOLD, RELEVANCY_THRESHOLD

    assert default_threshold("relevancy", offline_judge()) == RELEVANCY_OFFLINE_THRESHOLD
    assert f"{RELEVANCY_THRESHOLD:g} with an LLM judge" in check_kinds.get("relevancy").threshold_text()
    with pytest.raises(ConfigError, match="depends on the judge"):
        default_threshold("relevancy")


async def test_an_unknown_kind_or_a_foreign_field_names_what_is_valid() -> None:
    with pytest.raises(ConfigError, match="unknown check kind 'vibes'.*'citations'.*'relevancy'"):
        await run_check("vibes", judge=offline_judge(), answer="x")
    with pytest.raises(ConfigError, match="'citations': similarity: is not a field of this kind; "
                                          "its own fields: 'citations_output'"):
        await run_check("citations", judge=offline_judge(), answer="x", similarity=0.9)
    with pytest.raises(GraphBuildError, match="unknown check kind 'faithfullness'. Did you mean "
                                              "'faithfulness'"):
        check.make_config({"kind": "faithfullness"}, node="n")
    with pytest.raises(GraphBuildError, match="ablations: is not a field of this kind"):
        check.make_config({"kind": "relevancy", "ablations": 8}, node="n")


def test_the_node_config_keeps_the_kind_fields_of_yaml_and_types_them() -> None:
    cfg = check.make_config({"kind": "relevancy", "relevancy_questions": 5}, node="n")
    assert cfg.options.relevancy_questions == 5  # type: ignore[attr-defined]
    attr = check.make_config({"kind": "attribution", "source_unit": "sentence"}, node="n")
    assert attr.options.ablations == 32 and attr.options.source_unit == "sentence"  # type: ignore[attr-defined]
    with pytest.raises(GraphBuildError, match="source_unit"):
        check.make_config({"kind": "attribution", "source_unit": "word"}, node="n")


def test_a_second_function_cannot_take_a_registered_name() -> None:
    reg = CheckRegistry()
    register_check("length", default_threshold=1.0, reads=("answer",), registry=reg)(_length)

    async def other(call: CheckCall, options: CheckOptions) -> CheckResult:
        raise AssertionError("never runs")

    with pytest.raises(ConfigError, match="already registered"):
        register_check("length", default_threshold=1.0, reads=("answer",), registry=reg)(other)
    with pytest.raises(ConfigError, match="valid inputs"):
        register_check("odd", default_threshold=1.0, reads=("context",), registry=reg)(other)  # type: ignore[arg-type]


YAML = """\
version: 1
name: short_answers
inputs:
  answer: {type: string}
state:
  checks: {type: object, reducer: merge}
  words: {type: integer}
outputs: [checks, words]
nodes:
  short: {type: check, kind: length, max_words: 3, words_output: words}
flow: short
"""


def test_a_user_registered_kind_runs_from_a_yaml_flow_and_is_in_the_schema(length_kind: None) -> None:
    from agentflow.spec.load import load_workflow
    from agentflow.spec.model import json_schema

    wf = load_workflow("short.yaml", text=YAML)
    services = Services(models=build_router(None, env={}, encoder=HashEmbedder.lexical()))
    result = wf.flow.run({"answer": "Paris, France."}, services=services)
    assert result["words"] == 2
    checked = result["checks"]["length"]
    assert checked.kind == "length" and checked.passed and checked.reason == "2 words (at most 3)"
    node = json_schema()["$defs"]["CheckNode"]
    assert "length" in node["properties"]["kind"]["enum"] and "max_words" in node["properties"]
    assert node["x-kinds"]["kinds"]["length"]["reads"] == ["answer"]
    failing = wf.flow.run({"answer": "It is Paris, in France."}, services=services)
    assert not failing["checks"]["length"].passed


def test_a_yaml_check_of_an_unknown_kind_lists_the_registered_kinds() -> None:
    from agentflow.spec.load import load_workflow

    with pytest.raises(SpecError) as info:
        load_workflow("bad.yaml", text=YAML.replace("kind: length, max_words: 3, words_output: words",
                                                    "kind: lenght"))
    message = str(info.value)
    assert "unknown check kind 'lenght'" in message
    for kind in BUILT_IN:
        assert repr(kind) in message


def test_the_reference_lists_each_kind_with_its_own_fields(length_kind: None) -> None:
    from agentflow.spec.model import json_schema
    from agentflow.spec.reference import render_markdown

    text = render_markdown(json_schema())
    section = text.split("#### `kind: length`", 1)[1].split("\n### ", 1)[0]
    assert "Answers of at most `max_words` words pass." in section
    assert "Default threshold: 1. Reads: `answer`." in section
    assert "| `max_words` | `integer` | `5` | Longest answer that passes. |" in section
    common = text.split("### `check`", 1)[1].split("#### ", 1)[0]
    assert "`max_words`" not in common and "`relevancy_questions`" not in common
