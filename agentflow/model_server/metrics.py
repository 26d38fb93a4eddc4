"""Prometheus text exposition for the server (no client library: a handful of counters, gauges, histograms)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREFIX = "agentflow_model_server"


@dataclass
class Histogram:
    """Cumulative-bucket histogram as Prometheus expects it."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.n += 1
        self.total += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, help_text: str) -> list[str]:
        """Exposition lines for this histogram."""
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts, strict=True)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return out


class ServerMetrics:
    """Thread-safe counters the engine thread updates and ``/metrics`` renders."""

    def __init__(self, *, window_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self.window_s = window_s
        self.queue_depth = 0
        self.running = 0
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.finished: dict[str, int] = {}
        self.rejected = 0
        self.scored_prompts = 0
        self.score_passes = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.latency = Histogram(TTFT_BUCKETS)
        self._recent: deque[tuple[float, int]] = deque()

    def set_load(self, *, queue_depth: int, running: int) -> None:
        """Current queue depth and decode batch size."""
        with self._lock:
            self.queue_depth, self.running = queue_depth, running

    def record_tokens(self, count: int) -> None:
        """Generated tokens this step (feeds the tokens/s gauge)."""
        if count <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self.generated_tokens += count
            self._recent.append((now, count))
            self._trim(now)

    def record_first_token(self, seconds: float, prompt_tokens: int) -> None:
        """Time to first token of a request, and its prompt size."""
        with self._lock:
            self.ttft.observe(seconds)
            self.prompt_tokens += prompt_tokens

    def record_finish(self, reason: str, seconds: float) -> None:
        """A request ended (``stop``, ``length``, ``abort`` or ``error``) after ``seconds``."""
        with self._lock:
            self.finished[reason] = self.finished.get(reason, 0) + 1
            self.latency.observe(seconds)

    def record_scored(self, prompts: int, passes: int) -> None:
        """Prompts scored for their log-probabilities (``echo``), in ``passes`` batched forward passes."""
        with self._lock:
            self.scored_prompts += prompts
            self.score_passes += passes

    def record_rejected(self) -> None:
        """A request was turned away because the queue was full."""
        with self._lock:
            self.rejected += 1

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def tokens_per_second(self) -> float:
        """Generated tokens per second over the sliding window."""
        with self._lock:
            self._trim(time.monotonic())
            return sum(c for _, c in self._recent) / self.window_s

    def render(self) -> str:
        """The Prometheus text format."""
        tps = self.tokens_per_second()
        p = PREFIX
        with self._lock:
            lines = [
                f"# HELP {p}_queue_depth Requests waiting for a slot.", f"# TYPE {p}_queue_depth gauge",
                f"{p}_queue_depth {self.queue_depth}",
                f"# HELP {p}_running_batch_size Sequences in the decode batch.",
                f"# TYPE {p}_running_batch_size gauge", f"{p}_running_batch_size {self.running}",
                f"# HELP {p}_tokens_per_second Generated tokens per second over the last {self.window_s:g} s.",
                f"# TYPE {p}_tokens_per_second gauge", f"{p}_tokens_per_second {tps:.3f}",
                f"# HELP {p}_prompt_tokens_total Prompt tokens prefilled.", f"# TYPE {p}_prompt_tokens_total counter",
                f"{p}_prompt_tokens_total {self.prompt_tokens}",
                f"# HELP {p}_generation_tokens_total Tokens generated.",
                f"# TYPE {p}_generation_tokens_total counter", f"{p}_generation_tokens_total {self.generated_tokens}",
                f"# HELP {p}_requests_finished_total Requests ended, by finish reason.",
                f"# TYPE {p}_requests_finished_total counter",
            ]
            lines += [f'{p}_requests_finished_total{{reason="{r}"}} {c}' for r, c in sorted(self.finished.items())]
            lines += [
                f"# HELP {p}_requests_rejected_total Requests refused with 503 because the queue was full.",
                f"# TYPE {p}_requests_rejected_total counter", f"{p}_requests_rejected_total {self.rejected}",
                f"# HELP {p}_scored_prompts_total Prompts scored for their log-probabilities (echo).",
                f"# TYPE {p}_scored_prompts_total counter", f"{p}_scored_prompts_total {self.scored_prompts}",
                f"# HELP {p}_score_passes_total Batched forward passes that scored them.",
                f"# TYPE {p}_score_passes_total counter", f"{p}_score_passes_total {self.score_passes}",
            ]
            lines += self.ttft.lines(f"{p}_time_to_first_token_seconds", "Seconds from arrival to first token.")
            lines += self.latency.lines(f"{p}_request_latency_seconds", "Seconds from arrival to the last token.")
        return "\n".join(lines) + "\n"
