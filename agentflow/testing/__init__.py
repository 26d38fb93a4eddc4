"""Test doubles, so that users test their own flows offline and deterministically.

- :class:`FakeChatModel`: a scripted chat model that records its calls; :class:`FakeRouter` puts
  fakes behind the real router (cache, retries, structured output, tracing) with no waits.
- :class:`HashEmbedder` and :class:`InMemoryRetriever`: retrieval with the production chunking,
  BM25, fusion and filters, but no model and no disk.
- :class:`EventCollector`: a trace hook that keeps every event of a run.

.. code-block:: python

    from agentflow import Services
    from agentflow.testing import FakeChatModel, FakeRouter, InMemoryRetriever

    services = Services(
        models=FakeRouter({"small": FakeChatModel(["knowledge"]), "large": FakeChatModel(["42 [DOC 1]"])}),
        retrievers={"knowledge": InMemoryRetriever.from_texts({"a.md": "The answer is 42."})},
    )
    result = flow.run({"question": "What is the answer?"}, services=services)
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports


_EXPORTS = {
    "FakeChatModel": "agentflow.testing.models",
    "FakeRouter": "agentflow.testing.models",
    "InMemoryRetriever": "agentflow.testing.retrieval",
    "HashEmbedder": "agentflow.retrieval.embedders",
    "MemoryStore": "agentflow.retrieval.memory",
    "EventCollector": "agentflow.tracing.events",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


