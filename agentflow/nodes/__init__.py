"""Node types: one module per type, registered in :data:`agentflow.graph.registry.registry`.

Built-in types register when :func:`load_builtins` imports their modules (the YAML loader calls
it), so importing :mod:`agentflow` stays light.
"""

from __future__ import annotations

import importlib

BUILTINS: tuple[str, ...] = (
    "classify", "generate", "llm", "queries", "chat", "retrieve", "fuse", "reply",
    "checks", "finalize", "python",
)


def load_builtins() -> None:
    """Import every built-in node type's module (idempotent)."""
    for name in BUILTINS:
        importlib.import_module(f"agentflow.nodes.{name}")
