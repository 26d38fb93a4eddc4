"""The attribution check (ContextCite): seeded ablations, the LASSO surrogate, per-sentence top sources, the
flags beside the answer's citations; with a scripted scorer, then the real SmolLM2 on the model server over HTTP through
LiteLLM, and as a ``check`` node in a YAML workflow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from agentflow.checks import Judge, run_check
from agentflow.checks.attribution import (
    ablation_masks,
    attribute,
    build_prompt,
    check_attribution,
    fit_surrogate,
    split_sources,
)
from agentflow.documents import Chunk
from agentflow.models import ModelRouter, build_router
from agentflow.models.logprobs import RouterScorer, ScoredPrompt

DOCS = [
    Chunk(id="a", text="The Eiffel Tower is in Paris. It was completed in 1889.", source="paris.md"),
    Chunk(id="b", text="Bananas are yellow fruits rich in potassium.", source="food.md"),
    Chunk(id="c", text="Mount Everest is the highest mountain on Earth, at 8,849 metres.", source="everest.md"),
    Chunk(id="d", text="The Great Wall of China is thousands of kilometres long.", source="china.md"),
]
QUESTION = "When was the Eiffel Tower completed and how high is Everest?"
ANSWER = "The Eiffel Tower was completed in 1889 [DOC 1]. Everest is 8,849 metres high [DOC 2]."


class WordScorer:
    """A scripted language model: each answer word is likely (-0.05) when the document that states it is in the
    prompt and unlikely (-4) otherwise; tokens are words with their leading space."""

    name = "word-scorer"

    def __init__(self, drivers: dict[str, str]) -> None:
        self.drivers = drivers  # answer word -> a fragment of the document that makes it likely
        self.calls: list[int] = []

    async def score(self, prompts: Sequence[str]) -> list[ScoredPrompt]:
        self.calls.append(len(prompts))
        out = []
        for prompt in prompts:
            context, _, answer = prompt.rpartition("Answer:")
            tokens = ["Answer:"] + [" " + w for w in answer.split()]
            values: list[float | None] = [None]
            for token in tokens[1:]:
                fragment = self.drivers.get(token.strip(" .[]"))
                values.append(-4.0 if fragment is not None and fragment not in context else -0.05)
            out.append(ScoredPrompt(tokens, values))
        return out


DRIVERS = {"1889": "completed in 1889", "Eiffel": "Eiffel Tower", "8,849": "8,849 metres", "Everest": "Mount Everest"}


def test_sources_are_chunks_or_their_sentences_and_ablations_keep_doc_numbers() -> None:
    assert [s.doc for s in split_sources(DOCS)] == [1, 2, 3, 4]
    by_sentence = split_sources(DOCS, "sentence")
    assert [s.doc for s in by_sentence] == [1, 1, 2, 3, 4]
    prompt = build_prompt("q?", by_sentence, [False, True, False, True, False])
    assert "[DOC 1] It was completed in 1889.\n[DOC 3] Mount Everest" in prompt and "[DOC 2]" not in prompt
    with pytest.raises(ValueError, match="valid: 'chunk', 'sentence'"):
        split_sources(DOCS, "page")  # type: ignore[arg-type]


def test_ablation_masks_are_seeded_and_smaller_k_is_a_prefix_of_larger_k() -> None:
    big = ablation_masks(6, 64, seed=3)
    assert np.array_equal(ablation_masks(6, 16, seed=3), big[:16])
    assert not np.array_equal(ablation_masks(6, 16, seed=4), big[:16])
    assert 0.35 < big.mean() < 0.65


def test_the_surrogate_recovers_sparse_weights() -> None:
    masks = ablation_masks(8, 64, seed=0)
    outputs = 5.0 * masks[:, 2] + 2.0 * masks[:, 5] - 3.0
    weights, bias = fit_surrogate(masks, outputs, tokens=1)
    assert int(np.argmax(weights)) == 2 and weights[2] == pytest.approx(5.0, abs=0.3)
    assert weights[5] == pytest.approx(2.0, abs=0.3)
    assert abs(weights[[0, 1, 3, 4, 6, 7]]).max() < 0.2
    assert bias == pytest.approx(-3.0, abs=0.3)


async def test_each_sentence_gets_its_driving_document_and_wrong_citations_are_flagged() -> None:
    scorer = WordScorer(DRIVERS)
    result = await attribute(ANSWER, DOCS, scorer=scorer, question=QUESTION, ablations=32)
    assert scorer.calls == [34]  # the context alone (the answer's length), with the answer, 32 ablations: one request
    assert result.forward_passes == 33
    first, second = result.sentences
    assert first.text.startswith("The Eiffel Tower") and first.cited == [1]
    assert first.top[0].doc == 1 and first.top[0].weight > 3
    assert first.unsupported_citations == [] and first.uncited_sources == []
    assert second.top[0].doc == 3
    assert second.unsupported_citations == [2] and second.uncited_sources == [3]
    assert {w.doc for w in result.whole.top[:2]} == {1, 3}


async def test_one_scoring_of_64_ablations_gives_the_fits_of_16_and_32() -> None:
    from agentflow.checks.attribution import fit_attribution

    scorer = WordScorer(DRIVERS)
    small = await attribute(ANSWER, DOCS, scorer=scorer, question=QUESTION, ablations=16)
    sources = split_sources(DOCS)
    masks = ablation_masks(len(sources), 64)
    prompts = [build_prompt(QUESTION, sources, [True] * 4) + " " + ANSWER]
    prompts += [build_prompt(QUESTION, sources, list(m)) + " " + ANSWER for m in masks]
    scored = await scorer.score(prompts)
    refit = fit_attribution(ANSWER, sources, masks[:16], scored[:17])
    assert [[(w.doc, round(w.weight, 6)) for w in s.top] for s in refit.sentences] == \
        [[(w.doc, round(w.weight, 6)) for w in s.top] for s in small.sentences]
    with pytest.raises(ValueError, match="expected 17 scored prompts"):
        fit_attribution(ANSWER, sources, masks[:16], scored[:16])


async def test_the_check_scores_f1_of_supported_citations_and_cited_drivers() -> None:
    result = await check_attribution(ANSWER, DOCS, WordScorer(DRIVERS), question=QUESTION, ablations=32,
                                     threshold=0.6)
    assert result.kind == "attribution"
    assert result.details["precision"] == 0.5 and result.details["recall"] == 0.5
    assert result.score == 0.5 and not result.passed
    assert "[DOC 2] is cited for 'Everest is 8,849 metres high [DOC 2].'" in result.reason
    assert "[DOC 3] drove 'Everest is 8,849 metres high [DOC 2].'" in result.reason
    # what the trace viewer's citation panel reads: per sentence its span, citations and top sources
    sentence = result.trace_data()["details"]["sentences"][1]
    assert sentence["cited"] == [2] and sentence["sources"][0]["doc"] == 3
    assert set(sentence) >= {"sentence", "start", "end", "sources", "doc_weights", "unsupported_citations",
                             "uncited_sources"}
    right = await check_attribution(ANSWER.replace("[DOC 2]", "[DOC 3]"), DOCS, WordScorer(DRIVERS),
                                    question=QUESTION, ablations=32)
    assert right.passed and right.score == 1.0


async def test_an_abstention_and_a_backend_without_logprobs_are_not_scores() -> None:
    abstained = await check_attribution("I don't know.", DOCS, WordScorer(DRIVERS), abstention="pass")
    assert abstained.passed and abstained.score is None
    offline = await run_check("attribution", judge=Judge(build_router(profile="offline")), answer=ANSWER,
                              question=QUESTION, documents=DOCS)
    assert offline.outcome == "error" and offline.score is None
    assert "offline backend, which has no log-probabilities" in offline.reason


# ---------------------------------------------------------------- the real SmolLM2-135M-Instruct


@pytest.fixture(scope="module")
def smol_url() -> Iterator[str]:
    pytest.importorskip("torch", reason="the model server needs the 'model-server' extra")
    from tests.model_server.conftest import serve

    for served in serve(Path("smollm2-135m"), max_batch=4, max_len=1024):
        yield served.base


async def test_smollm2_over_http_attributes_each_sentence_to_the_document_that_states_it(smol_url: str) -> None:
    from agentflow.models.profiles import ModelEntry

    router = ModelRouter({"large": [ModelEntry(model="hosted_vllm/smollm2-135m", api_base=smol_url)]})
    scorer = RouterScorer(router, "large")
    result = await check_attribution(ANSWER, DOCS, scorer, question=QUESTION, ablations=16)
    assert scorer.forward_passes == 18  # the context alone, with the answer, 16 ablations
    first, second = result.details["sentences"]
    assert first["sources"][0]["doc"] == 1
    assert second["sources"][0]["doc"] == 3 and second["sources"][0]["weight"] > 2
    assert second["unsupported_citations"] == [2] and 3 in second["uncited_sources"]
    assert not result.passed


WORKFLOW = """\
version: 1
name: attributed
inputs:
  question: {type: string}
  answer: {type: string}
  chunks: {type: list}
