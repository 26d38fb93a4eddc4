"""A workflow that does not build reports every problem at once, each with file:line:col; the
collections its retrieve nodes search must be declared or exist in the store."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from agentflow.errors import SpecError, SpecErrors
from agentflow.spec import load as spec_load
from agentflow.spec.load import load_workflow

from .nodes import REG

MANY = textwrap.dedent("""\
    version: 1
    name: many
    inputs:
      question: {type: string}
    nodes:
      classify: {type: classify, input: question, output: route, model: smal, labels: {a: {description: x}}}
      search: {type: retrieve, collection: knowledge, input: question, output: chunks, top_k: 400}
      answer: {type: generate, query: question, output: answer, prompt: prompts/nope.j2}
      other: {type: genrate}
      more: {type: generate, temprature: 1}
    flow: [classify, search, answer]
""")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # prompts, agentflow.yaml and .agentflow/ are looked up here
    return tmp_path


def errors_of(path: Path, **kwargs: object) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_workflow(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_every_problem_is_reported_at_once_in_file_order(project: Path) -> None:
    path = project / "many.yaml"
    path.write_text(MANY)
    e = errors_of(path)
    assert isinstance(e, SpecErrors) and len(e.problems) == 5 and e.total == 5
    where = [(p.line, p.path) for p in e.problems]
    assert where == [(6, "nodes.classify.model"), (7, "nodes.search.top_k"),
                     (8, "nodes.answer.prompt"), (9, "nodes.other"), (10, "nodes.more.temprature")]
    lines = str(e).splitlines()
    assert len(lines) == 5 and all(line.startswith(f"{path}:") for line in lines)
    assert all(p.column is not None for p in e.problems)
    assert "more problem" not in str(e)
    assert "Unknown model alias 'smal'" in lines[0] and "Did you mean 'small'?" in lines[0]
    assert "prompt template 'prompts/nope.j2' not found" in lines[2]
    assert "unknown node type 'genrate'. Did you mean 'generate'?" in lines[3]
    assert (e.line, e.path) == (6, "nodes.classify.model")  # the first problem's location


def test_max_errors_caps_the_list_and_says_how_many_are_left(project: Path) -> None:
    path = project / "many.yaml"
    path.write_text(MANY)
    e = errors_of(path, max_errors=2)
    assert isinstance(e, SpecErrors) and len(e.problems) == 2 and e.total == 5
    assert str(e).splitlines()[-1] == "... 3 more problem(s) not shown (--max-errors 5 shows them all)"


def test_schema_problems_and_a_wrong_version_come_together(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("version: 7\nname: x\nnodes:\n  a: {type: echo, times: 9}\n  b: {type: ech}\nflow: [a]\n")
    e = errors_of(path, reg=REG)
    assert [(p.line, p.path) for p in e.problems] == [  # type: ignore[attr-defined]
        (1, "version"), (4, "nodes.a.times"), (5, "nodes.b")]
    assert "unknown version 7; supported: 1" in str(e)


def test_one_problem_is_a_plain_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nname: x\nnodes:\n  a: {type: echo, times: 9}\nflow: [a]\n")
    e = errors_of(path, reg=REG)
    assert type(e) is SpecError and str(e).startswith(f"{path}:4:")


RETRIEVE = textwrap.dedent("""\
    version: 1
    name: search
    inputs:
      question: {type: string}
    collections:
      docs: {source: docs}
    nodes:
      first: {type: retrieve, collection: docs, input: question, output: chunks}
      second: {type: retrieve, collection: handbok, input: question, output: more}
    flow: [first, second]
""")


def test_an_undeclared_collection_that_is_not_in_the_store_is_an_error(project: Path) -> None:
    path = project / "wf.yaml"
    path.write_text(RETRIEVE)
    e = errors_of(path, check_stores=True)
    assert (e.line, e.path) == (9, "nodes.second.collection") and e.column == 40
    assert "collection 'handbok' is not declared under collections: and does not exist in the " \
           "store" in str(e)
    assert "Declared: 'docs'" in str(e) and "agentflow ingest PATH... --collection handbok" in str(e)
    load_workflow(path)  # code that brings its own retrievers does not ask for the check


def test_a_collection_name_no_store_can_hold_is_an_error(project: Path) -> None:
    path = project / "wf.yaml"
    path.write_text(RETRIEVE.replace("collection: handbok", "collection: ../etc"))
    e = errors_of(path, check_stores=True)
    assert (e.line, e.path) == (9, "nodes.second.collection")
    assert "invalid collection name '../etc'" in str(e)


def test_a_collection_in_the_store_or_declared_is_fine(project: Path) -> None:
    path = project / "wf.yaml"
    path.write_text(RETRIEVE)
    shard = project / ".agentflow" / "qdrant" / "handbok"
    shard.mkdir(parents=True)
    (shard / "segment").write_text("x")  # what `agentflow ingest` leaves there
    assert load_workflow(path, check_stores=True).spec.nodes["second"].collection == "handbok"
    path.write_text(RETRIEVE.replace("collection: handbok", "collection: docs"))
    (shard / "segment").unlink()
    load_workflow(path, check_stores=True)


def test_a_store_that_cannot_be_read_is_a_warning_naming_the_collection(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project / "wf.yaml"
    path.write_text(RETRIEVE)
    monkeypatch.setattr(spec_load, "_in_embedded_store", lambda collection, root: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_workflow(path, check_stores=True)
    messages = [str(w.message) for w in caught]
    assert any("cannot check whether collection 'handbok' (searched by 'second') exists" in m
               for m in messages), messages


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def test_validate_lists_every_problem_with_max_errors(tmp_path: Path) -> None:
    (tmp_path / "many.yaml").write_text(MANY)
    proc = cli(tmp_path, "validate", "many.yaml")
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("agentflow: many.yaml:6:") and len(lines) == 5
    assert [re.match(r"(agentflow: )?many.yaml:(\d+):\d+ \(", line).group(2)  # type: ignore[union-attr]
            for line in lines] == ["6", "7", "8", "9", "10"]
    capped = cli(tmp_path, "validate", "many.yaml", "--max-errors", "1")
    assert capped.returncode == 3 and len(capped.stderr.strip().splitlines()) == 2
    assert "4 more problem(s) not shown (--max-errors 5 shows them all)" in capped.stderr
    bad = cli(tmp_path, "validate", "many.yaml", "--max-errors", "0")
    assert bad.returncode == 2 and "expected a whole number of at least 1" in bad.stderr


def test_validate_checks_collections_and_run_opens_an_ingested_one(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "loops.md").write_text(
        "# Loops\nEvery loop has max_iterations, so it never runs forever.\n")
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: ingested
        inputs:
          question: {type: string}
        outputs: [chunks]
        nodes:
          search: {type: retrieve, collection: handbook, input: question, output: chunks, top_k: 1}
        flow: [search]
    """))
    missing = cli(tmp_path, "validate", "wf.yaml")
    assert missing.returncode == 3
    assert "wf.yaml:7:40 (nodes.search.collection): collection 'handbook' is not declared" \
        in missing.stderr
    ingest = cli(tmp_path, "ingest", "docs", "--collection", "handbook", "--no-progress")
    assert ingest.returncode == 0, ingest.stderr
    assert cli(tmp_path, "validate", "wf.yaml").returncode == 0
    run = cli(tmp_path, "run", "wf.yaml", "-q", "-i", "question=do loops end?", "--output", "json")
    assert run.returncode == 0, run.stderr
    assert '"source": "docs/loops.md"' in run.stdout
