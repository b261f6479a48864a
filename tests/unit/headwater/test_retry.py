"""The tenacity policy retries transient errors only, within its bounds."""

from __future__ import annotations

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async, retry_sync

FAST = RetryPolicy(max_attempts=4, max_delay_s=5, initial_backoff_s=0.001, max_backoff_s=0.01)


def flaky(failures: list[HeadwaterError]):
    calls = []

    def fn():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return len(calls)

    return fn, calls


def test_transient_errors_are_retried_until_success():
    fn, calls = flaky([HeadwaterError(Reason.SERVICE_BUSY, "busy"),
                       HeadwaterError(Reason.QUOTA_EXCEEDED, "quota")])
    assert retry_sync(fn, FAST) == 3
    assert len(calls) == 3


def test_permanent_error_fails_at_once():
    fn, calls = flaky([HeadwaterError(Reason.INVALID_ARGUMENT, "bad")])
    with pytest.raises(HeadwaterError) as info:
        retry_sync(fn, FAST)
    assert info.value.reason is Reason.INVALID_ARGUMENT
    assert len(calls) == 1


def test_attempts_are_bounded_and_the_last_error_is_raised():
    fn, calls = flaky([HeadwaterError(Reason.SERVICE_TIMEOUT, f"t{i}") for i in range(10)])
    with pytest.raises(HeadwaterError) as info:
        retry_sync(fn, FAST)
    assert len(calls) == 4
    assert info.value.message == "t3"


def test_other_exceptions_are_not_retried():
    calls = []

    def fn():
        calls.append(1)
        raise ValueError("nope")

    with pytest.raises(ValueError):
        retry_sync(fn, FAST)
    assert len(calls) == 1


async def test_async_retry_honours_retry_after_floor():
    import time

    errors = [HeadwaterError(Reason.SERVICE_BUSY, "busy", retry_after=0.05)]
    calls = []

    async def fn():
        calls.append(time.monotonic())
        if errors:
            raise errors.pop(0)
        return "ok"

    assert await retry_async(fn, FAST) == "ok"
    assert calls[1] - calls[0] >= 0.04


def test_backoff_of_unbounded_loops_is_the_policys_and_honours_retry_after():
    policy = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=2.0)
    delays = [policy.backoff(n) for n in range(1, 40)]
    assert all(0 <= d <= 2.0 for d in delays) and max(delays) > 0.2  # grows, jittered, capped
    busy = HeadwaterError(Reason.SERVICE_BUSY, "busy", retry_after=1.5)
    assert all(policy.backoff(1, busy) >= 1.5 for _ in range(20))  # never sooner than RetryInfo
