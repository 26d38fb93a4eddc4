"""agentflow: agentic RAG workflows as graphs, in Python or YAML, run on LangGraph.

The public API is listed in ``__all__``. Names are imported on first use, so that importing
``agentflow`` (and running ``agentflow --help``) does not pay for LangGraph, LiteLLM or Qdrant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # building and running flows
    "Flow": "agentflow.graph.flow",
    "CompiledFlow": "agentflow.graph.flow",
    "RunResult": "agentflow.graph.result",
    "LoopOutcome": "agentflow.graph.result",
    "MapItemError": "agentflow.graph.result",
    "Verdict": "agentflow.graph.result",
    "sequence": "agentflow.graph.steps",
    "route": "agentflow.graph.steps",
    "loop": "agentflow.graph.steps",
    "parallel": "agentflow.graph.steps",
    "map": "agentflow.graph.steps",
    "to_yaml": "agentflow.spec.build",
    # declaring nodes
    "node": "agentflow.graph.registry",
    "NodeConfig": "agentflow.graph.registry",
    "NodeType": "agentflow.graph.registry",
    "registry": "agentflow.graph.registry",
    "RunContext": "agentflow.graph.context",
    "Services": "agentflow.graph.context",
    # data
    "Chunk": "agentflow.documents",
    "Example": "agentflow.documents",
    # tracing
    "Event": "agentflow.tracing.events",
    "TraceHook": "agentflow.tracing.events",
    "EventCollector": "agentflow.tracing.events",
    # errors
    "AgentflowError": "agentflow.errors",
    "ConfigError": "agentflow.errors",
    "GraphBuildError": "agentflow.errors",
    "SpecError": "agentflow.errors",
    "NodeError": "agentflow.errors",
    "RouteError": "agentflow.errors",
    "InputError": "agentflow.errors",
    "ModelError": "agentflow.errors",
    "RetrievalError": "agentflow.errors",
    "CheckFailed": "agentflow.errors",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from agentflow.documents import Chunk, Example
    from agentflow.errors import (
        AgentflowError,
        CheckFailed,
        ConfigError,
        GraphBuildError,
        InputError,
        ModelError,
        NodeError,
        RetrievalError,
        RouteError,
        SpecError,
    )
    from agentflow.graph.context import RunContext, Services
    from agentflow.graph.flow import CompiledFlow, Flow
    from agentflow.graph.registry import NodeConfig, NodeType, node, registry
    from agentflow.graph.result import LoopOutcome, MapItemError, RunResult, Verdict
    from agentflow.graph.steps import loop, map, parallel, route, sequence
    from agentflow.spec.build import to_yaml
    from agentflow.tracing.events import Event, EventCollector, TraceHook
