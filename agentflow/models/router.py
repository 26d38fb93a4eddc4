"""The model router: the one path every model call takes.

``await router.complete(alias, messages, ...)`` resolves the alias to its models, then: the response
cache, the call with retries (tenacity) and a per-call timeout, fallbacks to the alias's next model,
structured-output validation with one repair, token and cost accounting, and one ``model_call``
span in the trace. Nodes name aliases only; :func:`~agentflow.models.factory.build_router` makes a
router from ``agentflow.yaml`` and the profile in force.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, get_args

from pydantic import BaseModel

from agentflow.errors import ConfigError, ModelError, did_you_mean, known
from agentflow.models.backends import TASK_BACKEND, Backends
from agentflow.models.backends import capabilities as backend_capabilities
from agentflow.models.budget import estimate_messages, estimate_tokens, prompt_limit
from agentflow.models.cache import CacheKey, ResponseCache, normalised_request
from agentflow.models.cost import UsageLedger, call_cost
from agentflow.models.embeddings.base import as_matrix
from agentflow.models.managed_server import release_server, start_server
from agentflow.models.profiles import ModelEntry, RetryConfig
from agentflow.models.retry import Attempts, with_retries
from agentflow.models.sampling import ProviderKind, Sampling, SamplingWarning
from agentflow.models.structured import OutputInvalid, OutputSchema, output_schema
from agentflow.models.types import (
    Capabilities,
    ChatModel,
    ChatRequest,
    ChatResponse,
    Embedder,
    Message,
    OutputConstraint,
    PromptInputs,
    ProviderError,
    Task,
    Usage,
    capabilities_of,
)

if TYPE_CHECKING:
    import numpy as np

    from agentflow.models.embeddings.cache import EmbeddingCache
    from agentflow.models.embeddings.routed import RoutedEmbedder

_NO_SAMPLING = Sampling()
DEFAULT_WINDOW = 8192
"""The window assumed for a model nobody describes (not in LiteLLM's list, none configured)."""


class CallTracer(Protocol):
    """What the router needs of a tracer: the node tracer of :mod:`agentflow.graph.context`."""

    def record(self, kind: Any, name: str, *, data: dict[str, Any] | None = ..., started: float | None = ...,
               status: str | None = ..., error: str | None = ...) -> Any: ...


@dataclass(slots=True)
class RoutedModel:
    """A model of an alias: its configuration and the backend that serves it."""

    entry: ModelEntry
    model: ChatModel


@dataclass(slots=True)
class _Call:
    """What one ``complete`` did, for the trace and the ledger."""

    alias: str
    cache: str = "off"
    retries: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    repaired: bool = False


class ModelRouter:
    """Aliases to models, and the call path; see the module docstring.

    Build one with :func:`~agentflow.models.factory.build_router`, or directly from entries
    (``{"large": [ModelEntry(model="openai/gpt-4.1"), ...]}``) or ready backends
    (``models={"small": FakeChatModel([...])}``), which win over entries of the same alias.
    """

    def __init__(
        self,
        entries: Mapping[str, Sequence[ModelEntry]] | None = None,
        *,
        models: Mapping[str, ChatModel | Sequence[ChatModel]] | None = None,
        embedders: Mapping[str, Embedder] | None = None,
        profile: str = "custom",
        retries: RetryConfig | None = None,
        cache: ResponseCache | None = None,
        timeout_s: float = 60.0,
        backends: Backends | None = None,
    ) -> None:
        self.profile = profile
        self.retries = retries or RetryConfig()
        self.cache = cache if cache is not None and cache.mode != "off" else None
        self.timeout_s = timeout_s
        self.backends = backends or Backends(timeout_s=timeout_s)
        self.usage = UsageLedger()
        self._entries = {alias: list(chain) for alias, chain in (entries or {}).items()}
        self._chains: dict[str, list[RoutedModel]] = {}
        self._given: set[str] = set(models or {})
        for alias, given in (models or {}).items():
            chain = [given] if not isinstance(given, Sequence) else list(given)
            self._chains[alias] = [RoutedModel(_entry_of(m), m) for m in chain]
            self._entries[alias] = [r.entry for r in self._chains[alias]]
        self._embedders: dict[str, Embedder] = dict(embedders or {})
        self._given_embedders: set[str] = set(embedders or {})
        self._warned: set[tuple[str, str, tuple[str, ...]]] = set()

    # -- aliases ---------------------------------------------------------------------------

    @property
    def aliases(self) -> list[str]:
        """Every alias this router knows."""
        return sorted(set(self._entries) | set(self._embedders))

    def check_alias(self, alias: str, *, where: str | None = None) -> None:
        """Raise a :class:`ConfigError` naming the alias, the place and the known aliases."""
        if alias in self._entries or alias in self._embedders:
            return
        at = f" at {where}" if where else ""
        raise ConfigError(
            f"Unknown model alias {alias!r}{at} (profile {self.profile!r}); known: "
            f"{known(self.aliases)}.{did_you_mean(alias, self.aliases)}"
        )

    def chain(self, alias: str) -> list[RoutedModel]:
        """The models of ``alias``, fallbacks last (backends are built on first use)."""
        chain = self._chains.get(alias)
        if chain is None:
            self.check_alias(alias)
            chain = [RoutedModel(e, self.backends.chat(e)) for e in self._entries[alias]]
            self._chains[alias] = chain
        return chain

    def capabilities(self, alias: str, *, task: Task | None = None) -> Capabilities:
        """What the model that answers ``alias`` can do (its first model; fallbacks are alike in
        what callers rely on). With ``task``: the backend that answers that task, which is the
        shared offline backend where the model leaves the task to it (``offline_tasks``).
        Shared code asks this, never a backend's name or kind."""
        routed = self.chain(alias)[0]
        if task is not None and task in routed.entry.offline_tasks:
            return backend_capabilities(TASK_BACKEND)
        return capabilities_of(routed.model)

    def _preparing(self) -> list[Any]:
        """The backends that declare ``prepares_passages``: those of built chains, and those the
        entries name (built now: the offline backend is shared, so this is one object)."""
        ready: dict[int, Any] = {}
        for chain in self._chains.values():
            for routed in chain:
                if capabilities_of(routed.model).prepares_passages:
                    ready[id(routed.model)] = routed.model
        for chain in self._entries.values():
            for entry in chain:
                if backend_capabilities(entry).prepares_passages:
                    model = self.backends.chat(entry)
                    ready[id(model)] = model
        return list(ready.values())

    def prepares_passages(self) -> bool:
        """Whether any backend of this router scores passages locally and gets ready for new ones
        (:meth:`prepare` does something): a caller reads the passages only then."""
        return any(backend_capabilities(e).prepares_passages
                   for chain in self._entries.values() for e in chain) or any(
            capabilities_of(r.model).prepares_passages for c in self._chains.values() for r in c)

    def prepare(self, passages: Sequence[str], *, progress: bool = False) -> int:
        """Let the backends that score passages locally get ready for these (new) passages.

        Backends that declare ``prepares_passages`` (the offline backend: see
        :meth:`~agentflow.models.offline.model.OfflineModel.prepare`) embed their sentences now,
        so the first question about them is as fast as the rest; hosted models need nothing.
        Returns how many texts were prepared.
        """
        return sum(model.prepare(passages, progress=progress) for model in self._preparing())

    def close(self) -> None:
        """Release the model servers this router's calls found or started: one agentflow started
        stops once no other router uses it (and at the latest when the process exits). The
        router still works afterwards; its next call finds or starts a model server again."""
        for chain in self._chains.values():
            for routed in chain:
                release_server(routed.model)

    def _task_routed(self) -> RoutedModel:
        """The shared backend for a task a model leaves to it (``offline_tasks``)."""
        return RoutedModel(TASK_BACKEND, self.backends.chat(TASK_BACKEND))

    def models_of(self, alias: str) -> list[str]:
        """The model strings of ``alias``, fallbacks last."""
        self.check_alias(alias)
        return [e.model for e in self._entries.get(alias, [])]

    # -- tokens ----------------------------------------------------------------------------

    def context_window(self, alias: str) -> int:
        """The smallest window among the alias's models, so a prompt fits every fallback."""
        self.check_alias(alias)
        if alias in self._given:
            windows = [getattr(r.model, "context_window", None) or DEFAULT_WINDOW
                       for r in self._chains[alias]]
        else:
            windows = [self.backends.context_window(e) or DEFAULT_WINDOW
                       for e in self._entries[alias]]
        return min(windows) if windows else DEFAULT_WINDOW

    def prompt_limit(self, alias: str, sampling: Sampling | None = None) -> int:
        """Tokens a prompt to ``alias`` may use: its window minus the tokens kept for the answer."""
        return prompt_limit(self.context_window(alias), (sampling or _NO_SAMPLING).max_tokens)

    def count_tokens(self, alias: str, messages: Sequence[Message]) -> int:
        """Prompt tokens by the alias's first model's tokenizer (an estimate when there is none)."""
        self.check_alias(alias)
        counted = self._count(alias, list(messages))
        return counted if counted is not None else estimate_messages(messages)

    def count_text(self, alias: str, text: str) -> int:
        """Tokens of a piece of text (a chunk, a turn) for the alias's first model."""
        counted = self._count(alias, [{"role": "user", "content": text}])
        return max(0, counted - 7) if counted is not None else estimate_tokens(text)

    def _count(self, alias: str, messages: list[Message]) -> int | None:
        if alias in self._given:  # test doubles and custom backends: the estimate
            return None
        chain = self._chains.get(alias)
        counter = getattr(chain[0].model, "count_tokens", None) if chain else None
        if counter is not None:  # a model that counts with its server's own tokenizer
            counted = counter(messages)
            if counted is not None:
                return int(counted)
        return self.backends.count_tokens(self._entries[alias][0], messages)

    async def ready(self, alias: str) -> None:
        """Find or start the model servers of ``alias`` (as its first call would), so that what
        is counted before the call is counted by their own tokenizer."""
        for routed in self.chain(alias):
            if routed.entry.serve is not None:
                await start_server(routed.model)

    # -- calls -----------------------------------------------------------------------------

    async def complete(
        self,
        alias: str,
        messages: Sequence[Message],
        *,
        sampling: Sampling | None = None,
        inputs: PromptInputs | None = None,
        schema: type[BaseModel] | Mapping[str, Any] | None = None,
        constraint: OutputConstraint | None = None,
        timeout_s: float | None = None,
        tracer: CallTracer | None = None,
        node: str | None = None,
        trace_data: Mapping[str, Any] | None = None,
    ) -> ChatResponse:
        """Answer ``messages`` with the model(s) of ``alias``; see the module docstring.

        With ``schema`` (a Pydantic model or a JSON Schema), ``response.parsed`` is the validated
        object. ``constraint`` (a regex or grammar for free text) reaches the models whose entry
        accepts one (``grammars``); the trace says whether it was sent. Raises :class:`ModelError` when every model fails or the output stays invalid.
        """
        chain = self.chain(alias)
        task = inputs.task if inputs is not None else None
        if task is not None and task in chain[0].entry.offline_tasks:
            # the model declares the offline backend better at this task: it answers from inputs
            declared_by = chain[0].model.name
            chain = [self._task_routed()]
            trace_data = {**(trace_data or {}),
                          "offline_task": {"task": task, "declared_by": declared_by}}
        sampling = sampling or _NO_SAMPLING
        out = output_schema(schema)
        defaults = chain[0].entry.text_sampling
        if defaults is not None and out is None:  # the model's own defaults for free text
            sampling = defaults.merged(sampling)
        self._warn_dropped(chain, sampling, node)
        request = ChatRequest(
            messages=list(messages), sampling=sampling, inputs=inputs,
            response_schema=out.json_schema if out else None,
            schema_name=out.name if out else "output", timeout_s=timeout_s, constraint=constraint,
        )
        call = _Call(alias)
        started, clock = time.time(), time.perf_counter()
        try:
            response, model = await self._answer(chain, request, call)
            if out is not None:
                response = await self._structured(chain, request, response, out, call)
        except ModelError as exc:
            self.usage.record(alias, chain[0].model.name, latency_s=time.perf_counter() - clock,
                              retries=call.retries, failed=True)
            if tracer is not None:
                tracer.record("model_call", alias, data=self._trace(call, chain, request, None, None,
                              trace_data), started=started, status="error", error=str(exc))
            raise
        latency = time.perf_counter() - clock
        cost, source = (0.0, "cache") if call.cache == "hit" else call_cost(
            price=model.entry.price, usage=response.usage, latency_s=response.latency_s or latency,
            provider_cost=response.cost, free=capabilities_of(model.model).free,
        )
        response = response.model_copy(update={"cost": cost})
        self.usage.record(alias, response.model or model.model.name, usage=response.usage, cost=cost,
                          latency_s=latency, retries=call.retries, cache_hit=call.cache == "hit")
        if tracer is not None:
            data = self._trace(call, chain, request, response, source, trace_data)
            tracer.record("model_call", alias, data=data, started=started)
        return response

    async def _answer(
        self, chain: list[RoutedModel], request: ChatRequest, call: _Call
    ) -> tuple[ChatResponse, RoutedModel]:
        primary = chain[0]
        key: CacheKey | None = None
        if self.cache is not None:
            reads_fields = capabilities_of(primary.model).structured_fields  # inputs decide its answer
            key = CacheKey.of(normalised_request(primary.model.name, request, with_inputs=reads_fields))
            hit = self.cache.get(key.key)
            if hit is not None:
                call.cache = "hit"
                return hit, primary
            call.cache = "miss"
            if self.cache.mode == "replay":
                raise self.cache.miss(key.key, primary.model.name, request.messages)
        for index, routed in enumerate(chain):
            attempts = Attempts()
            try:
                response = await with_retries(lambda r=routed: self._once(r, request),
                                              self.retries, attempts)
            except ProviderError as exc:
                call.retries += attempts.retries
                call.failures.append({"model": routed.model.name, "error": str(exc)})
                if index == len(chain) - 1:
                    raise ModelError(_all_failed(call)) from exc
                continue
            call.retries += attempts.retries
            if self.cache is not None and key is not None:
                self.cache.put(key, response)
                call.cache = "stored" if self.cache.writes else "miss"
            return response, routed
        raise ModelError(f"model alias {call.alias!r} has no models")  # an empty chain

    async def _once(self, routed: RoutedModel, request: ChatRequest) -> ChatResponse:
        if routed.entry.serve is not None:  # its model server is found or started first, outside the timeout
            await start_server(routed.model)
        timeout = request.timeout_s or routed.entry.timeout_s or self.timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await routed.model.complete(request)
        except TimeoutError as exc:
            raise ProviderError(
                f"{routed.model.name}: timeout: no answer within {timeout:g} s",
                reason="timeout", model=routed.model.name,
            ) from exc

    async def _structured(
        self, chain: list[RoutedModel], request: ChatRequest, response: ChatResponse,
        out: OutputSchema, call: _Call,
    ) -> ChatResponse:
        try:
            return _validated(response, out)
        except OutputInvalid as first:
            call.repaired = True
            repair = ChatRequest(
                messages=[*request.messages, *out.repair_messages(response.text, str(first))],
                sampling=request.sampling, inputs=request.inputs,
                response_schema=request.response_schema, schema_name=request.schema_name,
                timeout_s=request.timeout_s, constraint=request.constraint,
            )
            again, _ = await self._answer(chain, repair, call)
            again = _with_spent(again, response)  # the first reply's tokens were spent too
            try:
                return _validated(again, out)
            except OutputInvalid as second:
                raise ModelError(
                    f"model alias {call.alias!r} ({again.model or chain[0].model.name}) returned "
                    f"output that does not match the schema {out.name!r}, even after one repair "
                    f"request: {second}"
                ) from second

    def embedder_of(self, alias: str) -> Embedder:
        """The embedder that serves ``alias`` (built on first use): its ``name`` is the concrete
        model (``offline/minilm``, ``litellm:openai/text-embedding-3-small``), which is what a
        collection records, so a profile that switches the alias's model re-embeds."""
        embedder = self._embedders.get(alias)
        if embedder is None:
            self.check_alias(alias)
            embedder = self.backends.embedder(self._entries[alias][0])
            self._embedders[alias] = embedder
        return embedder

    def embedder(self, alias: str = "embed", *, tracer: CallTracer | None = None) -> RoutedEmbedder:
        """An :class:`~agentflow.models.embeddings.Embedder` that embeds through this router with
        ``alias`` (retries, accounting, and a span per call when ``tracer`` is given): what
        retrieval embeds chunks and queries with."""
        from agentflow.models.embeddings.routed import RoutedEmbedder

        self.check_alias(alias)
        return RoutedEmbedder(self, alias, tracer=tracer)

    async def embed(
        self, alias: str, texts: Sequence[str], *, tracer: CallTracer | None = None
    ) -> np.ndarray:
        """Embed ``texts`` with the alias's embedding model (e.g. ``embed``), with retries: a
        float32 array of shape ``(len(texts), dim)``.

        A remote model's vectors are kept in the embedding cache (``models.embedding_cache``,
        keyed by the model and the text), so a text is paid for once; local models keep their
        own. One call is one entry in :attr:`usage` (tokens estimated, the entry's price or
        nothing for a local embedder) and, with ``tracer``, one ``model_call`` span, whatever the
        number of texts: callers embed in batches, so accounting costs nothing per text.
        """
        embedder = self.embedder_of(alias)
        given = alias in self._given_embedders or alias not in self._entries
        entry = None if given else self._entries[alias][0]
        remote = entry is not None and entry.provider_kind() != "offline"
        batch = list(texts)
        cache = self.backends.embedding_cache_of() if remote and batch else None
        unique = list(dict.fromkeys(batch))
        found = cache.get_many(unique, model=embedder.name) if cache is not None else {}
        missing = [t for t in unique if t not in found] if cache is not None else batch
        state = "off" if cache is None else "hit" if not missing else "partial" if found else "miss"
        attempts = Attempts()
        started, clock = time.time(), time.perf_counter()
        computed: np.ndarray | None = None
        try:
            if missing or cache is None:
                vectors = await with_retries(lambda: embedder.embed(missing), self.retries,
                                             attempts)
                computed = as_matrix(vectors, len(missing), embedder.name)
            matrix = self._from_cache(cache, embedder.name, batch, found, missing, computed)
        except ModelError as exc:
            latency = time.perf_counter() - clock
            self.usage.record(alias, embedder.name, latency_s=latency, retries=attempts.retries,
                              failed=True)
            if tracer is not None:
                tracer.record("model_call", alias, data=self._embedding_trace(
                    alias, embedder.name, attempts, latency, state), started=started,
                    status="error", error=str(exc))
            if isinstance(exc, ProviderError):
                raise ModelError(f"embedding with alias {alias!r} failed: {exc}") from exc
            raise
        latency = time.perf_counter() - clock
        usage = Usage(prompt_tokens=sum(estimate_tokens(t) for t in missing), estimated=True)
        cost, source = (0.0, "cache") if state == "hit" else call_cost(
            price=entry.price if entry else None, usage=usage, latency_s=latency,
            provider_cost=None, free=entry is not None and entry.provider_kind() == "offline")
        self.usage.record(alias, embedder.name, usage=usage, cost=cost, latency_s=latency,
                          retries=attempts.retries, cache_hit=state == "hit")
        if tracer is not None:
            data = self._embedding_trace(alias, embedder.name, attempts, latency, state)
            data.update(tokens={"prompt": usage.prompt_tokens, "completion": 0,
                                "total": usage.prompt_tokens, "estimated": True},
                        cost=cost, cost_source=source, response=f"{len(batch)} vectors")
            tracer.record("model_call", alias, data=data, started=started)
        return matrix

    @staticmethod
    def _from_cache(cache: EmbeddingCache | None, model: str, batch: list[str],
                    found: dict[str, Any], missing: list[str],
                    computed: np.ndarray | None) -> np.ndarray:
        """The batch's vectors: the computed ones without a cache; with one, the cache's and the
        computed ones (which are kept)."""
        import numpy as np

        if cache is None:
            assert computed is not None
            return computed
        if computed is not None:
            cache.put_many(list(zip(missing, computed, strict=True)), model=model)
            found = {**found, **dict(zip(missing, computed, strict=True))}
        return np.stack([np.asarray(found[t], dtype=np.float32) for t in batch])

    def _embedding_trace(
        self, alias: str, name: str, attempts: Attempts, latency_s: float, cache: str
    ) -> dict[str, Any]:
        return {"alias": alias, "profile": self.profile, "model": name, "models": [name],
                "cache": cache, "cache_hit": cache == "hit", "retries": attempts.retries,
                "failures": [{"model": name, "error": e} for e in attempts.errors or []],
                "latency_s": latency_s}

    # -- helpers ---------------------------------------------------------------------------

    def _warn_dropped(self, chain: list[RoutedModel], sampling: Sampling, node: str | None) -> None:
        if sampling is _NO_SAMPLING:
            return
        for routed in chain:
            dropped = routed.model.sampling_plan(sampling).dropped
            key = (node or "", routed.model.name, dropped)
            if dropped and key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"{'node ' + repr(node) if node else 'a direct call'}: {routed.model.name} "
                    f"({routed.model.kind}) does not accept {', '.join(dropped)}; "
                    f"{'it is' if len(dropped) == 1 else 'they are'} not sent",
                    SamplingWarning, stacklevel=3,
                )

    def _trace(
        self, call: _Call, chain: list[RoutedModel], request: ChatRequest,
        response: ChatResponse | None, cost_source: str | None, extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        plan = chain[0].model.sampling_plan(request.sampling)
        data: dict[str, Any] = {
            "alias": call.alias, "profile": self.profile,
            "models": [r.model.name for r in chain],
            "messages": [dict(m) for m in request.messages],
            "sampling": request.sampling.provided(),
            "dropped_params": list(plan.dropped), "ignored_params": list(plan.ignored),
            "cache": call.cache, "cache_hit": call.cache == "hit",
            "retries": call.retries, "failures": call.failures, "repaired": call.repaired,
        }
        if request.response_schema is not None:
            data["schema"] = request.schema_name
        if request.constraint is not None:
            data["constraint"] = {"name": request.constraint.name, "kind": request.constraint.kind,
                                  "pattern": request.constraint.pattern,
                                  "sent": chain[0].entry.grammars}
        if response is not None:
            data.update(
                model=response.model, response=response.text, finish_reason=response.finish_reason,
                tokens={"prompt": response.usage.prompt_tokens,
                        "completion": response.usage.completion_tokens,
                        "total": response.usage.total_tokens, "estimated": response.usage.estimated},
                cost=response.cost, cost_source=cost_source, latency_s=response.latency_s,
            )
            if response.ttft_s is not None:
                data["ttft_s"] = response.ttft_s
            if response.choices:
                data["choices"] = list(response.choices)
        data.update(extra or {})
        return data


def _validated(response: ChatResponse, out: OutputSchema) -> ChatResponse:
    if response.parsed is not None:
        parsed = out.validate(_plain(response.parsed))
    else:
        parsed = out.parse(response.text)
    return response.model_copy(update={"parsed": parsed})


def _with_spent(response: ChatResponse, earlier: ChatResponse) -> ChatResponse:
    """``response`` with the tokens, cost and time of an earlier reply of the same call added."""
    usage = Usage(
        prompt_tokens=response.usage.prompt_tokens + earlier.usage.prompt_tokens,
        completion_tokens=response.usage.completion_tokens + earlier.usage.completion_tokens,
        estimated=response.usage.estimated or earlier.usage.estimated,
    )
    costs = [c for c in (response.cost, earlier.cost) if c is not None]
    return response.model_copy(update={
        "usage": usage,
        "cost": sum(costs) if costs else None,
        "latency_s": response.latency_s + earlier.latency_s,
    })


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def _all_failed(call: _Call) -> str:
    tried = "; ".join(f"{f['model']}: {f['error']}" for f in call.failures)
    return f"every model of alias {call.alias!r} failed ({len(call.failures)} tried): {tried}"


def _entry_of(model: ChatModel) -> ModelEntry:
    kind = model.kind if model.kind in get_args(ProviderKind) else None
    window = getattr(model, "context_window", None)
    return ModelEntry(model=model.name, kind=kind, context_window=window)  # type: ignore[arg-type]
