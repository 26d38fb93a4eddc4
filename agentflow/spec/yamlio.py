"""Read YAML and remember where every value came from (line and column), for precise errors.

The loader is bounded: a document may nest at most :data:`MAX_DEPTH` levels, use at most
:data:`MAX_ALIASES` aliases, and expand (aliases copied out) to at most :data:`MAX_NODES` values.
A few hundred bytes of nested aliases ("billion laughs") would otherwise expand to billions of
values, and a self-referencing alias or deep nesting would overflow Python's stack; each of these
is a :class:`SpecError` at the line and column where the limit was crossed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentflow.errors import SpecError

Loc = tuple[str | int, ...]

MAX_DEPTH = 100
"""Nesting levels (mappings and lists) a document may have; workflows use a few dozen at most."""
MAX_ALIASES = 1_000
"""Aliases (``*name``) a document may use."""
MAX_NODES = 100_000
"""Values a document may hold once its aliases are expanded."""


class _LimitExceeded(yaml.composer.ComposerError):
    """A document crossed one of the loader's limits (raised where it did)."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with the limits above enforced while composing.

    Composing keeps an alias as a reference to its anchor's node, so it is cheap; the size of each
    node once expanded is counted as it is composed, so an alias bomb stops at the first value
    past :data:`MAX_NODES`, long before anything is copied.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values in it once expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            return self._compose_alias()
        mark = self.peek_event().start_mark
        if self._depth >= MAX_DEPTH:
            raise _LimitExceeded(None, None, f"YAML nested more than {MAX_DEPTH} levels deep (the "
                                 "workflow loader's limit)", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise _LimitExceeded(None, None, f"YAML aliases expand this value to more than "
                                 f"{MAX_NODES:,} values (an alias bomb?); the workflow loader "
                                 f"allows {MAX_NODES:,}", mark)
        self._sizes[id(node)] = size
        return node

    def _compose_alias(self) -> yaml.Node:
        event = self.peek_event()
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _LimitExceeded(None, None, f"more than {MAX_ALIASES:,} YAML aliases (the "
                                 "workflow loader's limit)", event.start_mark)
        target = self.anchors.get(event.anchor)
        if target is not None and id(target) not in self._sizes:
            raise _LimitExceeded(None, None, f"recursive YAML alias: *{event.anchor} refers to "
                                 "a value that contains it; an alias may only name a value "
                                 "that ends before it",
                                 event.start_mark)
        return super().compose_node(None, None)  # an undefined alias: PyYAML's own error


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the loader's limits (for small snippets such as ``--set`` values)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@dataclass
class Located:
    """A YAML document as plain data, with the position of each value by its path."""

    data: Any
    file: str
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the deepest known value on ``loc``."""
        path = tuple(loc)
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (None, None))

    def error(self, message: str, loc: Sequence[str | int]) -> SpecError:
        line, column = self.where(loc)
        return SpecError(message, file=self.file, line=line, column=column, path=dotted(loc))


def dotted(loc: Sequence[str | int]) -> str:
    """``("nodes", "answer", "model")`` -> ``nodes.answer.model``; list indices as ``[i]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(text: str, file: str = "<string>") -> Located:
    """Parse YAML text; a syntax error becomes a :class:`SpecError` with its position."""
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        if not isinstance(exc, _LimitExceeded):
            problem = f"malformed YAML: {problem}"
        raise SpecError(problem, file=file, line=line, column=column) from None
    finally:
        loader.dispose()
    located = Located(None, file)
    located.data = _convert(root, (), located, yaml.SafeLoader("")) if root is not None else {}
    return located


def load_file(path: str | Path) -> Located:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"no such workflow file: {str(p)!r}")
    return load(p.read_text(encoding="utf-8"), str(p))


def _convert(node: yaml.Node, loc: Loc, located: Located, scalars: yaml.SafeLoader) -> Any:
    located.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain words", file=located.file,
                                line=key_node.start_mark.line + 1,
                                column=key_node.start_mark.column + 1, path=dotted(loc))
            # the key's text as written: YAML 1.1 would read `on:` (a route's key) as True
            key = key_node.value
            if key in out:
                line = key_node.start_mark.line + 1
                raise SpecError(f"duplicate key {key!r}", file=located.file, line=line,
                                column=key_node.start_mark.column + 1, path=dotted((*loc, key)))
            out[key] = _convert(value_node, (*loc, key), located, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*loc, i), located, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node)


def dump(data: Any) -> str:
    """YAML text for a spec, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
