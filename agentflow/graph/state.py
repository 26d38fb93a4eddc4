"""State schemas: the user's typed schema, its reducers, and the internal channel agentflow adds.

A flow's state is a Pydantic model or a TypedDict. Fields that several nodes write in the same step
(parallel branches, map items) carry a reducer, as in LangGraph:
``chunks: Annotated[list[Chunk], operator.add]``.

agentflow compiles the user's schema into a TypedDict with the same fields plus one internal field,
``_af``, that holds loop counters, route labels and pending map results. It is part of the checkpoint,
so a resumed run knows which loop pass it was in.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, get_type_hints

from pydantic import BaseModel, ValidationError

from agentflow.errors import InputError, known


def merge(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """The ``merge`` reducer: a dict field takes the keys each writer gives, later ones winning."""
    return {**(a or {}), **(b or {})}


def _add_messages(left: Any, right: Any) -> Any:
    """LangGraph's ``add_messages`` (messages appended, or replaced by id), imported on first
    use: the engine's own reducer for a chat history."""
    from langgraph.graph.message import add_messages

    return add_messages(left, right)


REDUCERS: dict[str, Callable[[Any, Any], Any]] = {
    "append": operator.add, "merge": merge, "messages": _add_messages}
"""The reducers a YAML state field can name."""


def reducer_name(fn: Any) -> str | None:
    """The YAML name of a reducer function, or None where YAML has no name for it."""
    if fn is operator.add:
        return "append"
    if fn is merge:
        return "merge"
    if fn is _add_messages or getattr(fn, "__name__", None) == "add_messages":
        return "messages"
    return None


INTERNAL = "_af"
"""Name of the internal state field (loop passes, route labels, pending map results)."""


def merge_internal(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer of the internal field: two-level merge by section; a ``None`` value deletes a key.

    Sections: ``loops`` (name -> counters), ``routes`` (name -> label), ``map`` (name -> {index:
    result}) and ``map_errors`` (name -> {index: error}). Map buckets merge per index so that items
    finishing in the same step keep each other's results.
    """
    merged = dict(old or {})
    for section, entries in (new or {}).items():
        current = dict(merged.get(section) or {})
        for key, value in entries.items():
            if value is None:
                current.pop(key, None)
            elif section in ("map", "map_errors") and key in current:
                current[key] = {**current[key], **value}
            else:
                current[key] = value
        merged[section] = current
    return merged


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of the user's state schema."""

    name: str
    annotation: Any
    reducer: Callable[[Any, Any], Any] | None
    required: bool
    """Required by the schema (a default input of flows over it)."""
    has_default: bool
    """A run that does not give this field still has a value for it."""


class StateSchema:
    """Introspection of a user's state schema, and conversion between views of it."""

    def __init__(self, schema: type) -> None:
        self.schema = schema
        self.is_pydantic = isinstance(schema, type) and issubclass(schema, BaseModel)
        if not self.is_pydantic and not _is_typeddict(schema):
            raise TypeError(
                f"state schema must be a Pydantic model or a TypedDict, got {schema!r}"
            )
        self.fields: dict[str, FieldInfo] = self._fields()
        self._construct = getattr(schema, "model_construct", None)

    @property
    def name(self) -> str:
        return self.schema.__name__

    def _fields(self) -> dict[str, FieldInfo]:
        out: dict[str, FieldInfo] = {}
        if self.is_pydantic:
            for name, f in self.schema.model_fields.items():  # type: ignore[attr-defined]
                reducer = next((m for m in f.metadata if callable(m)), None)
                required = f.is_required()
                out[name] = FieldInfo(name, f.annotation, reducer, required, not required)
            return out
        hints = get_type_hints(self.schema, include_extras=True)
        required = getattr(self.schema, "__required_keys__", frozenset(hints))
        for name, hint in hints.items():
            reducer = None
            if typing.get_origin(hint) is Annotated:
                reducer = next((m for m in hint.__metadata__ if callable(m)), None)
            out[name] = FieldInfo(name, hint, reducer, name in required, False)
        return out

    def channels_schema(self) -> type:
        """The TypedDict LangGraph runs on: the user's fields (with reducers) plus ``_af``."""
        annotations: dict[str, Any] = {}
        for f in self.fields.values():
            base = Any
            annotations[f.name] = Annotated[base, f.reducer] if f.reducer else base
        annotations[INTERNAL] = Annotated[dict, merge_internal]
        return TypedDict(f"{self.name}Channels", annotations, total=False)  # type: ignore[operator]

    def validate_input(self, values: Mapping[str, Any], inputs: tuple[str, ...]) -> dict[str, Any]:
        """Check a run's input against the declared inputs and the schema; return channel values."""
        unknown = [k for k in values if k not in self.fields]
        if unknown:
            raise InputError(
                f"unknown input field(s) {known(unknown)} for state {self.name}; "
                f"fields: {known(self.fields)}"
            )
        missing = [k for k in inputs if k not in values and not self.fields[k].has_default]
        if missing:
            raise InputError(
                f"missing input(s) {known(missing)} for state {self.name}; inputs: {known(inputs)}"
            )
        if not self.is_pydantic:
            return dict(values)
        try:
            model = self.schema.model_validate(dict(values))
        except ValidationError as exc:
            raise InputError(f"invalid input for state {self.name}:\n{exc}") from exc
        # keep only what the caller gave: defaults stay defaults, not writes
        return {k: getattr(model, k) for k in values}

    def view(self, values: Mapping[str, Any]) -> Any:
        """The state a node receives: a model instance (without re-validation) or a dict."""
        if self._construct is None:
            return {k: v for k, v in values.items() if k != INTERNAL}
        return self._construct(**{k: v for k, v in values.items() if k in self.fields})

    def public(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The final state as the user's schema sees it (defaults filled in for Pydantic)."""
        if self._construct is None:
            return {k: v for k, v in values.items() if k != INTERNAL}
        model = self.view(values)
        return {k: getattr(model, k) for k in self.fields if hasattr(model, k)}


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__annotations__")
