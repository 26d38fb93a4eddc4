"""One typed payload per kind of span: what a trace event carries in ``Event.data``, by name.

Producers build a payload (``ModelCallPayload(alias="large", tokens=..., latency_s=0.4)``) and
send ``payload.to_data()``; the wire format (what hooks receive and the store keeps) stays a plain
mapping, so hooks written against it and stores written by older versions keep working. Readers
(the trace store, the OpenTelemetry exporter, ``agentflow traces``, the engine's own bookkeeping)
parse a mapping back with :meth:`Payload.from_data` and read typed fields instead of string keys.

Each payload says what of it is worth showing without loading the whole span: :meth:`Payload.summary`
is what the store keeps in the span's ``summary`` column (the trace UI and ``traces show`` read
only that), and :meth:`Payload.describe` is the one line ``agentflow traces show`` draws from it.

A span with a duration has a start and a finish event (``loop_started``, ``loop_finished``); both
carry the same payload type, each filling the fields it knows (the start a loop's
``max_iterations``, the finish its ``stop_reason``), and the span's payload merges the two.

One spelling per field: a key that older versions wrote under another name is accepted on read
(``latency`` for ``latency_s``) and never written again. Keys a payload does not declare are kept,
in order, in :attr:`Payload.extra`: nodes add their own facts to a model call (``prompt``,
``context_budget``) and custom events carry anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, Self

_NAMES: dict[type[Payload], tuple[tuple[str, ...], frozenset[str]]] = {}
"""Payload class -> the wire keys of its declared fields, in order and as a set (filled on first
use)."""


@dataclass(slots=True, kw_only=True)
class Payload:
    """The payload of a span kind without declared fields: a custom event's, or an unknown kind's.

    Subclasses declare their fields (all optional: a start and a finish event each carry part of
    them) and override :meth:`summary` and :meth:`describe`.
    """

    span_kind: ClassVar[str] = "custom"
    renamed: ClassVar[Mapping[str, str]] = {}
    """Old wire key -> field, accepted on read (the field's own key wins when both are there)."""

    duration_s: float | None = None
    """How long a single event's span took (model calls, retrievals, checks; a run's finish)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this payload does not declare, as they came."""

    @classmethod
    def names(cls) -> frozenset[str]:
        """The wire keys of the declared fields."""
        return cls._names()[1]

    @classmethod
    def _names(cls) -> tuple[tuple[str, ...], frozenset[str]]:
        names = _NAMES.get(cls)
        if names is None:
            ordered = tuple(f.name for f in fields(cls) if f.name != "extra")
            names = _NAMES[cls] = (ordered, frozenset(ordered))
        return names

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Self:
        """The payload of a wire mapping (an event's ``data``, a stored span's ``data``)."""
        if not data:
            return cls()
        names, renamed = cls.names(), cls.renamed
        if data.keys() <= names:  # the common case, fast: every key declared
            return cls(**data)
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        old: dict[str, Any] | None = None
        for key, value in data.items():
            if key in names:
                known[key] = value
            elif key in renamed:
                old = old or {}
                old[renamed[key]] = value
            else:
                extra[key] = value
        if old:
            for key, value in old.items():
                known.setdefault(key, value)
        return cls(**known, extra=extra)

    def to_data(self) -> dict[str, Any]:
        """The wire mapping: the extra keys, then every declared field that is set (not None)."""
        data = dict(self.extra)
        for name in self._names()[0]:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def summary(self) -> dict[str, Any]:
        """Small, display-ready facts of the span, stored beside its payload (none by default)."""
        return {}

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        """One line for a stored span (a row of :meth:`TraceReader.spans`), from its summary."""
        return f"{span['kind']} {span['name']}"


def _set(out: dict[str, Any], **values: Any) -> dict[str, Any]:
    """``out`` with the values that are not None."""
    for key, value in values.items():
        if value is not None:
            out[key] = value
    return out


def _clip(text: Any, limit: int = 200) -> Any:
    """A long text cut for a summary; anything else as it is."""
    return text[:limit] + "…" if isinstance(text, str) and len(text) > limit else text


def _info(span: Mapping[str, Any]) -> Mapping[str, Any]:
    return span.get("summary") or {}


@dataclass(slots=True, kw_only=True)
class RunPayload(Payload):
    """``run_started``: the inputs, thread, declared graph and tags; ``run_finished``: the final
    state."""

    span_kind: ClassVar[str] = "run"

    inputs: dict[str, Any] | None = None
    thread_id: str | None = None
    resume: bool | None = None
    graph: Any = None
    tags: dict[str, str] | None = None
    state: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class NodePayload(Payload):
    """``node_finished``: the node's state change (its update)."""

    span_kind: ClassVar[str] = "node"

    update: Any = None


@dataclass(slots=True, kw_only=True)
class LoopPayload(Payload):
    """``loop_started``: the bound; ``loop_finished``: why the loop stopped after how many passes."""

    span_kind: ClassVar[str] = "loop"

    max_iterations: int | None = None
    stop_reason: Literal["passed", "exhausted", "error"] | None = None
    passes: int | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, max_iterations=self.max_iterations, stop_reason=self.stop_reason,
                    passes=self.passes)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        return (f"loop {span['name']} (max {info.get('max_iterations')}) -> "
                f"{info.get('stop_reason', '?')} after {info.get('passes', '?')} pass(es)")


