"""What prompt templates may not touch, found before rendering, and where a refusal happened.

Templates render in Jinja2's ``ImmutableSandboxedEnvironment``, which refuses at render time every
attribute that starts with ``_`` (the road from ``cycler``, ``lipsum`` or ``''`` to ``__globals__``
and ``os``), the internals of functions, frames and code objects, and methods that change a list,
dict or set; :func:`sandboxed_environment` also bounds ``*`` and ``**``, which could otherwise
fill memory or never finish. :func:`unsafe_accesses` finds the underscore accesses written in a
template's source, so loading it (``agentflow validate``) fails with the line before anything
runs; the sandbox stays the guard for what only a value at render time reveals.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import nodes

ATTRIBUTE_FILTERS = ("attr", "selectattr", "rejectattr")
"""Filters whose first argument names an attribute the sandbox then looks up."""
MAX_REPEAT = 1_000_000
"""The longest string or list ``*`` may make in a template (``'x' * 10**10`` would fill memory)."""
MAX_EXPONENT = 1_000
"""The largest exponent ``**`` may take (``10**10**10`` would never finish)."""


def sandboxed_environment(**options: Any) -> Any:
    """Jinja2's immutable sandbox, with ``*`` and ``**`` bounded as well."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class PromptEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and _number(right) and abs(right) > MAX_EXPONENT and _number(left) \
                    and abs(left) > 1:
                raise SecurityError(f"an exponent of {right} is over the limit of {MAX_EXPONENT}")
            if operator == "*":
                size = _repeated_size(left, right) or _repeated_size(right, left)
                if size > MAX_REPEAT:
                    raise SecurityError(f"'*' would make a value of {size:,} items, over the limit "
                                        f"of {MAX_REPEAT:,}")
            return super().call_binop(context, operator, left, right)

    return PromptEnvironment(**options)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _repeated_size(sequence: Any, times: Any) -> int:
    if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
        return len(sequence) * max(times, 0)
    return 0


def unsafe_accesses(tree: nodes.Template) -> list[tuple[int, str]]:
    """``(line, attribute)`` of each access to an attribute starting with ``_``, in the order
    they would be evaluated.

    Covers ``x.__class__``, ``x['__class__']``, ``x|attr('__class__')`` and filters given
    ``attribute='__class__'`` (``map``, ``sort``, ``groupby``...).
    """
    return [(line, name) for line, name in _accessed(tree) if _unsafe(name)]


def _in_evaluation_order(node: nodes.Node) -> Iterator[nodes.Node]:
    """Children before their parent: ``cycler.__init__`` comes before ``.__globals__``."""
    for child in node.iter_child_nodes():
        yield from _in_evaluation_order(child)
    yield node


def _accessed(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    from jinja2 import nodes

    for node in _in_evaluation_order(tree):
        if isinstance(node, nodes.Getattr):
            yield node.lineno, node.attr
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                yield node.lineno, node.arg.value
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            if node.name in ATTRIBUTE_FILTERS and node.args:
                yield from _constant_names(node.lineno, node.args[0])
            for kw in node.kwargs:
                if kw.key == "attribute":
                    yield from _constant_names(node.lineno, kw.value)


def _constant_names(line: int, value: nodes.Node) -> Iterator[tuple[int, str]]:
    from jinja2 import nodes

    if isinstance(value, nodes.Const) and isinstance(value.value, str):
        for part in value.value.split("."):  # attribute='a.__class__' walks a dotted path
            yield line, part


def _unsafe(name: str) -> bool:
    return name.startswith("_")


def template_frame(exc: BaseException, roots: Sequence[Path]) -> tuple[str, int] | None:
    """The template file (relative to its root) and line where ``exc`` was raised while rendering.

    Jinja2 rewrites a rendering traceback so that template code appears as frames of the template
    file at its source line; the innermost such frame is where the refusal happened.
    """
    found: tuple[str, int] | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".py") or frame.lineno is None:
            continue
        path = Path(frame.filename)
        for root in roots:
            if path.is_relative_to(root):
                found = (path.relative_to(root).as_posix(), frame.lineno)
                break
    return found
