"""Pairwise LLM-as-a-judge (both orders, ties on disagreement, win rate with its interval, position bias, the
same-family warning) and Bradley-Terry ratings on the Elo scale, from judge pairs and from thumbs up/down on
served A/B variants; ``agentflow eval compare A B --judge`` through LiteLLM."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentflow.cli import main
from agentflow.eval.pairwise import PAIR_PROMPT, compare_pairwise, judge_games, win_interval
from agentflow.eval.ratings import bradley_terry, expected, feedback_games, ratings
from agentflow.models import ModelRouter
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel

ITEMS = [(f"q{i}", f"Question {i}?", f"answer A{i}" + (" Paris" if i % 4 == 0 else ""),
          f"answer B{i}" + (" Paris" if i % 4 != 0 else "")) for i in range(12)]


def judge_preferring(word: str, *, position: str | None = None, name: str = "hosted_vllm/judge") -> FakeChatModel:
    """A judge that picks the answer containing ``word`` (or always ``position``)."""

    def reply(request: ChatRequest) -> str:
        assert request.messages[0]["content"] == PAIR_PROMPT
        text = request.messages[-1]["content"]
        first, second = text.split("Answer 1:\n")[1].split("\n\nAnswer 2:\n")
        better = position or ("1" if word in first else "2" if word in second else "tie")
        return json.dumps({"reason": "checked", "better": better})

    return FakeChatModel(reply, name=name)


async def test_a_consistent_judge_gives_wins_in_both_orders() -> None:
    router = ModelRouter(models={"judge": judge_preferring("Paris")})
    report = await compare_pairwise(router, "judge", ITEMS)
    assert (report.wins_b, report.wins_a, report.ties) == (9, 3, 0)
    assert report.win_rate_b == 0.75 and report.position_bias_rate == 0.0
    assert report.first_position_rate == 0.5
    low, high = report.interval
    assert low < 0.75 < high and (low, high) == win_interval([1.0 if i % 4 else 0.0 for i in range(12)])
    assert all(v.a_first == v.b_first == v.outcome for v in report.verdicts)


async def test_a_judge_that_always_picks_the_first_position_only_ties() -> None:
    router = ModelRouter(models={"judge": judge_preferring("Paris", position="1")})
    report = await compare_pairwise(router, "judge", ITEMS)
    assert report.ties == 12 and report.win_rate_b == 0.5
    assert report.position_bias_rate == 1.0 and report.first_position_rate == 1.0
    assert judge_games(report) == [("A", "B", 0.5)] * 12


async def test_a_judge_of_a_candidates_family_is_warned_about() -> None:
    router = ModelRouter(models={"judge": judge_preferring("Paris", name="openai/gpt-4.1-mini")})
    report = await compare_pairwise(router, "judge", ITEMS[:2], candidate_families={"A": {"meta"},
                                                                                       "B": {"openai"}})
    assert len(report.warnings) == 1 and "same provider family as B" in report.warnings[0]


def test_bradley_terry_recovers_the_ratings_that_generated_the_games() -> None:
    truth = {"strong": 1200.0, "middle": 1000.0, "weak": 800.0}
    rng = random.Random(0)
    games = []
    for _ in range(1500):
        a, b = rng.sample(sorted(truth), 2)
        p = expected(truth[a], truth[b])
        games.append((a, b, 1.0 if rng.random() < p else 0.0))
    fitted = bradley_terry(games)
    assert fitted["strong"] - fitted["middle"] == pytest.approx(200, abs=40)
    assert fitted["middle"] - fitted["weak"] == pytest.approx(200, abs=40)
    assert sum(fitted.values()) / 3 == pytest.approx(1000.0)
    rated = ratings(games, bootstrap=50)
    assert [r.player for r in rated] == ["strong", "middle", "weak"]
    assert all(r.low <= r.rating <= r.high for r in rated)


def test_a_player_who_won_everything_gets_a_finite_rating_and_ties_count_half() -> None:
    fitted = bradley_terry([("a", "b", 1.0)] * 5)
    assert fitted["a"] > fitted["b"] and all(abs(v) < 5000 for v in fitted.values())
    even = bradley_terry([("a", "b", 0.5)] * 4)
    assert even["a"] == pytest.approx(even["b"])
    with pytest.raises(ValueError, match="1, 0.5 or 0"):
        bradley_terry([("a", "b", 0.7)])


def test_thumbs_on_served_variants_become_games_matched_in_time_order() -> None:
    def run(variant: str, t: float, up: int, down: int) -> SimpleNamespace:
        return SimpleNamespace(tags={"origin": "serve", "variant": variant}, started=t, feedback_up=up,
                               feedback_down=down)

    runs = [run("a", 1, 1, 0), run("b", 2, 0, 1), run("a", 3, 0, 1), run("b", 4, 0, 1), run("a", 5, 1, 0),
            run("b", 6, 0, 0), SimpleNamespace(tags={}, started=7, feedback_up=1, feedback_down=0)]
    assert feedback_games(runs) == [("a", "b", 1.0), ("a", "b", 0.5)]


def evaluation(folder: Path, profile: str, answers: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"metrics": {}, "counts": {}}))
    (folder / "eval.json").write_text(json.dumps({"workflow": "w.yaml", "format": "jsonl", "profile": profile}))
    with (folder / "results.jsonl").open("w") as out:
        for i, (item, answer) in enumerate(answers.items()):
            out.write(json.dumps({"index": i, "id": item, "status": "ok", "inputs": {"question": f"{item}?"},
                                  "prediction": answer, "metrics": {}}) + "\n")
    return folder


def test_eval_compare_with_a_judge_through_litellm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # LiteLLM's mock_response: the real call path, a judge that always answers "the first"
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    judged:\n      aliases:\n        judge: {model: openai/gpt-4.1-mini, "
        "mock_response: '{\"reason\": \"first\", \"better\": \"1\"}'}\n")
    a = evaluation(tmp_path / "a", "offline", {"q1": "Paris [DOC 1].", "q2": "Rome [DOC 1].", "q3": "x"})
    b = evaluation(tmp_path / "b", "openai", {"q1": "Lyon [DOC 2].", "q2": "Rome [DOC 2]."})
    code = main(["eval", "compare", str(a), str(b), "--judge", "judge", "--profile", "judged"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 shared items" in out and "ties 2" in out and "position bias 1.000" in out
    assert "warning: the judge (judge, family openai) is of the same provider family as b" in out
    saved = json.loads((b / "judge.json").read_text())
    assert saved["position_bias_rate"] == 1.0 and saved["win_rate_b"] == 0.5
    assert [v["outcome"] for v in saved["verdicts"]] == ["tie", "tie"]


def test_ratings_from_thumbs_on_served_variants_in_a_real_trace_store(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from pydantic import BaseModel

    from agentflow.graph import Flow
    from agentflow.graph.context import Services
    from agentflow.nodes.generate import generate
    from agentflow.prompts import PromptStore
    from agentflow.testing.models import FakeRouter
    from agentflow.tracing import SQLiteTraceStore, TraceReader
    from agentflow.tracing.feedback import record_feedback

    class State(BaseModel):
        question: str
        chunks: list = []
        answer: str = ""

    db = tmp_path / "traces.db"
    flow = Flow("served", state=State, inputs=["question", "chunks"], steps=[generate("answer")])
    services = Services(models=FakeRouter({"large": FakeChatModel(lambda r: "An answer.")}), prompts=PromptStore())
    # variant b is liked more often: a up/down/down, b up/up/down
    for variant, scores in (("a", ["up", "down", "down"]), ("b", ["up", "up", "down"])):
        for score in scores:
            store = SQLiteTraceStore(db)
            result = asyncio.run(flow.arun({"question": "q", "chunks": []}, hooks=[store], services=services,
                                           tags={"origin": "serve", "variant": variant}))
            store.close()
            record_feedback(db, result.run_id, score=score)
    with TraceReader(db) as reader:
        games = feedback_games(reader.runs(tag="variant", limit=100))
    assert sorted(games) == [("a", "b", 0.0), ("a", "b", 0.5), ("a", "b", 0.5)]
    assert main(["eval", "ratings", "--feedback", "--traces", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("b ") and lines[2].startswith("a ")
