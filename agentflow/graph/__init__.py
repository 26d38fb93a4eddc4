"""Flows: the four shapes, state and reducers, compilation to LangGraph, running and streaming."""

from agentflow.graph.flow import CompiledFlow, Flow
from agentflow.graph.result import LoopOutcome, MapItemError, RunResult, Verdict
from agentflow.graph.steps import Loop, Map, NodeStep, Parallel, Ref, Route, Sequence, Step
from agentflow.graph.steps import loop, map, parallel, route, sequence  # noqa: A004

__all__ = [
    "CompiledFlow",
    "Flow",
    "Loop",
    "LoopOutcome",
    "Map",
    "MapItemError",
    "NodeStep",
    "Parallel",
    "Ref",
    "Route",
    "RunResult",
    "Sequence",
    "Step",
    "Verdict",
    "loop",
    "map",
    "parallel",
    "route",
    "sequence",
]
