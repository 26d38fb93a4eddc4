"""Read YAML and remember where every value came from (line and column), for precise errors.

The loader is bounded (:mod:`agentflow.yamlsafe`): crossing one of its limits (nesting, aliases,
expansion) is a :class:`SpecError` at the line and column where it happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentflow.errors import SpecError
from agentflow.yamlsafe import MAX_ALIASES, MAX_DEPTH, MAX_NODES, BoundedLoader, LimitExceeded, safe_load

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "BoundedLoader", "Located", "dotted", "dump",
           "load", "load_file", "safe_load"]

Loc = tuple[str | int, ...]


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
        if not isinstance(exc, LimitExceeded):
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
