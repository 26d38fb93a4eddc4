"""The services of a run from configuration: the model router, prompts, retrievers, examples.

This is where the command line (and any other runner) turns ``agentflow.yaml``, ``--profile`` and
a workflow's ``models:`` and ``collections:`` into the :class:`Services` handed to nodes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from agentflow.graph.context import Services


def default_services(
    *,
    profile: str | None = None,
    workflow_profile: str | None = None,
    root: str | Path = ".",
    retrievers: Any = None,
    base: Services | None = None,
) -> Services:
    """Services for a run in the project at ``root``.

    ``profile`` is ``--profile``; ``workflow_profile`` the workflow's ``models.profile``. Services
    already set on ``base`` (a flow's own) are kept.
    """
    from agentflow.models import build_router
    from agentflow.prompts import PromptStore

    root = Path(root)
    services = base or Services()
    updates: dict[str, Any] = {}
    if not services.models:
        updates["models"] = build_router(root / "agentflow.yaml", profile=profile,
                                         workflow_profile=workflow_profile, root=root)
    if not services.prompts:
        updates["prompts"] = PromptStore.for_project(root)
    if retrievers is not None:
        updates["retrievers"] = retrievers
    return replace(services, **updates) if updates else services
