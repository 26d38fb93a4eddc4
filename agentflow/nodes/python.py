"""The ``python`` node: call a user's function, from a module the user allowed explicitly.

A workflow names the function (``module.path:function``); agentflow imports it only when the
module is on the allowlist (``agentflow run --allow-module`` or ``python.allow`` in the project's
``agentflow.yaml``, read by :mod:`agentflow.spec.project`). A workflow file alone can never make
agentflow import code.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import Field, field_validator

from agentflow.errors import ConfigError, NodeError, known
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node

_ALLOWED: set[str] = set()


def allow_modules(names: Iterable[str]) -> None:
    """Allow ``python`` nodes to call functions from these modules (and their submodules)."""
    _ALLOWED.update(n.strip() for n in names if n.strip())


def allowed_modules() -> list[str]:
    return sorted(_ALLOWED)


def is_allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _ALLOWED)


class PythonConfig(NodeConfig):
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """The function to call, as module.path:function; its module must be allowed."""
    reads: list[str] = []
    """The state fields the function reads."""
    writes: list[str] = []
    """The state fields the function may return."""

    @field_validator("function")
    @classmethod
    def _module_allowed(cls, value: str) -> str:
        module = value.partition(":")[0]
        if not is_allowed(module):
            raise ValueError(
                f"module {module!r} is not allowed for python nodes; allow it with "
                f"`--allow-module {module}` or `python: {{allow: [{module}]}}` in the "
                f"agentflow.yaml of the folder agentflow runs in (allowed now: {known(_ALLOWED)})"
            )
        return value


def resolve(function: str) -> Callable[..., Any]:
    module_name, _, attr = function.partition(":")
    if not is_allowed(module_name):
        raise ConfigError(f"module {module_name!r} is not allowed for python nodes")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{function}: {module_name!r} has no function {attr!r}")
    return fn


async def call_off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user's function without blocking the event loop, and await what it returns.

    A sync function runs on a worker thread (``asyncio.to_thread``, which copies the context
    variables), so the loop stays free meanwhile: it writes the checkpoints of the steps that
    finished and the trace events. A slow sync function on the loop itself would hold those
    writes back, and a run killed during it would lose them.
    """
    if _is_async(fn):
        result = fn(*args)
    else:
        result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))


@node("python", reads=lambda c: tuple(c.reads), writes=lambda c: tuple(c.writes))
async def python(state: Any, cfg: PythonConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Call ``function(inputs)`` with the fields it reads (a dict); it returns the fields it writes.

    The function may be sync or async.
    """
    fn = resolve(cfg.function)
    get = state.get if isinstance(state, dict) else lambda k: getattr(state, k, None)
    result = await call_off_loop(fn, {k: get(k) for k in cfg.reads})
    if not isinstance(result, dict):
        raise NodeError(f"{cfg.function} returned {type(result).__name__}, expected a dict of "
                        f"the fields it writes ({known(cfg.writes)})", node=ctx.node)
    return result