state:
  checks: {type: object, reducer: merge}
outputs: [checks]
nodes:
  attribute: {type: check, kind: attribution, model: large, ablations: 8, severity: warn}
flow: [attribute]
"""


def test_the_check_node_runs_attribution_in_a_yaml_workflow_and_traces_it(
        smol_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentflow.graph.context import Services
    from agentflow.models.profiles import ModelEntry
    from agentflow.prompts import PromptStore
    from agentflow.spec.load import load_workflow
    from agentflow.tracing.events import EventCollector

    monkeypatch.chdir(tmp_path)
    router = ModelRouter({"large": [ModelEntry(model="hosted_vllm/smollm2-135m", api_base=smol_url)]})
    wf = load_workflow("attributed.yaml", text=WORKFLOW)
    events = EventCollector()
    out = wf.flow.run({"question": QUESTION, "answer": ANSWER, "chunks": [c.model_dump() for c in DOCS]},
                      services=Services(models=router, prompts=PromptStore()), hooks=[events])
    result = out["checks"]["attribution"]
    assert result.kind == "attribution" and result.severity == "warn"
    assert result.details["ablations"] == 8 and result.details["forward_passes"] == 9
    assert [s["cited"] for s in result.details["sentences"]] == [[1], [2]]
    spans = events.of_kind("check")
    assert spans and spans[-1].data["details"]["sentences"][0]["sources"]
