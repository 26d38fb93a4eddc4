"""Models: aliases resolved through profiles, one call path over LiteLLM, offline backends.

Names are loaded on first use, so importing this package (as ``agentflow --help`` does through the
CLI) loads neither pydantic models nor LiteLLM, tenacity, numpy or torch.
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see
    from agentflow.models.budget import BudgetReport, estimate_tokens, fit, prompt_limit
    from agentflow.models.cache import ResponseCache
    from agentflow.models.cost import UsageLedger, UsageTotals
    from agentflow.models.factory import CACHE_MODE_ENV, build_router
    from agentflow.models.profiles import (
        BUILTIN_PROFILES,
        CacheConfig,
        CacheMode,
        DEFAULT_PROFILE,
        ModelEntry,
        ModelsConfig,
        ServerLaunch,
        PROFILE_ENV,
        Price,
        ProfileConfig,
        RetryConfig,
        load_models_config,
        resolve_profile,
    )
    from agentflow.models.managed_server import ManagedServerChatModel, ServerHandle
    from agentflow.models.router import ModelRouter, RoutedModel
    from agentflow.models.sampling import ProviderKind, Sampling, SamplingPlan, SamplingWarning
    from agentflow.models.types import (
        Capabilities,
        ChatModel,
        ChatRequest,
        ChatResponse,
        Classification,
        Embedder,
        JudgeVerdict,
        Label,
        Message,
        OutputConstraint,
        PromptInputs,
        ProviderError,
        Usage,
    )

_EXPORTS: dict[str, str] = {
    "BUILTIN_PROFILES": "agentflow.models.profiles",
    "CACHE_MODE_ENV": "agentflow.models.factory",
    "DEFAULT_PROFILE": "agentflow.models.profiles",
    "PROFILE_ENV": "agentflow.models.profiles",
    "BudgetReport": "agentflow.models.budget",
    "CacheConfig": "agentflow.models.profiles",
    "CacheMode": "agentflow.models.profiles",
    "Capabilities": "agentflow.models.types",
    "ChatModel": "agentflow.models.types",
    "ChatRequest": "agentflow.models.types",
    "ChatResponse": "agentflow.models.types",
    "Classification": "agentflow.models.types",
    "Embedder": "agentflow.models.types",
    "JudgeVerdict": "agentflow.models.types",
    "Label": "agentflow.models.types",
    "ManagedServerChatModel": "agentflow.models.managed_server",
    "Message": "agentflow.models.types",
    "ModelEntry": "agentflow.models.profiles",
    "ModelRouter": "agentflow.models.router",
    "ModelsConfig": "agentflow.models.profiles",
    "ServerHandle": "agentflow.models.managed_server",
    "ServerLaunch": "agentflow.models.profiles",
    "Price": "agentflow.models.profiles",
    "ProfileConfig": "agentflow.models.profiles",
    "OutputConstraint": "agentflow.models.types",
    "PromptInputs": "agentflow.models.types",
    "ProviderError": "agentflow.models.types",
    "ProviderKind": "agentflow.models.sampling",
    "ResponseCache": "agentflow.models.cache",
    "RetryConfig": "agentflow.models.profiles",
    "RoutedModel": "agentflow.models.router",
    "Sampling": "agentflow.models.sampling",
    "SamplingPlan": "agentflow.models.sampling",
    "SamplingWarning": "agentflow.models.sampling",
    "Usage": "agentflow.models.types",
    "UsageLedger": "agentflow.models.cost",
    "UsageTotals": "agentflow.models.cost",
    "build_router": "agentflow.models.factory",
    "estimate_tokens": "agentflow.models.budget",
    "fit": "agentflow.models.budget",
    "load_models_config": "agentflow.models.profiles",
    "prompt_limit": "agentflow.models.budget",
    "resolve_profile": "agentflow.models.profiles",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


