"""The context budget: oldest turns go first, reasoning never stays, best chunks stay, and the
prompt never exceeds the window minus max_tokens."""

from __future__ import annotations

import pytest

from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models import Sampling, fit, prompt_limit
from agentflow.models.budget import estimate_messages, estimate_tokens
from agentflow.models.types import Message
from agentflow.prompts import AugmentedPrompt, PromptStore, assemble
from agentflow.testing.models import FakeRouter


def chunk(i: int, score: float, words: int = 40) -> Chunk:
    return Chunk(id=f"c{i}", text=" ".join([f"word{i}"] * words), score=score, source=f"s{i}.md")


def builder(system: str = "system prompt") -> object:
    def build(turns: list[Message], keep: list[int]) -> list[Message]:
        docs = " ".join(f"[DOC {i + 1}] {CHUNKS[i].text}" for i in keep)
        return [{"role": "system", "content": system}, *turns, {"role": "user", "content": docs + " q"}]
    return build


CHUNKS = [chunk(0, 0.2), chunk(1, 0.9), chunk(2, 0.5), chunk(3, 0.7)]
HISTORY: list[Message] = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 60}
    for i in range(6)
]


def run(limit: int) -> tuple[list[Message], object]:
    return fit(build=builder(), history=HISTORY, documents=CHUNKS, count=estimate_messages,
               count_text=estimate_tokens, window=limit + 100, limit=limit)


def test_everything_fits_when_there_is_room() -> None:
    messages, report = run(10_000)
    assert report.kept_documents == [0, 1, 2, 3] and report.dropped_turns == 0
    assert report.prompt_tokens == estimate_messages(messages)


@pytest.mark.parametrize("limit", [150, 200, 260, 320, 400, 500])
def test_the_prompt_never_exceeds_the_limit(limit: int) -> None:
    messages, report = run(limit)
    assert estimate_messages(messages) <= limit and report.prompt_tokens <= limit


def test_the_highest_ranked_chunks_are_kept_and_numbering_is_stable() -> None:
    messages, report = run(260)
    kept = report.kept_documents
    assert kept and len(kept) < 4
    ranked = [1, 3, 2, 0]  # by score
    assert set(kept) == set(ranked[: len(kept)])
    assert report.dropped_documents == [f"c{i}" for i in range(4) if i not in kept]
    assert f"[DOC {ranked[0] + 1}]" in messages[-1]["content"]


def test_the_oldest_turns_are_dropped_first() -> None:
    messages, report = run(200)
    assert 0 < report.dropped_turns < len(HISTORY)
    kept_turns = [m["content"] for m in messages[1:-1]]
    assert kept_turns == [m["content"] for m in HISTORY[report.dropped_turns:]]


def test_a_prompt_that_cannot_fit_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="before any history or documents"):
        fit(build=builder("s" * 3000), history=[], documents=[], count=estimate_messages,
            count_text=estimate_tokens, window=500, limit=400)


def test_the_limit_reserves_max_tokens() -> None:
    assert prompt_limit(8192, 1000) == 7192
    assert prompt_limit(8192, None) == 8192 - 1024
    assert prompt_limit(2048, None) == 2048 - 512


async def test_assemble_strips_reasoning_prunes_and_reports() -> None:
    router = FakeRouter({"large": ["ok"]})
    router.chain("large")[0].model.context_window = 700  # a small model
    history = [("user", "first question " + "y" * 400),
               ("assistant", "<scratchpad>long private reasoning</scratchpad>first answer"),
               ("user", "second question"), ("assistant", "<think>hmm</think>second answer")]
    prompt = AugmentedPrompt(query="third question",
                             documents=[chunk(i, 1.0 - i / 10, words=60) for i in range(8)],
                             history=history)
    sampling = Sampling(max_tokens=200)
    messages, inputs, report = assemble(prompt, PromptStore(), router, "large", sampling)
    assert report.stripped_reasoning == 2
    assert all("scratchpad" not in m["content"] and "<think>" not in m["content"] for m in messages)
    assert report.dropped_turns >= 1 and report.dropped_documents
    assert estimate_messages(messages) <= 700 - 200
    assert inputs.doc_numbers == tuple(i + 1 for i in report.kept_documents)
    assert report.kept_documents == list(range(len(report.kept_documents)))  # best first