@dataclass(slots=True, kw_only=True)
class LoopPassPayload(Payload):
    """``loop_pass_finished``: the verdict of the loop's check after the pass."""

    span_kind: ClassVar[str] = "loop_pass"

    passed: bool | None = None
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, passed=self.passed, reason=_clip(self.reason))

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        text = f"pass {span['pass_index']} {'passed' if info.get('passed') else 'failed'}"
        return f"{text}: {info['reason']}" if info.get("reason") else text


@dataclass(slots=True, kw_only=True)
class MapPayload(Payload):
    """``map_started``: what is mapped over and the limit; ``map_finished``: how it went."""

    span_kind: ClassVar[str] = "map"

    over: str | None = None
    count: int | None = None
    max_concurrency: int | None = None
    on_error: str | None = None
    ok: int | None = None
    failed: int | None = None
    max_in_flight: int | None = None
    """The most items seen running at once (the limit, enforced, shows here)."""

    def summary(self) -> dict[str, Any]:
        return _set({}, over=self.over, count=self.count, max_concurrency=self.max_concurrency,
                    max_in_flight=self.max_in_flight, ok=self.ok, failed=self.failed,
                    on_error=self.on_error)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        return (f"map {span['name']} over {info.get('over')} x{info.get('count')} "
                f"(max_concurrency {info.get('max_concurrency')}, "
                f"max in flight {info.get('max_in_flight', '?')}, failed {info.get('failed', 0)})")


@dataclass(slots=True, kw_only=True)
class MapItemPayload(Payload):
    """``map_item_started``: items in flight with this one; ``map_item_finished`` of a failed
    item: the policy, the item and the error's type."""

    span_kind: ClassVar[str] = "map_item"

    in_flight: int | None = None
    max_concurrency: int | None = None
    on_error: str | None = None
    item: Any = None
    error_type: str | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, in_flight=self.in_flight)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        return f"item {span['item_index']}"


@dataclass(slots=True, kw_only=True)
class BranchPayload(Payload):
    """``branch_started``: how many branches the parallel step has."""

    span_kind: ClassVar[str] = "branch"

    branches: int | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, branches=self.branches)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        return f"branch {span['branch']} of {span['name']}"


@dataclass(slots=True, kw_only=True)
class RoutePayload(Payload):
    """``route``: the label and the case it chose."""

    span_kind: ClassVar[str] = "route"

    label: Any = None
    case: str | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, label=self.label, case=self.case)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        return f"route {span['name']} -> {info.get('case')} (label {info.get('label')!r})"


@dataclass(slots=True, kw_only=True)
class ModelCallPayload(Payload):
    """``model_call``: one call through the model router, as it records it."""

    span_kind: ClassVar[str] = "model_call"
    renamed: ClassVar[Mapping[str, str]] = {"latency": "latency_s"}

    alias: str | None = None
    model: str | None = None
    """The model that answered (after fallbacks)."""
    models: list[str] | None = None
    """The chain tried: the alias's model, then its fallbacks."""
    profile: str | None = None
    provider: str | None = None
    messages: list[dict[str, Any]] | None = None
    sampling: dict[str, Any] | None = None
    dropped_params: list[str] | None = None
    ignored_params: list[str] | None = None
    schema: str | None = None
    constraint: dict[str, Any] | None = None
    response: Any = None
    finish_reason: str | None = None
    choices: list[Any] | None = None
    tokens: Any = None
    """``{"prompt": 812, "completion": 64, "total": 876}`` (see :data:`TOKEN_KEYS`)."""
    cost: float | None = None
    cost_source: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    """Time to first token, where the backend reports it."""
    cache: str | None = None
    cache_hit: bool | None = None
    retries: int | None = None
    failures: list[Any] | None = None
    repaired: bool | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, alias=self.alias, model=self.model, cost=self.cost,
                    latency_s=self.latency_s, retries=self.retries, cache_hit=self.cache_hit,
                    tokens=total_tokens(self.tokens))

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        text = f"model_call {info.get('alias') or span['name']} -> {info.get('model', '?')}"
        text += f"  {info['tokens']} tok" if "tokens" in info else ""
        text += f"  {format_cost(info.get('cost'))}" if info.get("cost") is not None else ""
        text += "  cache hit" if info.get("cache_hit") else ""
        text += f"  {info['retries']} retries" if info.get("retries") else ""
        return text


