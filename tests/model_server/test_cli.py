"""``agentflow model-server serve`` as a command: argument parsing, and a real server process answering on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentflow.model_server.cli import add_parser


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentflow")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_serve_options_and_defaults() -> None:
    args = parse("model-server", "serve", "--model", "m")
    assert (args.host, args.port, args.device, args.api_key) == ("127.0.0.1", 8000, "auto", None)
    args = parse("model-server", "serve", "--model", "m", "--device", "cpu", "--port", "9", "--max-batch", "4",
                 "--queue-limit", "2", "--api-key", "k")
    assert (args.device, args.port, args.max_batch, args.queue_limit, args.api_key) == ("cpu", 9, 4, 2, "k")
    args = parse("model-server", "serve", "--model", "m", "--served-model-name", "a", "--served-model-name", "b")
    assert args.served_model_name == ["a", "b"]


def test_body_limit_and_allowed_host_options() -> None:
    args = parse("model-server", "serve", "--model", "m")
    assert (args.max_request_bytes, args.allow_host) == (4 * 1024 * 1024, [])
    args = parse("model-server", "serve", "--model", "m", "--max-request-bytes", "1000", "--allow-host", "a.lan",
                 "--allow-host", "*.corp.example")
    assert (args.max_request_bytes, args.allow_host) == (1000, ["a.lan", "*.corp.example"])


@pytest.mark.parametrize(("command", "note"), [("model-server", False), ("node", True)])
def test_the_old_name_works_and_says_the_new_one_on_stderr_only(
        command: str, note: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentflow.cli import main

    assert main([command, "serve", "--model", str(tmp_path / "nope"), "--device", "cpu"]) == 2  # no such model
    out, err = capsys.readouterr()
    assert out == ""
    assert ("'agentflow node' is now 'agentflow model-server'" in err) is note


@pytest.mark.parametrize(("argv", "message"), [(["--device", "tpu"], "invalid choice: 'tpu'"),
                                               (["--max-batch", "0"], "must be a positive integer")])
def test_bad_options_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("model-server", "serve", "--model", "m", *argv)
    assert message in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_process_answers_and_a_missing_model_fails_clearly(stories: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentflow.model_server", "serve", "--model", str(stories), "--device", "cpu",
         "--port", str(port), "--threads", "1", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server process did not come up"
            time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"model": "stories260K", "prompt": "The cat", "max_tokens": 8, "temperature": 0})
        assert r.json()["choices"][0]["text"].startswith(" and a boy")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    missing = subprocess.run(
        [sys.executable, "-m", "agentflow.model_server", "serve", "--model", str(tmp_path / "nope"), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
