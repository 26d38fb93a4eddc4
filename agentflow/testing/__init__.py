"""Test doubles, so that users test their own flows offline and deterministically.

- :class:`FakeChatModel`: a scripted chat model that records its calls; :class:`FakeRouter` puts
  fakes behind the real router (cache, retries, structured output, tracing) with no waits.
- :class:`FakeEmbedder`: deterministic vectors (pinned per text, or from the text's words) that
  records its calls; behind a :class:`FakeRouter` alias it serves the checks' embeddings, and a
  retriever can search with it.
- :class:`HashEmbedder` and :class:`InMemoryRetriever`: retrieval with the production chunking,
  BM25, fusion and filters, but no model and no disk.
- :class:`EventCollector` keeps every event of a run; :class:`RecordingHook` also answers questions
  about its spans (by kind and name, their order, their children) for assertions.
- :mod:`agentflow.testing.contracts`: the contract suites your own vector stores, chat models and
  trace hooks can run (they need pytest).

.. code-block:: python

    from agentflow import Services
    from agentflow.testing import FakeChatModel, FakeRouter, InMemoryRetriever, RecordingHook

    services = Services(
        models=FakeRouter({"small": FakeChatModel(["knowledge"]),
                           "large": FakeChatModel(["42 [DOC 1]"])}),
        retrievers={"knowledge": InMemoryRetriever.from_texts({"a.md": "The answer is 42."})},
    )
    hook = RecordingHook()
    result = flow.run({"question": "What is the answer?"}, services=services, hooks=[hook])
    hook.assert_order("classify", "answer")
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

_EXPORTS = {
    "FakeChatModel": "agentflow.testing.models",
    "FakeRouter": "agentflow.testing.models",
    "FakeEmbedder": "agentflow.testing.embedders",
    "InMemoryRetriever": "agentflow.testing.retrieval",
    "HashEmbedder": "agentflow.models.embeddings.hashing",
    "MemoryStore": "agentflow.retrieval.memory",
    "EventCollector": "agentflow.tracing.events",
    "RecordingHook": "agentflow.testing.tracing",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
