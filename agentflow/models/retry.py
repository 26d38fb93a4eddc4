"""Retries of transient provider failures, through tenacity.

Retried: rate limits, timeouts, 5xx and connection errors (:data:`~agentflow.models.types.RETRYABLE`).
Nothing else: a bad request, an authentication failure or an invalid reply fails the attempt at once.
Waits are drawn uniformly from [0, min(max_wait_s, initial_wait_s * 2^(attempt - 1))] (exponential
backoff with full jitter); a provider's ``Retry-After`` is honoured as given, and one longer than
``max_retry_after_s`` sends the call to the next fallback instead of sleeping. tenacity runs the
attempts after the first and is imported on the first failure.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from agentflow.models.profiles import RetryConfig
from agentflow.models.types import ProviderError

T = TypeVar("T")


@dataclass(slots=True)
class Attempts:
    """What happened on one model: how many tries, and why the failed ones failed."""

    count: int = 0
    errors: list[str] | None = None

    @property
    def retries(self) -> int:
        return max(0, self.count - 1)

    def failed(self, exc: BaseException) -> None:
        if self.errors is None:
            self.errors = []
        self.errors.append(str(exc))


def should_retry(exc: BaseException, config: RetryConfig) -> bool:
    """True for a transient failure whose ``Retry-After`` (if any) is within the cap."""
    if not isinstance(exc, ProviderError) or not exc.retryable:
        return False
    return exc.retry_after is None or exc.retry_after <= config.max_retry_after_s


class _Wait:
    """Exponential backoff with full jitter, unless the provider said how long to wait.

    ``offset`` shifts tenacity's attempt numbers: it runs from the second attempt on.
    """

    def __init__(self, config: RetryConfig, offset: int = 1) -> None:
        self.config = config
        self.offset = offset

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return wait_after(exc, retry_state.attempt_number + self.offset, self.config)


def wait_after(exc: BaseException | None, attempt: int, config: RetryConfig) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    after = getattr(exc, "retry_after", None)
    if after is not None:
        return float(after)
    high = min(config.max_wait_s, config.initial_wait_s * 2 ** (attempt - 1))
    return random.uniform(0.0, high)


@lru_cache(maxsize=64)
def _strategies(config: RetryConfig) -> tuple[Any, Any, Any]:
    """tenacity's stop, wait and retry objects for the attempts after the first (built once)."""
    from tenacity import retry_if_exception, stop_after_attempt

    return (
        stop_after_attempt(config.max_attempts - 1),
        _Wait(config, offset=1),
        retry_if_exception(lambda exc: should_retry(exc, config)),
    )


async def with_retries(
    call: Callable[[], Awaitable[T]],
    config: RetryConfig,
    attempts: Attempts,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or runs out of attempts.

    The first attempt is a plain call, so a call that succeeds pays nothing for the retry
    machinery; after a transient failure, tenacity runs the remaining attempts.
    """
    attempts.count += 1
    try:
        return await call()
    except ProviderError as exc:
        attempts.failed(exc)
        if config.max_attempts == 1 or not should_retry(exc, config):
            raise
        await sleep(wait_after(exc, 1, config))

    from tenacity import AsyncRetrying

    stop, wait, retry = _strategies(config)
    retrying = AsyncRetrying(stop=stop, wait=wait, retry=retry, sleep=sleep, reraise=True)
    async for attempt in retrying:
        with attempt:
            attempts.count += 1
            try:
                return await call()
            except ProviderError as exc:
                attempts.failed(exc)
                raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
