"""A/B tests: variants that differ in their models only, a sticky split, the variant on every trace, and
``agentflow ab report``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agentflow.api.abreport import build_report, render, two_proportions, wilson
from agentflow.api.server import ServerThread
from agentflow.api.settings import ServeSettings
from agentflow.cli import main as agentflow
from agentflow.errors import ConfigError
from agentflow.tracing.defaults import flush_default_hooks
from agentflow.tracing.query import TraceReader
from tests.api.support import project

TALK = """
version: 1
name: talk
inputs:
  question: {type: string}
outputs: [answer]
nodes:
  chat: {type: chat, input: question, output: answer, model: small}
flow: [chat]
"""
EXPERIMENT = """
experiment: talk-model
workflow: talk
variants:
  control: {weight: 1}
  mock: {weight: 1, aliases: {small: {model: openai/mock-b, mock_response: "I am model B."}}}
"""


def _project(root: Path, experiment: str = EXPERIMENT) -> Path:
    project(root)
    (root / "talk.yaml").write_text(TALK)
    (root / "talk.ab.yaml").write_text(experiment)
    return root


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = _project(tmp_path_factory.mktemp("talk"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AGENTFLOW_TRACES_DB", raising=False)
        settings = ServeSettings(files=(str(root / "talk.yaml"),), root=str(root), port=0)
        with ServerThread(settings) as server:
            yield server.url, root


def _serve_check(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = agentflow(["serve", str(root / "talk.yaml"), "--port", "1", *extra])
    return code, capsys.readouterr().err


def test_a_variant_that_changes_anything_but_the_models_is_refused_at_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, EXPERIMENT + "  prompt: {weight: 1, nodes: {chat: {prompt: other.j2}}, sampling: {}}\n")
    monkeypatch.chdir(root)
    code, err = _serve_check(root, capsys)
    assert code == 2
    assert "variant 'prompt' changes 'nodes', 'sampling': a variant may change only the model mapping " \
           "(profile, aliases)" in err


def test_an_experiment_file_is_checked_when_the_server_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, "experiment: x\nworkflow: talk\nvariants:\n  only: {weight: 1}\n")
    monkeypatch.chdir(root)
    code, err = _serve_check(root, capsys)
    assert code == 2 and "at least 2 items" in err
    (root / "talk.ab.yaml").write_text(EXPERIMENT.replace("workflow: talk", "workflow: tlak"))
    code, err = _serve_check(root, capsys)
    assert code == 2 and "workflow 'tlak' is not served; served: 'talk'" in err


def test_a_variant_may_override_only_aliases_the_profile_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentflow.api.workflows import load_served

    root = _project(tmp_path, EXPERIMENT.replace("aliases: {small:", "aliases: {smol:"))
    monkeypatch.chdir(root)
    with pytest.raises(ConfigError, match="variant 'mock' overrides alias\\(es\\) 'smol', which profile 'offline'"):
        asyncio.run(load_served(ServeSettings(files=(str(root / "talk.yaml"),), root=str(root))))


def test_the_split_is_sticky_per_thread_and_every_trace_records_its_variant(talk: tuple[str, Path]) -> None:
    url, root = talk
    seen: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(16):
            for turn in range(2):
                body = http.post("/workflows/talk/runs", json={"inputs": {"question": "hello"},
                                                               "thread_id": f"user-{i}"}).json()
                assert body["status"] == "ok", body
                assert seen.setdefault(f"user-{i}", body["variant"]) == body["variant"]  # sticky
                answer = body["outputs"]["answer"]
                assert (answer == "I am model B.") == (body["variant"] == "mock")  # the variant's model answered
        described = http.get("/workflows/talk").json()["experiment"]
    assert set(seen.values()) == {"control", "mock"}
    assert described["variants"]["mock"]["share"] == 0.5
    flush_default_hooks()  # the server runs in this process: its trace store writes in batches
    with TraceReader(root / ".agentflow" / "traces.db") as reader:
        runs = reader.runs(tag="experiment=talk-model", limit=1000)
    assert len(runs) == 32
    assert all(r.tags["variant"] == seen[r.tags["thread"]] and r.tags["origin"] == "serve" for r in runs)


def test_ab_report_prints_rates_intervals_the_test_and_says_when_the_sample_is_too_small(
        talk: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, root = talk
    db = root / ".agentflow" / "traces.db"
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(8):
            body = http.post("/workflows/talk/runs", json={"inputs": {"question": "hi"}, "user_id": f"u{i}"}).json()
            score = "up" if body["variant"] == "mock" else ("down" if i % 2 else "up")
            assert http.post(f"/runs/{body['run_id']}/feedback", json={"score": score}).status_code == 201
    flush_default_hooks()
    assert agentflow(["ab", "report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("experiment talk-model (workflow talk)\nmethod: two-proportion z-test")
    assert "\ncontrol " in out and "\nmock " in out and "mock vs control: thumbs-up rate" in out
    assert "sample too small to decide: each variant needs at least 30 rated runs" in out
    assert agentflow(["ab", "report", "talk-model", "--db", str(db), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["mock"]["rate"] == 1.0 and by_name["mock"]["rated"] == by_name["mock"]["up"] > 0
    assert by_name["control"]["runs"] + by_name["mock"]["runs"] == 40
    copy = root / "copy-of-traces.db"  # another machine's store: the same runs count once
    import sqlite3

    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    assert agentflow(["ab", "report", "--db", str(db), "--db", str(copy), "--format", "json"]) == 0
    merged = {v["name"]: v["runs"] for v in json.loads(capsys.readouterr().out)["variants"]}
    assert merged == {name: v["runs"] for name, v in by_name.items()}
    assert by_name["control"]["latency_p50_s"] > 0 and report["comparisons"][0]["decision"] == "sample too small"


@dataclass
class _Run:
    workflow: str
    tags: dict[str, str]
    feedback_up: int
    feedback_down: int
    duration_s: float | None = 0.1
    status: str = "ok"
    tokens: int = 10
    cost: float | None = 0.001


def _runs(variant: str, up: int, down: int) -> list[_Run]:
    return ([_Run("w", {"variant": variant}, 1, 0) for _ in range(up)]
            + [_Run("w", {"variant": variant}, 0, 1) for _ in range(down)])


def test_the_two_proportion_test_and_the_wilson_interval_give_the_textbook_values() -> None:
    low, high = wilson(60, 100)
    assert (round(low, 4), round(high, 4)) == (0.5020, 0.6906)
    diff, lo, hi, z, p = two_proportions(120, 200, 150, 200)
    assert round(diff, 3) == 0.15 and round(z, 2) == 3.20 and round(p, 4) == 0.0014
    assert round(lo, 3) == 0.059 and round(hi, 3) == 0.241
    report = build_report("e", [*_runs("control", 120, 80), *_runs("b", 150, 50)], order=["control", "b"])
    assert report.comparisons[0].decision == "better" and not report.notes
    same = build_report("e", [*_runs("control", 60, 40), *_runs("b", 62, 38)], order=["control", "b"])
    assert same.comparisons[0].decision == "no significant difference"
    small = build_report("e", [*_runs("control", 6, 4), *_runs("b", 15, 5)], order=["control", "b"])
    assert small.comparisons[0].decision == "sample too small"
    assert small.comparisons[0].needed_per_variant == 150
    assert "a difference this size needs about 150 rated runs per variant" in render(small)
