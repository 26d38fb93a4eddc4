"""OpenTelemetry export: the same runs, as OTLP spans that Phoenix, Langfuse or Jaeger can read.

Spans carry both vocabularies the GenAI tools read: the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...) and
OpenInference (``openinference.span.kind``, ``llm.input_messages.0.message.content``,
``retrieval.documents.0.document.content``...), plus ``agentflow.*`` attributes for what only
agentflow knows (loop pass, parallel branch, map item, verdicts).

Ids are derived from the run: the trace id is the run id, each span id a hash of its path, so a run
exported live and the same run exported again later from the store (``agentflow traces export
--otlp``) are the same trace. Needs the ``otel`` extra (``pip install agentflow[otel]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentflow.errors import ConfigError
from agentflow.redaction import redact, redact_text, secret_env_values
from agentflow.tracing.buffer import BackgroundSink
from agentflow.tracing.events import Event
from agentflow.tracing.payloads import (
    CheckPayload,
    ModelCallPayload,
    NodePayload,
    RetrievalPayload,
    RunPayload,
    token_counts,
)
from agentflow.tracing.sanitize import Sanitizer
from agentflow.tracing.spans import SpanAssembler, SpanRecord

try:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import (
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "OpenTelemetry export needs the otel extra: pip install 'agentflow[otel]'"
    ) from exc

SCOPE = InstrumentationScope("agentflow", "0.1.0")

OPENINFERENCE_KIND = {"model_call": "LLM", "retrieval": "RETRIEVER", "check": "EVALUATOR"}
"""OpenInference span kinds; every other span (run, node, loop, map...) is a CHAIN."""

_SAMPLING_TO_GENAI = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                      "max_tokens": "max_tokens", "seed": "seed", "stop": "stop_sequences",
                      "frequency_penalty": "frequency_penalty",
                      "presence_penalty": "presence_penalty", "n": "choice.count"}


def trace_id_of(run_id: str) -> int:
    """The 128-bit trace id of a run: its id when that is 32 hex digits, else a hash of it."""
    if len(run_id) == 32:
        try:
            return int(run_id, 16) or 1
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=16).digest(), "big") or 1


def span_id_of(path: str) -> int:
    """The 64-bit span id of a span path (``run/loop:refine/pass:2/node:answer``)."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") or 1


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int, float))


def _messages(prefix: str, messages: Any, attrs: dict[str, Any]) -> None:
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if isinstance(message, Mapping):
            attrs[f"{prefix}.{i}.message.role"] = str(message.get("role", ""))
            content = message.get("content")
            attrs[f"{prefix}.{i}.message.content"] = content if isinstance(content, str) else _json(content)


def _response_text(response: Any) -> str:
    if isinstance(response, str):
        return response
    if isinstance(response, Mapping):
        for key in ("text", "content", "answer"):
            if isinstance(response.get(key), str):
                return str(response[key])
    return _json(response)