@dataclass(slots=True, kw_only=True)
class RetrievalPayload(Payload):
    """``retrieval``: the queries sent to a collection (the span's name) and what came back."""

    span_kind: ClassVar[str] = "retrieval"

    queries: list[Any] | None = None
    hits: list[Any] | None = None
    """The chunks found: their ids (the ``retrieve`` node), or mappings with ``id``, ``text``,
    ``score`` and metadata (what citations resolve against)."""
    scores: list[float] | None = None
    sources: list[str] | None = None
    top_k: int | None = None
    mode: str | None = None
    filter: Any = None
    mmr: Any = None

    def summary(self) -> dict[str, Any]:
        return _set({}, top_k=self.top_k,
                    hits=len(self.hits) if isinstance(self.hits, list) else None,
                    queries=len(self.queries) if isinstance(self.queries, list) else None)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        return (f"retrieval {span['name']}  {info.get('queries', '?')} queries -> "
                f"{info.get('hits', '?')} hits")


@dataclass(slots=True, kw_only=True)
class CheckPayload(Payload):
    """``check``: one check's result (see :class:`~agentflow.checks.result.CheckResult`)."""

    span_kind: ClassVar[str] = "check"

    kind: str | None = None
    """The check's kind (``citations``, ``faithfulness``, ``attribution``...)."""
    score: float | None = None
    passed: bool | None = None
    verdict: Any = None
    threshold: float | None = None
    reason: str | None = None
    severity: str | None = None
    details: Any = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return _set({}, score=self.score, verdict=_clip(self.verdict), passed=self.passed,
                    threshold=self.threshold)

    @classmethod
    def describe(cls, span: Mapping[str, Any]) -> str:
        info = _info(span)
        text = f"check {span['name']}  verdict {info.get('verdict', info.get('passed'))}"
        score = info.get("score")
        return text + (f"  score {score:.3g}" if isinstance(score, (int, float)) else "")


PAYLOADS: dict[str, type[Payload]] = {cls.span_kind: cls for cls in (
    Payload, RunPayload, NodePayload, LoopPayload, LoopPassPayload, MapPayload, MapItemPayload,
    BranchPayload, RoutePayload, ModelCallPayload, RetrievalPayload, CheckPayload)}
"""Span kind -> its payload type."""

SUMMARIZED: frozenset[str] = frozenset(
    kind for kind, cls in PAYLOADS.items() if cls.summary is not Payload.summary)
"""The span kinds whose payload has a summary (the others store none, without parsing)."""


def payload_type(kind: str) -> type[Payload]:
    """The payload type of a span kind or an event kind (``loop`` and ``loop_finished`` alike);
    :class:`Payload` for custom and unknown kinds."""
    cls = PAYLOADS.get(kind)
    if cls is None:
        cls = PAYLOADS.get(kind.removesuffix("_started").removesuffix("_finished"), Payload)
    return cls


def summarize(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a span of ``kind`` with payload ``data`` (empty for kinds without one)."""
    if kind not in SUMMARIZED or not data:
        return {}
    return PAYLOADS[kind].from_data(data).summary()


def format_cost(cost: float | None) -> str:
    """A cost in dollars as ``agentflow traces`` shows it."""
    return "-" if cost is None else f"${cost:.4f}"


# tokens ----------------------------------------------------------------------------------------
TOKEN_KEYS = ("prompt", "completion", "total")
"""The documented shape of a model call's ``tokens``: ``{"prompt": 812, "completion": 64,
"total": 876}`` (what the model router records, with ``"estimated": true`` when the counts are
estimates). Readers also accept a plain number and the provider spellings ``prompt_tokens`` /
``completion_tokens`` / ``total_tokens`` and ``input_tokens`` / ``output_tokens``."""

_PROMPT_KEYS = ("prompt", "prompt_tokens", "input_tokens", "input")
_COMPLETION_KEYS = ("completion", "completion_tokens", "output_tokens", "output")
_TOTAL_KEYS = ("total", "total_tokens")


def _count(value: Any) -> int | None:
    if value is None or value is True or value is False:
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _first(tokens: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = tokens.get(key)
        if value is not None:
            return _count(value)
    return None


def token_counts(tokens: Any) -> tuple[int | None, int | None, int | None]:
    """``(prompt, completion, total)`` of a model call's ``tokens`` (see :data:`TOKEN_KEYS`).

    Any of them may be None when the call did not report it; the total is the reported total, or
    prompt + completion when only those were reported.
    """
    if isinstance(tokens, Mapping):
        prompt = _first(tokens, _PROMPT_KEYS)
        completion = _first(tokens, _COMPLETION_KEYS)
        total = _first(tokens, _TOTAL_KEYS)
        if total is None and (prompt is not None or completion is not None):
            total = (prompt or 0) + (completion or 0)
        return prompt, completion, total
    return None, None, _count(tokens)


def total_tokens(tokens: Any) -> int | None:
    """Total tokens of a model call's ``tokens``: a number or a mapping (:data:`TOKEN_KEYS`)."""
    if type(tokens) is dict:  # the documented shape, fast: its total
        total = tokens.get("total")
        if type(total) is int:
            return total
    return token_counts(tokens)[2]
