"""Node types for the spec tests, in a registry of their own."""

from __future__ import annotations

from typing import Any

from pydantic import Field

import agentflow as af
from agentflow.graph.registry import NodeRegistry

REG = NodeRegistry()


class EchoConfig(af.NodeConfig):
    input: str = "question"
    """The field to read."""
    output: str = "answer"
    """The field to write."""
    prefix: str = ""
    times: int = Field(1, ge=1, le=5)


@af.node("echo", reads=lambda c: (c.input,), writes=lambda c: (c.output,), registry=REG)
async def echo(state: Any, cfg: EchoConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Copy a field, with a prefix."""
    return {cfg.output: cfg.prefix + str(getattr(state, cfg.input)) * cfg.times}


class SplitConfig(af.NodeConfig):
    output: str = "parts"


@af.node("split", reads=("question",), writes=lambda c: (c.output,), registry=REG)
async def split(state: Any, cfg: SplitConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Split the question into words."""
    return {cfg.output: state.question.split()}


class LabelConfig(af.NodeConfig):
    labels: list[str]


@af.node("label", reads=("question",), writes=("label",), registry=REG)
async def label(state: Any, cfg: LabelConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Label the question by its first word."""
    first = state.question.split()[0].lower()
    return {"label": first if first in cfg.labels else "other"}


@af.node("count", reads=("answer", "tries"), writes=("tries", "done"), registry=REG)
async def count(state: Any, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Count passes; done after two."""
    tries = (state.tries or 0) + 1
    return {"tries": tries, "done": tries >= 2}
