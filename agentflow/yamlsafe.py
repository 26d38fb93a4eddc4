"""PyYAML's safe loader with limits, for every YAML file agentflow reads (workflows, ``--set``
values, ``agentflow.yaml``).

A document may nest at most :data:`MAX_DEPTH` levels, use at most :data:`MAX_ALIASES` aliases, and
expand (aliases copied out) to at most :data:`MAX_NODES` values. A few hundred bytes of nested
aliases ("billion laughs") would otherwise expand to billions of values, and a self-referencing
alias or deep nesting would overflow Python's stack. Crossing a limit raises
:class:`LimitExceeded`, a :class:`yaml.MarkedYAMLError` that carries the position where it
happened. This module sits below every layer (it imports only PyYAML), so ``models`` and
``spec`` read YAML the same way.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 100
"""Nesting levels (mappings and lists) a document may have; workflows use a few dozen at most."""
MAX_ALIASES = 1_000
"""Aliases (``*name``) a document may use."""
MAX_NODES = 100_000
"""Values a document may hold once its aliases are expanded."""


class LimitExceeded(yaml.composer.ComposerError):
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
            raise LimitExceeded(None, None, f"YAML nested more than {MAX_DEPTH} levels deep (the "
                                 "workflow loader's limit)", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise LimitExceeded(None, None, f"YAML aliases expand this value to more than "
                                 f"{MAX_NODES:,} values (an alias bomb?); the workflow loader "
                                 f"allows {MAX_NODES:,}", mark)
        self._sizes[id(node)] = size
        return node

    def _compose_alias(self) -> yaml.Node:
        event = self.peek_event()
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise LimitExceeded(None, None, f"more than {MAX_ALIASES:,} YAML aliases (the "
                                 "workflow loader's limit)", event.start_mark)
        target = self.anchors.get(event.anchor)
        if target is not None and id(target) not in self._sizes:
            raise LimitExceeded(None, None, f"recursive YAML alias: *{event.anchor} refers to "
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
