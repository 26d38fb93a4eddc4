"""``agentflow ingest``: arguments, output, exit codes, and a light import."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from agentflow.retrieval import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentflow")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["ingest", *argv])


def test_ingest_twice_then_prune(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ("--collection", "notes", "--embedder", "hash", "--root", str(corpus), "--no-progress")
    args = parse(".", *common, "--field-map", "text=abstract,title=title,id=doc_id")
    assert args.handler is cli.run
    assert cli.run(args) == 0
    assert "notes: 4 file(s), 6 document(s): 6 added" in capsys.readouterr().out
    assert cli.run(args) == 0
    assert (
        "0 added, 0 updated, 6 unchanged, 0 removed; 0 chunk(s) written" in capsys.readouterr().out
    )
    assert cli.run(parse("guide.md", *common, "--prune", "--chunker", "sentences")) == 0
    assert "0 added, 1 updated, 0 unchanged, 5 removed" in capsys.readouterr().out  # new chunker


def test_errors_are_reported_with_exit_codes(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("--collection", "notes", "--embedder", "hash", "--root", str(corpus), "--no-progress")
    assert cli.run(parse("missing.md", *base)) == 1
    assert "error: cannot ingest missing.md: no such file or folder" in capsys.readouterr().err
    assert cli.run(parse(".", *base, "--chunk-size", "10", "--chunk-overlap", "10")) == 2
    assert "overlap (10) must be smaller than size (10)" in capsys.readouterr().err
    assert cli.run(parse(".", *base[:1], "bad name", *base[2:])) == 1
    assert "invalid collection name 'bad name'" in capsys.readouterr().err


def test_the_progress_bar_is_shown_by_default(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.run(parse("solar.txt", "-c", "bar", "--embedder", "hash", "--root", str(corpus))) == 0
    )
    assert "ingest bar" in capsys.readouterr().err


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = (
        "import sys, agentflow.retrieval.cli as c, argparse;"
        "p = argparse.ArgumentParser(); c.add_parser(p.add_subparsers());"
        "heavy = ('numpy', 'qdrant_edge', 'qdrant_client', 'torch', 'tqdm');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
