"""Prompt templates are data: the sandbox refuses every road from a template to Python's internals.

Each refusal is a PromptError naming the template file and line: at load time for what the source
shows (so `agentflow validate` catches it), at render time for what only a value reveals.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentflow.errors import ConfigError, PromptError
from agentflow.prompts import PromptStore

PAYLOAD = "{{ cycler.__init__.__globals__.os.system('id > PWNED') }}"

ESCAPES = {
    "cycler_globals": (PAYLOAD, "__init__"),
    "subclasses": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
    "lipsum_globals": ("{{ lipsum.__globals__['os'].popen('id').read() }}", "__globals__"),
    "class": ("{{ question.__class__ }}", "__class__"),
    "globals_by_item": ("{{ joiner['__globals__'] }}", "__globals__"),
    "callable_call": ("{{ joiner.__call__ }}", "__call__"),
    "callable_self": ("{{ range.__self__ }}", "__self__"),
    "attr_filter": ("{{ question|attr('__class__') }}", "__class__"),
    "map_attribute": ("{{ [question]|map(attribute='__class__.__mro__')|list }}", "__class__"),
    "self_reference": ("{{ self.__init__ }}", "__init__"),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # where a payload that did run would write PWNED
    (tmp_path / "prompts").mkdir()
    return tmp_path


def write(project: Path, name: str, body: str) -> str:
    (project / "prompts" / name).write_text(f"line one\n{{# a comment #}}\n{body}\n")
    return f"prompts/{name}"


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escapes_are_refused_at_load_time_with_file_and_line(project: Path, case: str) -> None:
    body, attribute = ESCAPES[case]
    name = write(project, f"{case}.j2", body)
    store = PromptStore([project])
    with pytest.raises(PromptError) as err:
        store.render(name, {"question": "hi"})
    message = str(err.value)
    assert f"unsafe template at {name}:3: access to attribute {attribute!r} is not allowed" in message
    assert isinstance(err.value, ConfigError)
    assert not (project / "PWNED").exists()


@pytest.mark.parametrize("body, problem", [
    ("{% set n = '__in' ~ 'it__' %}{{ cycler|attr(n) }}", "'__init__'"),
    ("{{ items.append(4) }}", "'append' of 'list'"),
    ("{{ settings.update(a=2) }}", "'update' of 'dict'"),
    ("{% for k in keys %}{{ items|attr(k)|string|length > 0 }}{% endfor %}", "'__class__'"),
])
def test_what_only_a_value_reveals_is_refused_while_rendering(project: Path, body: str,
                                                              problem: str) -> None:
    name = write(project, "dynamic.j2", body)
    with pytest.raises(PromptError, match=rf"unsafe template at {name}:3: access to attribute "
                                          rf"{problem}.*is unsafe"):
        PromptStore([project]).render(
            name, {"items": [1], "settings": {"a": 1}, "keys": ["count", "__class__"]})


@pytest.mark.parametrize("body, problem", [
    ("{{ 'x' * 10**10 }}", "'*' would make a value of 10,000,000,000 items"),
    ("{{ [0] * n }}", "'*' would make a value of 100,000,000 items"),
    ("{{ 9 ** (10 ** 9) }}", "an exponent of 1000000000 is over the limit"),
])
def test_operators_that_would_fill_memory_or_never_finish_are_refused(
        project: Path, body: str, problem: str) -> None:
    name = write(project, "big.j2", body)
    with pytest.raises(PromptError, match=re.escape(f"unsafe template at {name}:3: {problem}")):
        PromptStore([project]).render(name, {"n": 10**8})


def test_an_included_template_is_checked_with_its_own_file_and_line(project: Path) -> None:
    write(project, "evil.j2", "{{ lipsum.__globals__ }}")
    name = write(project, "outer.j2", "{% include 'prompts/evil.j2' %}")
    with pytest.raises(PromptError, match=r"unsafe template at prompts/evil.j2:3"):
        PromptStore([project]).template(name)


def test_ordinary_templates_still_render(project: Path) -> None:
    name = write(project, "ok.j2", textwrap.dedent("""\
        {% for d in docs %}[DOC {{ loop.index }}] {{ d.title|upper }}: {{ d['text']|replace('text', 'words') }}
        {% endfor %}{{ names|join(', ') }} {{ '%s!'|format(q) }} {{ range(3)|list|length }}
        {{ docs|map(attribute='title')|join('/') }} {{ q.split()|first }} {{ cycler('a').next() }}
        {{ 'ab' * 2 }} {{ 2 ** 10 }} {{ 3 * 4 }}"""))
    text = PromptStore([project]).render(name, {
        "docs": [{"title": "a", "text": "long text here"}, {"title": "b", "text": "x"}],
        "names": ["x", "y"], "q": "why so?"})
    assert "[DOC 1] A: long words here" in text and "[DOC 2] B: x" in text
    assert "x, y why so?! 3" in text and "a/b why a" in text and "abab 1024 12" in text


def test_the_builtin_prompts_pass_the_check() -> None:
    store = PromptStore([])
    assert store.names()
    for name in store.names():
        store.template(name)


def test_agentflow_run_refuses_the_payload_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "x.j2").write_text(
        "{% block system %}You answer.{% endblock %}\n{% block user %}\n" + PAYLOAD
        + "\n{{ query }}{% endblock %}\n")
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: pwn
        inputs:
          question: {type: string}
        nodes:
          answer: {type: generate, prompt: prompts/x.j2, documents: null}
        flow: [answer]
    """))
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", "wf.yaml", "-q",
                           "-i", "question=hi"], cwd=tmp_path, text=True, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert not (tmp_path / "PWNED").exists(), "the template ran a shell command"
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "wf.yaml:6:" in proc.stderr and "nodes.answer.prompt" in proc.stderr
    assert "unsafe template at prompts/x.j2:3: access to attribute '__init__' is not allowed" \
        in proc.stderr


DYNAMIC = "{% set n = '__glo' ~ 'bals__' %}{{ (lipsum|attr(n)).os.system('id > PWNED') }}"
"""A payload whose attribute name only exists while rendering: the sandbox refuses it then."""


def test_a_block_refused_while_rendering_names_the_template_line(project: Path) -> None:
    (project / "prompts" / "chat.j2").write_text(
        "{% block system %}You answer.{% endblock %}\n{% block user %}\n" + DYNAMIC
        + "\n{{ query }}{% endblock %}\n")
    with pytest.raises(PromptError, match=r"unsafe template at prompts/chat.j2:3: access to "
                                          r"attribute '__globals__' of 'function' object"):
        PromptStore([project]).messages("prompts/chat.j2", {"query": "hi"})
    assert not (project / "PWNED").exists()


def test_agentflow_run_refuses_a_payload_only_rendering_reveals(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "x.j2").write_text(
        "{% block system %}You answer.{% endblock %}\n{% block user %}\n" + DYNAMIC
        + "\n{{ query }}{% endblock %}\n")
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: pwn\ninputs:\n  question: {type: string}\nnodes:\n"
        "  answer: {type: generate, prompt: prompts/x.j2, documents: null}\nflow: [answer]\n")
    proc = subprocess.run([sys.executable, "-m", "agentflow.cli", "run", "wf.yaml", "-q",
                           "-i", "question=hi"], cwd=tmp_path, text=True, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert not (tmp_path / "PWNED").exists(), "the template ran a shell command"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "node 'answer'" in proc.stderr
    assert "unsafe template at prompts/x.j2:3: access to attribute '__globals__'" in proc.stderr
