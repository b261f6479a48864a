"""Waiting on facts, not on time: the suite's one polling loop.

Tests synchronise on what the contracts report: a job's state, its metrics (last checkpoint id
and time, input events, absolute watermarks per input), a hub's offsets, a service's health,
the rows in a sink. :func:`wait_until` reads such a fact until it holds, and fails naming the
fact and its last value when it does not within the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from headwater.errors import HeadwaterError

T = TypeVar("T")


def wait_until(get: Callable[[], T], predicate: Callable[[T], Any] = bool, *, timeout: float = 20.0,
               every: float = 0.1, what: str = "condition", fail: bool = True,
               retry_on: tuple[type[BaseException], ...] = (HeadwaterError, ConnectionError)) -> T:
    """Call ``get()`` until ``predicate(value)`` holds; return that value. A ``retry_on`` error
    (a service that is restarting) counts as "not yet". When the timeout passes: AssertionError
    naming ``what`` and the last value, or, with ``fail=False``, the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = get()
            if predicate(last):
                return last
        except retry_on as exc:
            last = exc
        if time.monotonic() >= deadline:
            if fail:
                raise AssertionError(f"{what} not reached in {timeout}s; last: {last!r}"[:4000])
            return last
        # The one sleep of the polling: the facts above are read through the contracts (none of
        # them pushes), so between two reads the test waits this interval.
        time.sleep(every)
