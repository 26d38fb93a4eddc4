"""Building the router of a run from configuration: the function the CLI and the engine call.

.. code-block:: python

    from agentflow.models import build_router
    from agentflow.graph.context import Services

    router = build_router("agentflow.yaml", profile=args.profile, workflow_profile=spec.profile)
    services = Services(models=router, prompts=PromptStore.for_project("."))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.errors import ConfigError
from agentflow.models.backends import Backends
from agentflow.models.cache import ResponseCache
from agentflow.models.embeddings.cache import cache_path
from agentflow.models.profiles import (
    CacheMode,
    ModelsConfig,
    load_models_config,
    resolve_profile,
)
from agentflow.models.router import ModelRouter

if TYPE_CHECKING:
    from agentflow.models.embeddings.base import LocalEmbedder

CACHE_MODE_ENV = "AGENTFLOW_CACHE_MODE"
"""Overrides ``models.cache.mode`` (e.g. ``replay`` in CI, ``write`` to record a run)."""
_MODES = ("off", "read", "write", "replay")


def build_router(
    config: ModelsConfig | Mapping[str, Any] | str | Path | None = "agentflow.yaml",
    *,
    profile: str | None = None,
    workflow_profile: str | None = None,
    cache_mode: CacheMode | None = None,
    root: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    encoder: LocalEmbedder | None = None,
) -> ModelRouter:
    """The router for the profile in force.

    ``config`` is a :class:`ModelsConfig`, the parsed ``agentflow.yaml`` mapping, or the path of
    that file (a missing file means defaults). ``profile`` is ``--profile``; ``workflow_profile``
    the workflow's ``profile:``; the environment variable ``AGENTFLOW_PROFILE`` sits between them.
    ``cache_mode`` (or ``AGENTFLOW_CACHE_MODE``) overrides the configured cache mode; a relative
    cache path is taken from ``root`` (the project directory, default the working directory), where
    a model server agentflow starts for the ``local`` profile also keeps its log.
    ``encoder`` replaces MiniLM in the offline backends. MiniLM's on-disk cache is
    ``models.embedding_cache.path`` (relative to ``root``), or ``$AGENTFLOW_EMBEDDING_CACHE`` of
    the process environment when set (the cache is shared by the process, whatever ``env``).
    """
    env = os.environ if env is None else env
    if isinstance(config, ModelsConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = ModelsConfig.from_project(config)
    else:
        cfg = load_models_config(config)
    name, _source = resolve_profile(cli=profile, workflow=workflow_profile, config=cfg, env=env)
    entries = cfg.aliases_of(name, env=env)
    mode = cache_mode or env.get(CACHE_MODE_ENV) or cfg.cache.mode
    if mode not in _MODES:
        raise ConfigError(
            f"unknown model cache mode {mode!r} (from {CACHE_MODE_ENV} or models.cache.mode); "
            f"valid: {', '.join(_MODES)}"
        )
    cache = None
    if mode != "off":
        path = Path(cfg.cache.path)
        if not path.is_absolute():
            path = Path(root or Path.cwd()) / path
        cache = ResponseCache(path, mode)  # type: ignore[arg-type]
    return ModelRouter(
        entries,
        profile=name,
        retries=cfg.retries,
        cache=cache,
        timeout_s=cfg.timeout_s,
        backends=Backends(
            timeout_s=cfg.timeout_s, encoder=encoder, project_dir=root,
            embedding_cache=cache_path(cfg.embedding_cache.path, root=root),
            memory_size=cfg.embedding_cache.memory_size,
        ),
    )
