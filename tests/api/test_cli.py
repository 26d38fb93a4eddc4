"""``agentflow serve``'s checks before it starts: a workflow that does not build, several workers over the
embedded store, a missing key variable; and a real ``agentflow serve`` process answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.cli import main as agentflow
from tests.api.support import project

ROOT = Path(__file__).resolve().parents[2]


def test_several_workers_over_the_embedded_store_are_refused_with_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSome text.\n")
    monkeypatch.chdir(tmp_path)
    code = agentflow(["serve", str(ROOT / "graphs" / "agentic_rag.yaml"), "--workers", "2",
                      "--set", f"collections.knowledge.source={tmp_path / 'docs'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--workers 2: collection(s) 'agentic_rag: knowledge' live in the embedded store" in err
    assert "collections.NAME.store=http://HOST:6333" in err


def test_a_workflow_that_does_not_build_exits_3_before_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path)
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nnodes:\n  a: {type: nope}\nflow: [a]\n")
    monkeypatch.chdir(tmp_path)
    assert agentflow(["serve", "bad.yaml"]) == 3
    assert "unknown node type 'nope'" in capsys.readouterr().err
    assert agentflow(["serve", "missing.yaml"]) == 2
    assert "no such workflow file 'missing.yaml'" in capsys.readouterr().err


def test_two_workflows_of_one_name_and_an_unset_key_variable_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AF_TEST_UNSET_KEY", raising=False)
    assert agentflow(["serve", "echo.yaml", "--api-key-env", "AF_TEST_UNSET_KEY"]) == 2
    assert "--api-key-env AF_TEST_UNSET_KEY: that environment variable is not set" in capsys.readouterr().err
    (tmp_path / "echo2.yaml").write_text((tmp_path / "echo.yaml").read_text())
    import asyncio

    from agentflow.api.settings import ServeSettings
    from agentflow.api.workflows import load_served
    from agentflow.errors import ConfigError

    with pytest.raises(ConfigError, match="two served workflows are named 'echo'"):
        asyncio.run(load_served(ServeSettings(files=(str(tmp_path / "echo.yaml"), str(tmp_path / "echo2.yaml")),
                                              root=str(tmp_path))))
