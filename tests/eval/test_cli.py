"""`agentflow eval` and `agentflow eval compare` from the command line (in-process), on a project
in tmp_path: a YAML workflow with its own collection (hash embedder) and a python answer node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.cli import main
from tests.eval import flows

BASE = ("eval", "quote_rag.yaml", "--dataset", "questions.jsonl", "--format", "jsonl",
        "--allow-module", flows.ALLOWED, "--no-judge", "-q")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTFLOW_TRACES_DB", raising=False)
    flows.write_project(tmp_path)
    return tmp_path


def test_eval_writes_results_metrics_and_report_and_resumes(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--limit", "2", "--out", "runs/a"]) == 0
    out = capsys.readouterr().out
    assert "quote_rag.yaml on jsonl/all: 2 of 2 items, 0 errors" in out
    assert "report: runs/a/report.html" in out
    assert main([*BASE, "--out", "runs/a", "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 items, 1 errors" in out
    assert "recall@5                     1.0000  (n=2)" in out
    lines = [json.loads(line) for line in (project / "runs/a/results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines][:2] == ["cats", "owls"] and len(lines) == 5
    assert all(r["run_id"] for r in lines)
    assert (project / ".agentflow" / "traces.db").is_file()  # the default trace store
    metrics = json.loads((project / "runs/a/metrics.json").read_text())
    # the answer quotes the first sentence of the best chunk: "fifteen hours" for cats, and
    # "Owls hunt at night." (not "270 degrees") for owls
    assert metrics["metrics"]["answer_contains"] == 0.5 and metrics["items"]["errors"] == 1
    assert "<svg" in (project / "runs/a/report.html").read_text()


def test_compare_prints_deltas_and_writes_the_html_page(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--out", "runs/a"]) == 0
    assert main([*BASE, "--out", "runs/b", "--set", "nodes.search.top_k=1"]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", "runs/a", "runs/b"]) == 0
    captured = capsys.readouterr()
    header, rule, *rows = captured.out.splitlines()
    assert header.split() == ["metric", "A:a", "B:b", "delta"]
    f1 = next(r for r in rows if r.startswith("token F1"))
    assert f1.split()[2:4] == ["0.2222", "0.2222"]  # same answers: the best chunk is unchanged
    assert "compare page: runs/b/compare.html" in captured.err
    html = (project / "runs/b/compare.html").read_text()
    assert "nodes.search.top_k=1" in html and "<script" not in html


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--format", "jsonl2"], 2, "unknown dataset format 'jsonl2'. Did you mean 'jsonl'?"),
    (["--split", "dev"], 2, "no items in split 'dev'"),
    (["--set", "nodes.search.top_k=many"], 3, "workflow does not build: quote_rag.yaml"),
    (["--set", "nodes.serch.top_k=1"], 3, "Did you mean 'search'?"),
    (["--recall-at", "five"], 2, "--recall-at takes positive integers"),
    (["--route-node", "search"], 2, "--route-node 'search' is no classify node"),
])
def test_bad_input_exits_2_or_3_with_a_message_that_says_what_is_valid(
        project: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int,
        message: str) -> None:
    assert main([*BASE, *args]) == code
    assert message in capsys.readouterr().err


def test_usage_errors_of_eval_and_compare(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "quote_rag.yaml"]) == 2
    assert "--dataset and --format are required; formats: clapnq," in capsys.readouterr().err
    assert main(["eval", "compare", "runs/a"]) == 2
    assert "compare takes two evaluation folders" in capsys.readouterr().err
    assert main(["eval", "compare", "runs/a", "runs/b"]) == 2
    assert "runs/a is no evaluation folder" in capsys.readouterr().err
    assert main([*BASE, "--limit", "1", "--out", "runs/x"]) == 0
    assert main([*BASE, "--out", "runs/x", "--set", "nodes.search.top_k=2"]) == 2
    assert "holds an evaluation with another overrides" in capsys.readouterr().err
