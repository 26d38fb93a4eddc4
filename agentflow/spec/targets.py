"""What a command, an evaluation or a server is pointed at: a YAML workflow, or ``module:attr``
naming a Python :class:`~agentflow.graph.flow.Flow` (or a function returning one)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from agentflow.errors import InputError
from agentflow.graph.flow import Flow


def is_yaml(target: str) -> bool:
    """Whether ``target`` names a YAML workflow file (rather than ``module:attr``)."""
    return target.endswith((".yaml", ".yml"))


def load_flow(target: str) -> Flow:
    """Import ``module:attr`` (relative to the current directory) and return the Flow; an
    :class:`~agentflow.errors.InputError` says what is wrong with the target."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"expected module:attr, got {target!r} (e.g. examples.hello.flow:flow)")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"cannot import module {module_name!r}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise InputError(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(obj) and not isinstance(obj, Flow):
        obj = obj()
    if not isinstance(obj, Flow):
        raise InputError(f"{target} is a {type(obj).__name__}, not an agentflow Flow")
    return obj
