"""The retry policy: the project's only use of tenacity.

Transient :class:`~headwater.errors.HeadwaterError` failures (SERVICE_BUSY,
SERVICE_TIMEOUT, QUOTA_EXCEEDED) are retried with exponential backoff and full
jitter, floored by the server's RetryInfo, within a bounded number of attempts
and a total deadline; anything else is raised at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from headwater.errors import HeadwaterError

__all__ = ["RetryPolicy", "is_transient", "retry_async", "retry_sync", "DEFAULT_POLICY"]

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying."""
    return isinstance(exc, HeadwaterError) and exc.is_transient


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of a retry loop, as the Azure SDKs' ``retry_total`` / backoff options."""

    max_attempts: int = 6
    max_delay_s: float = 30.0
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0

    def _wait(self) -> Callable[[tenacity.RetryCallState], float]:
        jitter = wait_random_exponential(multiplier=self.initial_backoff_s, max=self.max_backoff_s)

        def wait(state: tenacity.RetryCallState) -> float:
            delay = jitter(state)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, HeadwaterError) and exc.retry_after:
                delay = max(delay, min(exc.retry_after, self.max_backoff_s * 4))
            return delay

        return wait

    def backoff(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``exc``: the same
        exponential backoff with full jitter, floored by the error's ``retry_after``, for
        loops that retry without a bound (a job's held output, its input readers)."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # no Retrying: only the wait is asked
        state.attempt_number = max(1, attempt)
        if exc is not None:
            fut: tenacity.Future = tenacity.Future(attempt)
            fut.set_exception(exc)
            state.outcome = fut
        return self._wait()(state)

    def kwargs(self) -> dict[str, Any]:
        return dict(
            retry=retry_if_exception(is_transient),
            wait=self._wait(),
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_delay_s),
            reraise=True,
        )

    def async_retrying(self) -> AsyncRetrying:
        return AsyncRetrying(**self.kwargs())

    def retrying(self) -> Retrying:
        return Retrying(**self.kwargs())


DEFAULT_POLICY = RetryPolicy()


async def retry_async(fn: Callable[[], Awaitable[T]], policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """Await ``fn()`` until it succeeds, retrying transient failures under ``policy``."""
    async for attempt in policy.async_retrying():
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover


def retry_sync(fn: Callable[[], T], policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """Call ``fn()`` until it succeeds, retrying transient failures under ``policy``."""
    for attempt in policy.retrying():
        with attempt:
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover
