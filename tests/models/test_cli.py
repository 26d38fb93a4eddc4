"""``agentflow models``: the profile in force and its aliases, without calling any model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agentflow.models import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["models", *argv])
    return args.handler(args)


def test_shows_the_default_profile(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    monkeypatch.delenv("AGENTFLOW_PROFILE", raising=False)
    assert run(["--config", str(tmp_path / "none.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("profile: offline (from default)") and "large" in out


def test_profile_from_the_environment_and_json(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTFLOW_PROFILE", "openai")
    assert run(["--config", str(tmp_path / "none.yaml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["profile"] == "openai" and report["source"].startswith("environment")
    assert report["profiles"]["openai"]["large"][1]["model"] == "openai/gpt-4.1-mini"


def test_credentials_in_an_api_base_are_not_printed(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    config = tmp_path / "agentflow.yaml"
    config.write_text("models:\n  profiles:\n    mine:\n      api_base: http://user:pw@gpu:8000/v1\n"
                      "      aliases: {large: hosted_vllm/m}\n")
    assert run(["--config", str(config), "--profile", "mine"]) == 0
    out = capsys.readouterr().out
    assert "pw" not in out and "***@gpu:8000" in out


def test_an_unknown_profile_exits_2_with_a_suggestion(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    assert run(["--config", str(tmp_path / "none.yaml"), "--profile", "opnai"]) == 2
    assert "Did you mean 'openai'" in capsys.readouterr().err


def test_the_local_profile_shows_its_aliases_and_the_node_it_would_start(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["--config", str(tmp_path / "none.yaml"), "--profile", "local"]) == 0
    out = capsys.readouterr().out
    for alias in ("small", "large", "judge"):
        assert (f"{alias:<10} local/smollm2-135m (openai-compatible, http://127.0.0.1:8000/v1, "
                "price 0, else started: agentflow model-server serve --model smollm2-135m)") in out
    assert "embed      offline/minilm (offline)" in out
