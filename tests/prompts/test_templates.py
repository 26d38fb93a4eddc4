"""Prompt templates: strict variables, blocks as messages, lookup and overrides, variable lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.errors import ConfigError
from agentflow.prompts import PromptStore, template_variables, unknown_variables


@pytest.fixture
def project(tmp_path: Path) -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "greet.j2").write_text("Hello {{ name }}{% if title %}, {{ title }}{% endif %}!")
    (prompts / "chat.j2").write_text(
        "{% block system %}You are {{ persona }}.{% endblock %}\n"
        "{% block user %}{% for item in items %}- {{ item }}\n{% endfor %}{{ question }}{% endblock %}"
    )
    return tmp_path


def test_rendering_is_strict_about_missing_variables(project: Path) -> None:
    store = PromptStore([project])
    assert store.render("prompts/greet.j2", {"name": "Ada", "title": "PhD"}) == "Hello Ada, PhD!"
    with pytest.raises(ConfigError, match=r"prompts/greet.j2.*'title' is undefined.*given: name"):
        store.render("prompts/greet.j2", {"name": "Ada"})


def test_blocks_become_system_and_user_messages(project: Path) -> None:
    messages = PromptStore([project]).messages(
        "prompts/chat.j2", {"persona": "terse", "items": ["a", "b"], "question": "why?"})
    assert messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "- a\n- b\nwhy?"},
    ]
    assert PromptStore([project]).messages("prompts/greet.j2", {"name": "x", "title": ""}) == [
        {"role": "user", "content": "Hello x!"}]


def test_template_variables_are_listed_for_build_time_checks(project: Path) -> None:
    assert template_variables("prompts/greet.j2", root=project) == {"name", "title"}
    assert template_variables("prompts/chat.j2", root=project) == {"persona", "items", "question"}
    missing, unused = unknown_variables("prompts/greet.j2", ["name", "nickname"], root=project)
    assert missing == {"title"} and unused == {"nickname"}


def test_a_missing_template_says_where_it_looked_and_suggests(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"'prompts/gret.j2' not found under .*Did you mean 'prompts/greet.j2'"):
        PromptStore([project]).template("prompts/gret.j2")


def test_a_syntax_error_names_the_template_and_line(project: Path) -> None:
    (project / "prompts" / "broken.j2").write_text("line one\n{% if x %}never closed")
    with pytest.raises(ConfigError, match=r"prompts/broken.j2', line 2"):
        PromptStore([project]).template("prompts/broken.j2")


def test_builtin_templates_are_found_and_a_project_can_override_them(project: Path) -> None:
    store = PromptStore([project])
    assert {"prompts/rag_answer.j2", "prompts/classify.j2", "prompts/greet.j2"} <= set(store.names())
    (project / "prompts" / "classify.j2").write_text("{% block user %}custom {{ text }}{% endblock %}")
    assert store.messages("prompts/classify.j2", {"text": "x"}) == [{"role": "user", "content": "custom x"}]


def test_templates_cannot_escape_their_roots(project: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        PromptStore([project]).template("../../etc/passwd")
