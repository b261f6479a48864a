"""One error model for every service and client, after Event Hubs' EventHubsException.

On the wire an error is a gRPC status code plus a ``google.rpc.ErrorInfo`` detail
(domain ``headwater``) whose ``reason`` is an :class:`Reason` value; transient
errors also carry ``google.rpc.RetryInfo``. In Python it is a
:class:`HeadwaterError` with ``.reason`` and ``.is_transient``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, cast

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DOMAIN",
    "HeadwaterError",
    "PluginError",
    "QueryCompileError",
    "Reason",
    "TRANSIENT",
    "CODES",
]

DOMAIN = "headwater"


class Reason(enum.StrEnum):
    """Failure reasons; equal, name for name, to ``headwater.v1.ErrorReason``."""

    SERVICE_BUSY = "SERVICE_BUSY"
    SERVICE_TIMEOUT = "SERVICE_TIMEOUT"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    MESSAGE_SIZE_EXCEEDED = "MESSAGE_SIZE_EXCEEDED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    QUERY_COMPILE_ERROR = "QUERY_COMPILE_ERROR"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    SCHEMA_INCOMPATIBLE = "SCHEMA_INCOMPATIBLE"
    CONSUMER_DISCONNECTED = "CONSUMER_DISCONNECTED"
    RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
    UNAUTHORIZED = "UNAUTHORIZED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    JOB_FAILED = "JOB_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: gRPC status code of each reason (DESIGN.md, Errors and retries).
CODES: dict[Reason, grpc.StatusCode] = {
    Reason.SERVICE_BUSY: grpc.StatusCode.UNAVAILABLE,
    Reason.SERVICE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Reason.QUOTA_EXCEEDED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.MESSAGE_SIZE_EXCEEDED: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.QUERY_COMPILE_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.RESOURCE_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.SCHEMA_INCOMPATIBLE: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.CONSUMER_DISCONNECTED: grpc.StatusCode.ABORTED,
    Reason.RESOURCE_ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.PRECONDITION_FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.JOB_FAILED: grpc.StatusCode.ABORTED,
    Reason.INTERNAL_ERROR: grpc.StatusCode.INTERNAL,
}

#: Reasons a client should retry.
TRANSIENT: frozenset[Reason] = frozenset(
    {Reason.SERVICE_BUSY, Reason.SERVICE_TIMEOUT, Reason.QUOTA_EXCEEDED}
)

# Without an ErrorInfo detail (a proxy, a dead server), these codes still mean
# "try again".
_CODE_FALLBACK: dict[grpc.StatusCode, Reason] = {
    grpc.StatusCode.UNAVAILABLE: Reason.SERVICE_BUSY,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reason.SERVICE_TIMEOUT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.QUOTA_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: Reason.RESOURCE_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: Reason.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS: Reason.RESOURCE_ALREADY_EXISTS,
    grpc.StatusCode.UNAUTHENTICATED: Reason.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    grpc.StatusCode.ABORTED: Reason.CONSUMER_DISCONNECTED,
    grpc.StatusCode.FAILED_PRECONDITION: Reason.PRECONDITION_FAILED,
}


class HeadwaterError(Exception):
    """A failure with a :class:`Reason`, as clients and services see it.

    :param reason: why it failed.
    :param message: what a person should know, naming what is wrong.
    :param metadata: string key/values (``field``, ``line``, ``column``, ...).
    :param retry_after: seconds a client should wait before retrying (transient only).
    """

    def __init__(
        self,
        reason: Reason | str,
        message: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        try:
            self.reason = Reason(reason)
        except ValueError:
            self.reason = Reason.INTERNAL_ERROR
        self.message = message
        self.metadata: dict[str, str] = {k: str(v) for k, v in (metadata or {}).items()}
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.reason in TRANSIENT

    @property
    def code(self) -> grpc.StatusCode:
        return CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason.value!r}, {self.message!r})"

    # -- wire -------------------------------------------------------------
    def to_status(self, service: str = "") -> status_pb2.Status:
        """A ``google.rpc.Status`` with ErrorInfo (and RetryInfo when transient)."""
        meta = dict(self.metadata)
        if service:
            meta.setdefault("service", service)
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        info = error_details_pb2.ErrorInfo(reason=self.reason.value, domain=DOMAIN, metadata=meta)
        status.details.add().Pack(info)
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return status

    @classmethod
    def from_status(cls, status: status_pb2.Status | None, code: grpc.StatusCode | None = None,
                    details: str = "") -> HeadwaterError:
        reason: Reason | None = None
        metadata: dict[str, str] = {}
        retry_after: float | None = None
        message = details
        if status is not None:
            message = status.message or details
            for any_ in status.details:
                if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    any_.Unpack(info)
                    if info.domain == DOMAIN:
                        try:
                            reason = Reason(info.reason)
                        except ValueError:
                            reason = None
                        metadata = dict(info.metadata)
                elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    ri = error_details_pb2.RetryInfo()
                    any_.Unpack(ri)
                    retry_after = ri.retry_delay.ToNanoseconds() / 1e9
            if code is None:
                code = _code_from_int(status.code)
        if reason is None:
            reason = _CODE_FALLBACK.get(code, Reason.INTERNAL_ERROR) if code else Reason.INTERNAL_ERROR
        err_cls = QueryCompileError if reason is Reason.QUERY_COMPILE_ERROR else cls
        if err_cls is QueryCompileError:
            return QueryCompileError(
                message,
                line=int(metadata.get("line", 0) or 0),
                column=int(metadata.get("column", 0) or 0),
                metadata=metadata,
            )
        return err_cls(reason, message, metadata=metadata, retry_after=retry_after)

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> HeadwaterError:
        """Build from a failed call (sync or aio), reading the rich status if present."""
        from grpc_status import rpc_status

        status = None
        try:
            # A failed call is also its Call: grpc.Call (sync), or AioRpcError's own trailing_metadata().
            status = rpc_status.from_call(cast(grpc.Call, exc))
        except Exception:  # noqa: BLE001 - a malformed detail is treated as absent
            status = None
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls.from_status(status, code, details or "")

    @classmethod
    async def from_aio_call(cls, exc: grpc.aio.AioRpcError) -> HeadwaterError:
        """Build from a grpc.aio failure (its trailing metadata holds the status)."""
        from grpc_status import rpc_status

        status = None
        try:
            md = exc.trailing_metadata() or ()
            for key, value in md:
                if key == rpc_status.GRPC_DETAILS_METADATA_KEY:  # type: ignore[attr-defined]  # not in types-grpcio-status
                    status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001
            status = None
        return cls.from_status(status, exc.code(), exc.details() or "")


def _code_from_int(value: int) -> grpc.StatusCode | None:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return None


class QueryCompileError(HeadwaterError):
    """A query that does not compile, with the 1-based line and column of the problem."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0,
                 metadata: Mapping[str, Any] | None = None) -> None:
        meta = dict(metadata or {})
        meta.update({"line": line, "column": column})
        super().__init__(Reason.QUERY_COMPILE_ERROR, message, metadata=meta)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line:
            return f"line {self.line}, column {self.column}: {self.message}"
        return self.message


class PluginError(Exception):
    """A plugin is broken or conflicts with another (for example a name registered twice)."""
