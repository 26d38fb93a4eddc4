"""The continuous-batching engine: slots, prefill, the decode loop, sampling and stop logic.

Requests wait in a queue until enough KV-cache slots are free (one per sample: ``n`` samples share one
prefill, whose cache is copied into their slots). Between decode steps finished sequences leave and waiting
ones join. On a GPU each step replays a CUDA graph captured for its batch-size bucket, and while the host
reads one step's tokens the next step already runs (a step computed for a sequence that turned out to be
finished is discarded). Everything here is synchronous; :mod:`agentflow.model_server.scheduler` drives it from a
thread and routes its outputs to HTTP streams.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentflow.model_server.constrained import CompiledFormat, Constraint, GrammarCompiler
from agentflow.model_server.model import LlamaModel
from agentflow.model_server.sampling import SamplingParams
from agentflow.model_server.slots import SlotSampling
from agentflow.model_server.tokenizer import TextStream, Tokenizer

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
NO_LOGPROB = -9999.0
"""The log-probability shown for a token the sampler did not draw (OpenAI's value for 'not among the likely')."""


@dataclass
class EngineConfig:
    """Capacity and execution choices of an engine."""

    max_batch: int = 64
    max_len: int = 2048
    max_prefill_tokens: int = 8192
    cuda_graphs: bool = True
    overlap: bool = True


@dataclass
class EngineRequest:
    """One request as the engine sees it: prompt ids, sampling, ``n`` samples, an optional output format."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    n: int = 1
    constraint: CompiledFormat | None = None
    arrival: float = field(default_factory=time.monotonic)


@dataclass
class LogprobEntry:
    """The chosen token's log-probability and the most likely alternatives, for one position."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class StepOutput:
    """What one step produced for one sample of a request."""

    request_id: str
    index: int
    token_ids: list[int]
    text: str = ""
    logprobs: list[LogprobEntry] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0


@dataclass
class Sequence:
    """One sample in flight: its slot, generated tokens and text state."""

    request: EngineRequest
    index: int
    slot: int
    seed: int
    tokens: list[int] = field(default_factory=list)
    text: TextStream | None = None
    constraint: Constraint | None = None
    finished: bool = False

    @property
    def position(self) -> int:
        """Cache position of the last token (the next decode input)."""
        return len(self.request.prompt_ids) + len(self.tokens) - 1


@dataclass
class _Launch:
    rows: list[Sequence | None]
    tokens: torch.Tensor
    logprobs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    event: Any


class Engine:
    """Runs requests to completion, one :meth:`step` at a time."""

    def __init__(
        self, model: LlamaModel, config: EngineConfig, *, tokenizer: Tokenizer | None = None,
        eos_ids: tuple[int, ...] = (), seed_source: Callable[[], int] | None = None,
    ) -> None:
        import random

        import torch

        self.model, self.config, self.tokenizer = model, config, tokenizer
        self.device = model.device
        self.eos_ids = eos_ids or model.spec.eos_token_ids
        self.slots = SlotSampling(config.max_batch, model.spec.vocab_size, self.device)
        self.waiting: deque[EngineRequest] = deque()
        self.running: dict[int, Sequence] = {}
        self._free = list(range(config.max_batch))
        self._aborts: set[str] = set()
        self._inflight: _Launch | None = None
        self._changed = False
        self._rng = random.Random()
        self._seed_source = seed_source or (lambda: self._rng.getrandbits(63))
        self._grammars: GrammarCompiler | None = None  # built on the first constrained request
        self._grammars_lock = threading.Lock()
        self.tokens_buf = torch.zeros(config.max_batch, dtype=torch.long, device=self.device)
        self.pos_buf = torch.zeros(config.max_batch, dtype=torch.long, device=self.device)
        self.active = torch.zeros(config.max_batch, dtype=torch.long, device=self.device)
        self.buckets = sorted({b for b in (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < config.max_batch}
                              | {config.max_batch})
        self._graphs: dict[int, tuple[Any, torch.Tensor]] = {}
        self.graph_choices: dict[int, dict[str, object]] = {}
        self.on_gpu = self.device.type == "cuda"
        self._ring = 0
        self._pinned = [torch.zeros(config.max_batch, dtype=torch.long, pin_memory=self.on_gpu) for _ in range(3)]
        if self.on_gpu and config.cuda_graphs:
            try:
                self.capture_graphs()
            except RuntimeError as exc:  # an eager decode step is slower but correct
                log.warning("CUDA graph capture failed (%s); decoding without graphs", exc)
                self._graphs.clear()
                torch.cuda.synchronize()

    # ------------------------------------------------------------------ public API
    def add_request(self, request: EngineRequest) -> None:
        """Queue a request; it joins the batch when ``n`` slots are free. Raises ``ValueError`` if it can never fit."""
        if request.n > self.config.max_batch:
            raise ValueError(f"n={request.n} exceeds the server's max batch {self.config.max_batch}")
        if len(request.prompt_ids) >= self.config.max_len:
            raise ValueError(f"prompt of {len(request.prompt_ids)} tokens leaves no room in {self.config.max_len}")
        self.waiting.append(request)

    def abort(self, request_id: str) -> None:
        """Stop a request (queued or running); its slots free at the next step."""
        self._aborts.add(request_id)

    def has_work(self) -> bool:
        """Whether a step would do anything."""
        return bool(self.waiting or self.running or self._inflight or self._aborts)

    def reset(self, reason: str = "error") -> list[StepOutput]:
        """Finish everything (after a failed step): running sequences end with ``reason``, the queue empties."""
        self._inflight = None
        self._aborts.clear()
        outputs = [StepOutput(r.request_id, i, [], finish_reason=reason) for r in self.waiting for i in range(r.n)]
        self.waiting.clear()
        outputs += [self._finish(seq, reason) for seq in list(self.running.values())]
        return outputs

    @property
    def num_running(self) -> int:
        """Sequences in the decode batch."""
        return len(self.running)

    def step(self) -> list[StepOutput]:
        """Admit what fits, run one decode step (overlapped with the previous one when the batch is stable)."""
        outputs = self._apply_aborts()
        if self._inflight is None:
            outputs += self._admit()
            if not self.running:
                return outputs
            self._upload_inputs()
            self._inflight = self._launch()
        nxt = self._launch() if self._can_chain() else None
        outputs += self._process(self._inflight)
        self._inflight = nxt
        if nxt is not None and (self._changed or self._admissible() or self._aborts):
            outputs += self._process(nxt)
            self._inflight = None
        return outputs

    # ------------------------------------------------------------------ admission and prefill
    def _admissible(self) -> bool:
        return bool(self.waiting) and self.waiting[0].n <= len(self._free)

    def _apply_aborts(self) -> list[StepOutput]:
        if not self._aborts or self._inflight is not None:
            return []
        outputs: list[StepOutput] = []
        ids, self._aborts = self._aborts, set()
        for request in [r for r in self.waiting if r.request_id in ids]:
            self.waiting.remove(request)
            outputs += [StepOutput(request.request_id, i, [], finish_reason="abort") for i in range(request.n)]
        for seq in list(self.running.values()):
            if seq.request.request_id in ids:
                outputs.append(self._finish(seq, "abort"))
        return outputs

    def _admit(self) -> list[StepOutput]:
        import torch

        batch: list[tuple[EngineRequest, list[int]]] = []
        budget = self.config.max_prefill_tokens
        while self._admissible() and (not batch or len(self.waiting[0].prompt_ids) <= budget):
            request = self.waiting.popleft()
            budget -= len(request.prompt_ids)
            batch.append((request, [heapq.heappop(self._free) for _ in range(request.n)]))
        if not batch:
            return []
        self._changed = True
        length = max(len(r.prompt_ids) for r, _ in batch)
        tokens = torch.zeros((len(batch), length), dtype=torch.long)
        for i, (r, _) in enumerate(batch):
            tokens[i, : len(r.prompt_ids)] = torch.tensor(r.prompt_ids)
        lengths = torch.tensor([len(r.prompt_ids) for r, _ in batch], device=self.device)
        first_slots = torch.tensor([s[0] for _, s in batch], device=self.device)
        logits = self.model.prefill(tokens.to(self.device), lengths, first_slots)
        rows: list[Sequence] = []
        row_logits: list[int] = []
        for i, (request, slots) in enumerate(batch):
            self.model.copy_slot(slots[0], slots[1:], len(request.prompt_ids))
            base_seed = request.params.seed if request.params.seed is not None else self._seed_source()
            for index, slot in enumerate(slots):
                seq = self._new_sequence(request, index, slot, base_seed + index)
                self.running[slot] = seq
                rows.append(seq)
                row_logits.append(i)
        picked = logits[torch.tensor(row_logits, device=self.device)]
        return self._sample_and_emit(picked, rows)

    def _new_sequence(self, request: EngineRequest, index: int, slot: int, seed: int) -> Sequence:
        seq = Sequence(request=request, index=index, slot=slot, seed=seed & ((1 << 63) - 1))
        if self.tokenizer is not None:
            seq.text = TextStream(self.tokenizer, request.prompt_ids, request.params.stop)
        if request.constraint is not None:
            seq.constraint = self.grammars().constraint(request.constraint)
        self.slots.assign(slot, request.params, seq.seed, request.prompt_ids)
        return seq

    def grammars(self) -> GrammarCompiler:
        """The llguidance compiler for this model's tokenizer (built on first use; the server validates
        formats with it from other threads)."""
        with self._grammars_lock:
            if self._grammars is None:
                if self.tokenizer is None:
                    raise ValueError("constrained decoding needs the model's tokenizer")
                self._grammars = GrammarCompiler(self.tokenizer.hf, vocab_size=self.model.spec.vocab_size,
                                                 eos_ids=self.eos_ids)
            return self._grammars

    # ------------------------------------------------------------------ decode
    def _bucket(self) -> int:
        top = max(self.running) + 1
        return next(b for b in self.buckets if b >= top)

    def _upload_inputs(self) -> None:
        import torch

        batch = self._bucket()
        toks, pos, act = [0] * batch, [0] * batch, [0] * batch
        for slot, seq in self.running.items():
            toks[slot], pos[slot], act[slot] = seq.tokens[-1], seq.position, 1
        self.tokens_buf[:batch].copy_(torch.tensor(toks), non_blocking=True)
        self.pos_buf[:batch].copy_(torch.tensor(pos), non_blocking=True)
        self.active[:batch].copy_(torch.tensor(act), non_blocking=True)
        self._changed = False

    def _can_chain(self) -> bool:
        if not self.config.overlap or self._changed or self._aborts or self._admissible():
            return False
        return all(seq.constraint is None for seq in self.running.values())

    def _forward(self, batch: int) -> torch.Tensor:
        graph = self._graphs.get(batch)
        if graph is not None:
            graph[0].replay()
            return graph[1]
        # Host positions lag the device by one step while steps are chained; one masked extra key is harmless.
        attend = self.model.max_len if self.on_gpu else max(s.position for s in self.running.values()) + 2
        attend = min(attend, self.model.max_len)
        return self.model.decode(self.tokens_buf[:batch], self.pos_buf[:batch], attend)

    def _launch(self) -> _Launch:
        batch = self._bucket()
        logits = self._forward(batch)
        rows: list[Sequence | None] = [self.running.get(i) for i in range(batch)]
        allowed = self._grammar_masks(rows, logits.shape[-1])
        tokens = self.slots.sample(logits, batch, allowed)
        want_lp = max((s.request.params.logprobs or 0 for s in rows if s is not None and
                       s.request.params.logprobs is not None), default=-1)
        lp = self.slots.logprobs(logits, tokens, want_lp) if want_lp >= 0 else None
        # Inputs of the next step, on the device, so a chained step needs nothing from the host.
        self.tokens_buf[:batch].copy_(tokens)
        self.pos_buf[:batch].add_(self.active[:batch]).clamp_(max=self.model.max_len - 1)
        return self._to_host(rows, tokens, lp)

    def _to_host(self, rows: list[Sequence | None], tokens: torch.Tensor, lp: Any) -> _Launch:
        import torch

        if not self.on_gpu:
            return _Launch(rows, tokens, lp, None)
        # A ring of pinned buffers: two launches can be in flight, and a pageable copy would block.
        self._ring = (self._ring + 1) % len(self._pinned)
        host_tokens = self._pinned[self._ring][: tokens.shape[0]]
        host_tokens.copy_(tokens, non_blocking=True)
        host_lp = tuple(t.to("cpu") for t in lp) if lp is not None else None
        event = torch.cuda.Event()
        event.record()
        return _Launch(rows, host_tokens, host_lp, event)

    def _grammar_masks(self, rows: list[Sequence | None], vocab: int) -> torch.Tensor | None:
        import torch

        constrained = [(s.constraint, i) for i, s in enumerate(rows) if s is not None and s.constraint is not None]
        if not constrained:
            return None
        return torch.from_numpy(self.grammars().masks(constrained, len(rows), vocab)).to(self.device)

    def _sample_and_emit(self, logits: torch.Tensor, rows: list[Sequence]) -> list[StepOutput]:
        allowed = self._grammar_masks(list(rows), logits.shape[-1])
        tokens = self.slots.sample_rows(logits, [s.slot for s in rows], allowed)
        want = max((s.request.params.logprobs for s in rows if s.request.params.logprobs is not None), default=-1)
        lp = self.slots.logprobs(logits, tokens, want) if want >= 0 else None
        launch = self._to_host(list(rows), tokens, lp)
        return self._process(launch)

    def _process(self, launch: _Launch) -> list[StepOutput]:
        if launch.event is not None:
            launch.event.synchronize()
        tokens = launch.tokens.tolist()
        lp = [t.tolist() for t in launch.logprobs] if launch.logprobs is not None else None
        outputs: list[StepOutput] = []
        for i, seq in enumerate(launch.rows):
            if seq is None or seq.finished:
                continue
            entry = None
            if lp is not None and seq.request.params.logprobs is not None:
                k = seq.request.params.logprobs
                entry = LogprobEntry(tokens[i], lp[0][i], list(zip(lp[2][i][:k], lp[1][i][:k], strict=True)))
            outputs.append(self._accept(seq, tokens[i], entry))
        return outputs

    def _accept(self, seq: Sequence, token: int, entry: LogprobEntry | None) -> StepOutput:
        params = seq.request.params
        out = StepOutput(seq.request.request_id, seq.index, [], prompt_tokens=len(seq.request.prompt_ids))
        if seq.constraint is not None and token not in self.eos_ids:
            left = min(params.max_tokens - len(seq.tokens), self.model.max_len - seq.position - 1) - 1
            kept = seq.constraint.accept(token, left)
            if kept != token:  # the closing path's token instead of one that could not close in time
                self.slots.replace_token(seq.slot, token, kept)
                entry = _substituted(entry, kept)
                token = kept
        stop_token = (token in self.eos_ids and not params.ignore_eos) or token in params.stop_token_ids
        if stop_token:
            return self._finish(seq, "stop", out)
        seq.tokens.append(token)
        out.token_ids.append(token)
        if entry is not None:
            out.logprobs.append(entry)
        if seq.text is not None:
            delta = seq.text.add(token)
            out.text = delta.text
            if delta.stopped:
                return self._finish(seq, "stop", out)
        if seq.constraint is not None and seq.constraint.complete:
            return self._finish(seq, "stop", out)
        if len(seq.tokens) >= params.max_tokens or seq.position + 1 >= self.model.max_len:
            return self._finish(seq, "length", out)
        return out

    def _finish(self, seq: Sequence, reason: str, out: StepOutput | None = None) -> StepOutput:
        out = out or StepOutput(seq.request.request_id, seq.index, [], prompt_tokens=len(seq.request.prompt_ids))
        if seq.text is not None and reason != "abort":
            out.text += seq.text.finish().text
        out.finish_reason = reason
        seq.finished = True
        self.running.pop(seq.slot, None)
        self.slots.release(seq.slot)
        heapq.heappush(self._free, seq.slot)
        self._changed = True
        return out

    # ------------------------------------------------------------------ CUDA graphs
    def capture_graphs(self) -> None:
        """Capture one decode graph per batch-size bucket (largest first, sharing one memory pool).

        Where the ops offer variants for a bucket (cuBLAS or a Triton GEMV at batch 1), a graph is captured
        with each, their replays are timed, and the faster is kept (``graph_choices`` records which).
        """
        import torch

        pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        ops = self.model.ops
        variants = getattr(ops, "variants", None)
        with torch.cuda.stream(stream):
            for batch in reversed(self.buckets):
                best: tuple[float, Any, torch.Tensor, dict[str, object]] | None = None
                for setting in variants(batch) if variants is not None else [{}]:
                    for key, value in setting.items():
                        setattr(ops, key, value)
                    graph, out = self._capture(batch, pool, stream)
                    took = self._time_replays(graph, stream)
                    if best is None or took < best[0]:
                        best = (took, graph, out, setting)
                assert best is not None
                self._graphs[batch] = (best[1], best[2])
                self.graph_choices[batch] = best[3]
        if hasattr(ops, "gemv"):
            ops.gemv = False  # eager calls (none on a GPU with graphs) stay on cuBLAS
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()

    def _capture(self, batch: int, pool: Any, stream: Any) -> tuple[Any, torch.Tensor]:
        import torch

        for _ in range(2):
            self.model.decode(self.tokens_buf[:batch], self.pos_buf[:batch], self.model.max_len)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, stream=stream):
            out = self.model.decode(self.tokens_buf[:batch], self.pos_buf[:batch], self.model.max_len)
        return graph, out

    @staticmethod
    def _time_replays(graph: Any, stream: Any, reps: int = 10) -> float:
        import torch

        for _ in range(2):
            graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        for _ in range(reps):
            graph.replay()
        end.record(stream)
        end.synchronize()
        return float(start.elapsed_time(end)) / reps


def _substituted(entry: LogprobEntry | None, token: int) -> LogprobEntry | None:
    """A logprob entry for ``token`` put in place of the drawn one: its log-probability from the top list."""
    if entry is None:
        return None
    return LogprobEntry(token, dict(entry.top).get(token, NO_LOGPROB), entry.top)
