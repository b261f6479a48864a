"""Helpers for the data-path attack tests: one unary call to a real service, errors typed."""

from __future__ import annotations

from typing import Any

from headwater.channel import sync_channel
from headwater.errors import HeadwaterError
from tests.conftest import conn_for


def call(address: str, policy: Any, module: Any, stub: str, method: str, request: Any) -> Any:
    """``module.<stub>(channel).<method>(request)``; a failure comes back as HeadwaterError."""
    import grpc

    ch = sync_channel(conn_for(address, policy))
    try:
        return getattr(getattr(module, stub)(ch), method)(request, timeout=30)
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None
    finally:
        ch.close()


def refused(fn: Any, *args: Any) -> HeadwaterError:
    """The HeadwaterError ``fn(*args)`` raises; AssertionError when it succeeds."""
    try:
        result = fn(*args)
    except HeadwaterError as exc:
        return exc
    raise AssertionError(f"expected a refusal, got {result!r}")
