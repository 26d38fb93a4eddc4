"""Collections embed through the model router: the profile's ``embed`` alias chooses the model,
the router accounts and traces each call, and another model re-embeds the collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentflow.errors import RetrievalError
from agentflow.models import build_router
from agentflow.retrieval.catalog import (
    CollectionSpec,
    collection_embedder,
    ensure_collection,
    open_retriever,
)
from agentflow.testing import FakeEmbedder, FakeRouter
from agentflow.tracing.payloads import PAYLOADS


def declared(**kwargs: Any) -> CollectionSpec:
    values: dict[str, Any] = {"name": "docs", "sources": ("*.md", "*.txt"), "store": "memory"}
    values.update(kwargs)
    return CollectionSpec.model_validate(values)


async def test_a_collection_embeds_chunks_and_queries_through_the_routers_embed_alias(
        corpus: Path) -> None:
    fake = FakeEmbedder()
    router = FakeRouter({"embed": fake})
    report = await ensure_collection(declared(), base_dir=corpus, progress=False, models=router)
    assert report.chunks_written > 0 and fake.calls > 0
    ingested = fake.calls
    retriever = open_retriever(declared(), base_dir=corpus, models=router)
    await retriever.search("install with pip", 2)
    assert fake.calls == ingested + 1 and fake.last_request == ["install with pip"]
    totals = router.usage.of_alias("embed")
    assert totals.calls == fake.calls and totals.prompt_tokens > 0 and totals.failures == 0


class Recorder:
    """A tracer that keeps what the router records."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, kind: Any, name: str, *, data: dict[str, Any] | None = None,
               **_: Any) -> None:
        self.events.append((kind, name, data or {}))


async def test_an_embedding_call_is_one_model_call_span_with_declared_fields_only() -> None:
    fake = FakeEmbedder(name="fake-embed")
    tracer = Recorder()
    embedder = FakeRouter({"embed": fake}).embedder("embed", tracer=tracer)
    vectors = await embedder.embed(["one text", "another text", "a third"])
    assert vectors.shape == (3, fake.dim) and embedder.name == "fake-embed"
    ((kind, name, data),) = tracer.events  # one span per call, not per text
    assert (kind, name, data["model"], data["alias"]) == ("model_call", "embed", "fake-embed", "embed")
    assert data["tokens"]["estimated"] and data["response"] == "3 vectors"
    fields = set(PAYLOADS["model_call"].__dataclass_fields__)
    assert set(data) <= fields, set(data) - fields


async def test_a_retriever_built_once_embeds_a_nodes_queries_into_that_nodes_trace(corpus: Path) -> None:
    from agentflow.models.embeddings import tracing_embeddings

    router = FakeRouter({"embed": FakeEmbedder(name="fake-embed")})
    await ensure_collection(declared(), base_dir=corpus, progress=False, models=router)
    retriever = open_retriever(declared(), base_dir=corpus, models=router)  # no tracer of its own
    first, second = Recorder(), Recorder()
    with tracing_embeddings(first):
        await retriever.search("install with pip", 2)
    with tracing_embeddings(second):
        await retriever.search("a question never asked", 2)
    await retriever.search("outside any node", 2)  # untraced, as before
    assert [(k, n, d["model"]) for k, n, d in first.events] == [("model_call", "embed", "fake-embed")]
    assert [(k, n) for k, n, _ in second.events] == [("model_call", "embed")]
    assert len(first.events) == 1 and len(second.events) == 1


async def test_switching_the_embedding_model_re_embeds_the_collection(corpus: Path) -> None:
    first, second = FakeEmbedder(name="embed-a"), FakeEmbedder(name="embed-b")
    spec = declared()
    a = await ensure_collection(spec, base_dir=corpus, progress=False, models=FakeRouter({"embed": first}))
    again = await ensure_collection(spec, base_dir=corpus, progress=False,
                                    models=FakeRouter({"embed": first}))
    assert a.chunks_written > 0 and (again.chunks_written, again.changed) == (0, False)
    switched = await ensure_collection(spec, base_dir=corpus, progress=False,
                                       models=FakeRouter({"embed": second}))
    assert switched.chunks_written == a.chunks_written and second.calls > 0


def test_a_profile_switch_changes_the_embedder_a_collection_records() -> None:
    offline = build_router(None, profile="offline", env={})
    openai = build_router(None, profile="openai", env={})
    spec = declared()
    assert collection_embedder(spec, offline).name == "offline/minilm"
    assert collection_embedder(spec, openai).name == "litellm:openai/text-embedding-3-small"
    # a fixed embedder wins over the alias, whatever the profile
    assert collection_embedder(declared(embedder="hash"), openai).name == "hash-64"


def test_without_a_router_only_the_default_alias_resolves() -> None:
    assert collection_embedder(declared()).name == "offline/minilm"
    assert collection_embedder(declared(embedder="minilm")).name == "offline/minilm"
    with pytest.raises(RetrievalError, match="alias 'search-embed'.*pass the run's router"):
        collection_embedder(declared(embed="search-embed"))


def test_a_collection_naming_an_unknown_embedding_alias_fails_the_workflow_check(
        tmp_path: Path) -> None:
    from agentflow.errors import SpecError
    from agentflow.spec.load import load_workflow

    (tmp_path / "docs").mkdir()
    text = """
version: 1
name: wrong_alias
inputs:
  question: {type: string}
state:
  chunks: {type: list}
collections:
  docs: {source: docs, embed: embedd}
nodes:
  search: {type: retrieve, collection: docs, input: question, output: chunks}
flow: [search]
"""
    with pytest.raises(SpecError, match=r"collections\.docs\.embed.*'embedd'.*Did you mean 'embed'"):
        load_workflow(tmp_path / "wf.yaml", text=text)
