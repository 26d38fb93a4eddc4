"""The model server's one name on the command line and in the extras: ``agentflow model-server``, with
``agentflow node`` (and the ``node`` extra), its old name, kept working but out of sight. No torch needed: the
command's parser is standard library only (serving itself is tested in tests/model_server/test_cli.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agentflow.cli import build_parser
from agentflow.model_server.cli import run

ROOT = Path(__file__).resolve().parents[2]


def test_model_server_serve_and_its_old_name_node_serve_parse_alike() -> None:
    argv = ["serve", "--model", "m", "--port", "9", "--max-batch", "4"]
    new = build_parser().parse_args(["model-server", *argv])
    old = build_parser().parse_args(["node", *argv])
    assert new.handler is old.handler is run
    assert (new.old_name, old.old_name) == (False, True)  # only the old name gets the note on stderr
    assert {k: v for k, v in vars(new).items() if k != "old_name"} == {
        k: v for k, v in vars(old).items() if k != "old_name"}


def test_help_lists_model_server_and_hides_the_old_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")]
    assert "model-server" in listed and "serve" in listed  # the model server, and serving workflows
    assert "node" not in listed


def test_the_model_server_extra_and_node_its_alias() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("torch") for req in extras["model-server"])
    assert extras["node"] == ["agentflow[model-server]"]
    users = [name for name, reqs in extras.items() if any("model-server" in r for r in reqs)]
    assert {"node", "tune", "test"} <= set(users)
    assert not [name for name, reqs in extras.items() if any("[node" in r or ",node" in r for r in reqs)]
