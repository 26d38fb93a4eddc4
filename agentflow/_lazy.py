"""Lazy public names for packages: import a name's module on first use, so that importing a
package (and running ``agentflow --help``) does not pay for LangGraph, LiteLLM, torch or Qdrant."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in the modules of ``exports``.

    ``exports`` maps each public name to the module that defines it (absolute, or relative to the
    package when it starts with a dot). A name is cached in the package once imported.
    """
    namespace = importlib.import_module(package).__dict__

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *exports})

    return getattr_, dir_
