"""Which backend serves a model entry: the offline backends, or LiteLLM for everything else
(through a model server agentflow finds or starts first, for an entry that declares ``serve``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.models.profiles import ModelEntry
from agentflow.models.types import Capabilities, ChatModel, Embedder, capabilities_of

if TYPE_CHECKING:  # numpy-importing modules load only when an offline backend is built
    from agentflow.models.embeddings.base import LocalEmbedder
    from agentflow.models.embeddings.cache import EmbeddingCache
    from agentflow.models.offline.model import OfflineModel


class Backends:
    """Builds backends for model entries, sharing one offline backend (and encoder) among them.

    Pass ``encoder`` to run the offline backends on another
    :class:`~agentflow.models.embeddings.LocalEmbedder` (tests use the instant
    ``HashEmbedder.lexical()``); by default they use MiniLM, which keeps its vectors in
    ``embedding_cache`` (a file; None keeps them in memory only, the latest ``memory_size``).
    ``project_dir`` is where a model server agentflow starts keeps its log (``.agentflow/model-server/``);
    by default the working directory.
    """

    def __init__(self, *, timeout_s: float = 60.0, encoder: LocalEmbedder | None = None,
                 project_dir: str | Path | None = None, embedding_cache: str | Path | None = None,
                 memory_size: int = 20_000) -> None:
        self.timeout_s = timeout_s
        self.project_dir = project_dir
        self.embedding_cache = embedding_cache
        self.memory_size = memory_size
        self._encoder = encoder
        self._offline: OfflineModel | None = None
        self._lock = threading.Lock()

    def encoder(self, name: str = "offline/minilm") -> LocalEmbedder:
        """The shared local embedder (``offline/hashing`` names the lexical hash embedder)."""
        from agentflow.models.embeddings.hashing import LEXICAL_NAME, HashEmbedder

        if name == LEXICAL_NAME:
            return HashEmbedder.lexical()
        with self._lock:
            if self._encoder is None:
                from agentflow.models.embeddings.minilm import MiniLMEmbedder

                self._encoder = MiniLMEmbedder(cache=self.embedding_cache_of(),
                                               memory_size=self.memory_size)
            return self._encoder

    def offline(self) -> OfflineModel:
        """The one offline backend of this set of backends."""
        from agentflow.models.offline.model import OfflineModel

        if self._offline is None:
            self._offline = OfflineModel(self.encoder())
        return self._offline

    def chat(self, entry: ModelEntry) -> ChatModel:
        """The chat backend of ``entry``: the shared offline backend, a model on a node agentflow
        finds or starts (``serve``), or LiteLLM."""
        if entry.provider_kind() == "offline":
            return self.offline()
        backend = chat_backend(entry)
        if entry.serve is not None:
            return backend(entry, timeout_s=self.timeout_s, project_dir=self.project_dir)
        return backend(entry, timeout_s=self.timeout_s)

    def embedding_cache_of(self) -> EmbeddingCache | None:
        """The on-disk embedding cache of these backends (None when off or unusable): MiniLM's,
        and the router's for remote embedding models."""
        from agentflow.models.embeddings.cache import shared_cache

        return shared_cache(self.embedding_cache)

    def embedder(self, entry: ModelEntry) -> Embedder:
        """The embedder of ``entry``: the shared local one for an offline entry (the offline
        backends' own, so MiniLM is loaded once), else LiteLLM."""
        if entry.provider_kind() == "offline":
            return self.encoder(entry.model)
        from agentflow.models.embeddings.litellm_embedder import LiteLLMEmbedder

        return LiteLLMEmbedder(entry, timeout_s=self.timeout_s)

    def count_tokens(self, entry: ModelEntry, messages: Any) -> int | None:
        """Tokens by the entry's tokenizer through LiteLLM; ``None`` for a backend that is no
        language model (it has no tokenizer: the budget estimates)."""
        if not capabilities(entry).language_model:
            return None
        from agentflow.models.litellm_adapter import count_tokens

        return count_tokens(entry.model, messages)

    def context_window(self, entry: ModelEntry) -> int | None:
        if entry.context_window is not None:
            return entry.context_window
        if capabilities(entry).structured_fields:
            return OFFLINE_WINDOW
        from agentflow.models.litellm_adapter import context_window

        return context_window(entry.model)


def chat_backend(entry: ModelEntry) -> type[Any]:
    """The class of the chat backend that serves ``entry``, imported but not built: the offline
    backend for its kind, agentflow's model server for an entry that declares ``serve``, else LiteLLM.
    Each class declares its :class:`~agentflow.models.types.Capabilities`."""
    if entry.provider_kind() == "offline":
        from agentflow.models.offline.model import OfflineModel

        return OfflineModel
    if entry.serve is not None:
        from agentflow.models.managed_server import ManagedServerChatModel

        return ManagedServerChatModel
    from agentflow.models.litellm_adapter import LiteLLMChatModel

    return LiteLLMChatModel


def capabilities(entry: ModelEntry) -> Capabilities:
    """What the chat backend of ``entry`` can do, without building it (nothing is started)."""
    return capabilities_of(chat_backend(entry))


TASK_BACKEND = ModelEntry(model="offline")
"""The entry of the backend that answers the tasks a model leaves to it (``offline_tasks``): the
shared offline backend, which reads the request's structured fields."""


OFFLINE_WINDOW = 32_768
"""The window given to backends that read structured fields, not tokens (the offline ones)."""
