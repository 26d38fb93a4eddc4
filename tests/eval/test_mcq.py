"""Multiple-choice benchmarks: the ``mcq`` and ``halueval_mcq`` formats, accuracy with its Wilson interval,
the letter a chat model answers (scripted), each choice's log-likelihood on the real SmolLM2 node over HTTP,
and ``agentflow eval ALIAS --format mcq``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow.eval.formats import DatasetError, load_dataset
from agentflow.eval.formats.mcq import choices_of
from agentflow.eval.multiple_choice import letter_message, score_mcq, wilson
from agentflow.models import ModelRouter
from agentflow.models.types import ChatRequest
from agentflow.testing.models import FakeChatModel

DATA = Path(__file__).parent / "data" / "general_mcq.jsonl"
HALUEVAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "halueval_qa"


def test_the_project_set_reads_letters_indexes_and_texts_as_the_right_choice() -> None:
    data = load_dataset(DATA, "mcq")
    assert len(data.items) == 12
    answers = {item.id: choices_of(item) for item in data.items}
    assert answers["geo-1"][1] == 0 and answers["sci-1"][1] == 1 and answers["sci-2"][1] == 0
    assert answers["rag-2"] == (["A colour", "max_iterations", "A password"], 1)
    rag = next(i for i in data.items if i.id == "rag-1")
    assert rag.inputs["context"].startswith("agentflow stores") and rag.gold.answers == ("In a SQLite file",)


@pytest.mark.parametrize("row, message", [
    ({"question": "q", "choices": ["a", "b"], "answer": "C"}, "'answer' must be a letter A-B"),
    ({"question": "q", "choices": ["a"], "answer": 0}, "'choices' must be a list of 2 to 26"),
    ({"question": "q", "choices": ["a", "a"], "answer": 0}, "the same text twice"),
    ({"question": "q", "choices": ["a", "b"], "answer": 0, "answers": 1}, "unknown field(s) ['answers']"),
])
def test_a_bad_row_names_its_line_and_field(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"question": "fine", "choices": ["x", "y"], "answer": "A"}) + "\n" + json.dumps(row))
    with pytest.raises(DatasetError) as info:
        load_dataset(path, "mcq")
    assert f"{path}:2" in str(info.value) and message in str(info.value)


def test_halueval_reads_as_two_choice_items_with_the_right_answer_on_either_side() -> None:
    data = load_dataset(HALUEVAL, "halueval_mcq", limit=200)
    assert len(data.items) == 200
    rights = [choices_of(item)[1] for item in data.items]
    assert 0.35 < sum(rights) / len(rights) < 0.65
    item = data.items[0]
    choices, right = choices_of(item)
    assert len(choices) == 2 and item.inputs["context"] and item.gold.answers == (choices[right],)


def test_wilson_interval() -> None:
    low, high = wilson(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-3) and high == pytest.approx(0.8922, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)


async def test_letter_scoring_reads_the_first_letter_a_chat_model_answers() -> None:
    data = load_dataset(DATA, "mcq")
    seen: list[ChatRequest] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request)
        text = request.messages[-1]["content"]
        # right on the geography questions, "B" otherwise
        return "A." if "capital of France" in text else "The answer is B"

    router = ModelRouter(models={"api": FakeChatModel(reply, name="openai/fake", kind="openai")})
    report = await score_mcq(router, "api", data.items, scoring="auto")
    assert report.scoring == "letter"  # no prompt log-probabilities from an API chat model
    by_id = {o.id: o for o in report.outcomes}
    assert by_id["geo-1"].predicted == 0 and by_id["geo-1"].correct
    assert by_id["geo-2"].predicted == 1 and by_id["geo-2"].correct
    right = sum(o.correct for o in report.outcomes)
    assert report.correct == right == 6  # geo-1 and the five items whose answer is B
    assert report.interval == wilson(6, 12) and report.accuracy_norm is None
    assert "A. Paris\nB. Madrid" in letter_message(data.items[0])
    assert all(r.constraint is None for r in seen)  # the fake's entry takes no grammars


# ---------------------------------------------------------------- the real SmolLM2-135M-Instruct


@pytest.fixture(scope="module")
def smol_url() -> Iterator[str]:
    pytest.importorskip("torch", reason="the model server needs the 'model-server' extra")
    from tests.model_server.conftest import serve

    for served in serve(Path("smollm2-135m"), max_batch=4, max_len=512):
        yield served.base


async def test_smollm2_scores_each_choice_by_its_log_likelihood_above_chance(smol_url: str) -> None:
    from agentflow.models.logprobs import RouterScorer
    from agentflow.models.profiles import ModelEntry

    router = ModelRouter({"local": [ModelEntry(model="hosted_vllm/smollm2-135m", api_base=smol_url)]})
    data = load_dataset(DATA, "mcq")
    report = await score_mcq(router, "local", data.items)
    assert report.scoring == "loglik"
    assert report.accuracy >= 0.6 > report.chance + 0.25  # well above 1 in 3-4
    low, high = report.interval
    assert low < report.accuracy < high and report.accuracy_norm is not None
    first = report.outcomes[0]
    [scored] = await RouterScorer(router, "local").score(["Question: What is the capital of France?\nAnswer: Paris"])
    assert first.logliks is not None and first.logliks[0] == pytest.approx(scored.tail_logprob(" Paris"), abs=1e-3)
    # characters the tokenizer splits into byte tokens, whose texts cannot spell the choice back
    from agentflow.eval.formats.mcq import mcq_item

    odd = mcq_item({"question": "Which city is in Brazil?", "choices": ["São Paulo 🌴", "Zürich"], "answer": 0},
                   "inline", "odd")
    [outcome] = (await score_mcq(router, "local", [odd])).outcomes
    assert outcome.logliks is not None and all(v < 0 for v in outcome.logliks)


def test_the_eval_command_scores_a_model_alias_on_an_mcq_file(smol_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from agentflow.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    smol:\n      aliases:\n        large: {model: hosted_vllm/smollm2-135m, "
        f"api_base: '{smol_url}'}}\n")
    code = main(["eval", "large", "--dataset", str(DATA), "--format", "mcq", "--profile", "smol", "--limit", "4",
                 "--out", "out"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["scoring"] == "loglik" and metrics["items"] == 4
    assert metrics["accuracy_low"] <= metrics["accuracy"] <= metrics["accuracy_high"]
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 4
    assert "accuracy" in capsys.readouterr().out
