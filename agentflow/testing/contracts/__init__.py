"""Contract suites: the tests every backend of a protocol must pass, for your own backends.

Subclass a suite in a test module of your project (its name starting with ``Test``), override
the one fixture that builds your backend, and pytest runs every test of the contract against it,
as Haystack ships its document-store tests:

.. code-block:: python

    import pytest
    from agentflow.testing.contracts import VectorStoreContract

    class TestMyStore(VectorStoreContract):
        persistent = True

        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda collection: MyStore(collection, path=tmp_path)

- :class:`VectorStoreContract`: the retrieval store protocol
  (:class:`~agentflow.retrieval.store.VectorStore`);
- :class:`ChatModelContract`: the chat model protocol (:class:`~agentflow.models.types.ChatModel`);
- :class:`TraceHookContract`: a trace hook (:class:`~agentflow.tracing.events.TraceHook`) over
  real runs.

The suites need pytest and nothing else: their tests are plain functions that run their own
event loop, so no async plugin is needed (and one that is installed does not get in the way).
"""

from __future__ import annotations

import pytest

# before the suites are imported, so that their asserts explain themselves as a test's do
pytest.register_assert_rewrite(
    "agentflow.testing.contracts.chat_model",
    "agentflow.testing.contracts.trace_hook",
    "agentflow.testing.contracts.vector_store",
)

from agentflow.testing.contracts.chat_model import ChatModelContract  # noqa: E402
from agentflow.testing.contracts.trace_hook import TraceHookContract  # noqa: E402
from agentflow.testing.contracts.vector_store import VectorStoreContract  # noqa: E402

__all__ = ["ChatModelContract", "TraceHookContract", "VectorStoreContract"]