def _model_attributes(call: ModelCallPayload, attrs: dict[str, Any]) -> None:
    model = str(call.model or call.alias or "")
    attrs.update({"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                  "gen_ai.response.model": model, "llm.model_name": model})
    if call.provider:
        attrs["gen_ai.provider.name"] = attrs["llm.provider"] = str(call.provider)
    if call.alias:
        attrs["agentflow.model.alias"] = str(call.alias)
    sampling = call.sampling
    if isinstance(sampling, Mapping):
        attrs["llm.invocation_parameters"] = _json(sampling)
        for key, name in _SAMPLING_TO_GENAI.items():
            value = sampling.get(key)
            if _scalar(value):
                attrs[f"gen_ai.request.{name}"] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                attrs[f"gen_ai.request.{name}"] = value
    messages = call.messages
    _messages("llm.input_messages", messages, attrs)
    if isinstance(messages, list):
        attrs["gen_ai.input.messages"] = attrs["input.value"] = _json(messages)
        attrs["input.mime_type"] = "application/json"
    if call.response is not None:
        text = _response_text(call.response)
        attrs["llm.output_messages.0.message.role"] = "assistant"
        attrs["llm.output_messages.0.message.content"] = attrs["output.value"] = text
        attrs["gen_ai.output.messages"] = _json([{"role": "assistant", "content": text}])
    prompt, completion, total = token_counts(call.tokens)
    if prompt is not None:
        attrs["gen_ai.usage.input_tokens"] = attrs["llm.token_count.prompt"] = prompt
    if completion is not None:
        attrs["gen_ai.usage.output_tokens"] = attrs["llm.token_count.completion"] = completion
    if total is not None:
        attrs["llm.token_count.total"] = total
    if isinstance(call.cost, (int, float)):
        attrs["llm.cost.total"] = attrs["gen_ai.usage.cost"] = float(call.cost)
    if _scalar(call.latency_s):
        attrs["agentflow.model.latency_s"] = call.latency_s
    for key, value in (("retries", call.retries), ("cache_hit", call.cache_hit)):
        if _scalar(value):
            attrs[f"agentflow.model.{key}"] = value


def _retrieval_attributes(retrieval: RetrievalPayload, attrs: dict[str, Any]) -> None:
    attrs["gen_ai.operation.name"] = "retrieval"
    queries = retrieval.queries
    if isinstance(queries, list):
        texts = [q if isinstance(q, str) else _json(q) for q in queries]
        attrs["input.value"] = "\n".join(texts)
        attrs["gen_ai.retrieval.query.text"] = texts[0] if len(texts) == 1 else _json(texts)
    hits = retrieval.hits
    if not isinstance(hits, list):
        return
    docs = []
    for i, hit in enumerate(hits):
        if not isinstance(hit, Mapping):
            continue
        prefix = f"retrieval.documents.{i}.document"
        attrs[f"{prefix}.id"] = str(hit.get("id", i))
        attrs[f"{prefix}.content"] = str(hit.get("text", ""))
        if isinstance(hit.get("score"), (int, float)):
            attrs[f"{prefix}.score"] = float(hit["score"])
        meta = {k: v for k, v in hit.items() if k not in ("id", "text", "score")}
        if meta:
            attrs[f"{prefix}.metadata"] = _json(meta)
        docs.append({"id": str(hit.get("id", i)), "score": hit.get("score")})
    attrs["gen_ai.retrieval.documents"] = _json(docs)


def _check_attributes(name: str, check: CheckPayload, attrs: dict[str, Any]) -> None:
    attrs["gen_ai.evaluation.name"] = name
    if isinstance(check.score, (int, float)):
        attrs["gen_ai.evaluation.score.value"] = float(check.score)
    verdict = check.verdict if check.verdict is not None else check.passed
    if verdict is not None:
        attrs["gen_ai.evaluation.score.label"] = str(verdict)
    if check.reason:
        attrs["gen_ai.evaluation.explanation"] = str(check.reason)
    attrs["output.value"] = _json({"score": check.score, "verdict": check.verdict,
                                   "reason": check.reason})


def attributes(span: SpanRecord) -> dict[str, Any]:
    """The OpenTelemetry attributes of a span: GenAI, OpenInference and ``agentflow.*``."""
    attrs: dict[str, Any] = {
        "openinference.span.kind": OPENINFERENCE_KIND.get(span.kind, "CHAIN"),
        "agentflow.span.kind": span.kind,
        "agentflow.span.path": span.span_id,
        "agentflow.run_id": span.run_id,
    }
    for key in ("branch", "pass_index", "item_index"):
        value = getattr(span, key)
        if value is not None:
            attrs[f"agentflow.{key}"] = value
    if span.step_type:
        attrs["agentflow.step_type"] = span.step_type
    payload = span.payload
    if isinstance(payload, RunPayload):
        attrs.update({"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": span.name,
                      "input.value": _json(payload.inputs or {}),
                      "input.mime_type": "application/json"})
        if payload.thread_id:
            attrs["session.id"] = attrs["gen_ai.conversation.id"] = str(payload.thread_id)
        if "state" in span.data:
            attrs["output.value"] = _json(payload.state)
            attrs["output.mime_type"] = "application/json"
    elif isinstance(payload, ModelCallPayload):
        _model_attributes(payload, attrs)
    elif isinstance(payload, RetrievalPayload):
        _retrieval_attributes(payload, attrs)
    elif isinstance(payload, CheckPayload):
        _check_attributes(span.name, payload, attrs)
    elif isinstance(payload, NodePayload) and "update" in span.data:
        attrs["output.value"] = _json(payload.update)
        attrs["output.mime_type"] = "application/json"
    else:
        for key, value in payload.to_data().items():
            if _scalar(value) and key != "duration_s":
                attrs[f"agentflow.{span.kind}.{key}"] = value
    return attrs


def _span_name(span: SpanRecord) -> str:
    if span.kind == "model_call":
        call = ModelCallPayload.from_data(span.data)
        return f"chat {call.model or call.alias or span.name}"
    if span.kind == "run":
        return f"invoke_workflow {span.name}"
    if span.kind == "loop_pass":
        return f"{span.name} pass {span.pass_index}"
    if span.kind in ("map_item", "branch"):
        index = span.item_index if span.kind == "map_item" else span.branch
        return f"{span.name} {'item' if span.kind == 'map_item' else 'branch'} {index}"
    return span.name if span.kind == "node" else f"{span.kind} {span.name}"


def to_readable_span(span: SpanRecord, resource: Resource, *, end: float | None = None) -> ReadableSpan:
    """An SDK span, with agentflow's ids, for an exporter (``end`` closes an open span)."""
    trace_id = trace_id_of(span.run_id)
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, span_id_of(span.span_id), is_remote=False, trace_flags=flags)
    parent = (SpanContext(trace_id, span_id_of(span.parent_id), is_remote=False, trace_flags=flags)
              if span.parent_id else None)
    finish = span.end if span.end is not None else (end if end is not None else span.start)
    if span.status == "error" or span.status == "incomplete":
        status = Status(StatusCode.ERROR, span.error or span.status)
    else:
        status = Status(StatusCode.OK)
    kind = SpanKind.CLIENT if span.kind in ("model_call", "retrieval") else SpanKind.INTERNAL
    return ReadableSpan(name=_span_name(span), context=context, parent=parent, resource=resource,
                        attributes=attributes(span), kind=kind, status=status,
                        start_time=int(span.start * 1e9), end_time=int(finish * 1e9),
                        instrumentation_scope=SCOPE)


def make_resource(service_name: str = "agentflow") -> Resource:
    return Resource.create({"service.name": service_name, "telemetry.sdk.name": "agentflow"})


def otlp_exporter(endpoint: str | None = None, headers: Mapping[str, str] | None = None, *,
                  timeout: float = 5.0) -> SpanExporter:
    """The OTLP/HTTP exporter (``endpoint`` like ``http://localhost:4318/v1/traces``; by default
    the standard ``OTEL_EXPORTER_OTLP_*`` environment variables decide). A collector that does not
    answer costs the export thread ``timeout`` seconds per batch, never the run."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers) if headers else None,
                            timeout=timeout)


class OTelExporter(BackgroundSink):
    """A trace hook that exports every finished span over OTLP, in batches, off the hot path.

    ``exporter`` is any OpenTelemetry ``SpanExporter`` (an ``InMemorySpanExporter`` in tests);
    by default the OTLP/HTTP one for ``endpoint``. Payloads are redacted and capped first.
    """

    def __init__(self, exporter: SpanExporter | None = None, *, endpoint: str | None = None,
                 headers: Mapping[str, str] | None = None, service_name: str = "agentflow",
                 sanitizer: Sanitizer | None = None, flush_interval: float = 0.5) -> None:
        self.exporter = exporter if exporter is not None else otlp_exporter(endpoint, headers)
        self.resource = make_resource(service_name)
        self.sanitizer = sanitizer or Sanitizer(max_chars=16_000, max_items=200)
        self._assembler = SpanAssembler()
        super().__init__(flush_interval=flush_interval, name="agentflow-otel")

    def process(self, events: list[Event]) -> None:
        finished = []
        for event in events:
            span, _ = self._assembler.add(event)
            if span.end is not None:
                finished.append(self._clean(span))
        self._export(finished)

    def finalize(self) -> None:
        """Export spans that never finished as errors ("incomplete"), then shut the exporter."""
        stale = []
        for span in self._assembler.open_spans():
            span.status, span.error = "incomplete", "the run did not finish before export closed"
            stale.append(self._clean(span))
        self._export(stale)
        self.exporter.shutdown()

    def _clean(self, span: SpanRecord) -> SpanRecord:
        span.data = self.sanitizer.clean(span.data)
        span.error = self.sanitizer.text(span.error) if span.error else None
        return span

    def _export(self, spans: Sequence[SpanRecord]) -> None:
        if spans:
            self.exporter.export([to_readable_span(s, self.resource) for s in spans])


def export_spans(spans: Iterable[SpanRecord], exporter: SpanExporter, *,
                 service_name: str = "agentflow", batch: int = 512) -> int:
    """Export stored spans through ``exporter``; returns how many. They were sanitized when
    stored, and are redacted again (uncapped) in case an older version stored them."""
    resource = make_resource(service_name)
    pending: list[ReadableSpan] = []
    count = 0
    secrets = secret_env_values()
    for span in spans:
        span.data = redact(span.data, secrets)
        span.error = redact_text(span.error, secrets) if span.error else span.error
        pending.append(to_readable_span(span, resource))
        if len(pending) >= batch:
            exporter.export(pending)
            count, pending = count + len(pending), []
    if pending:
        exporter.export(pending)
        count += len(pending)
    return count
