"""headwater.errors.Reason is the proto ErrorReason, name for name, and the table holds."""

from __future__ import annotations

import grpc

from headwater.errors import CODES, TRANSIENT, HeadwaterError, Reason
from headwater.v1 import errors_pb2


def test_reason_equals_the_proto_enum():
    proto = {v.name for v in errors_pb2.ErrorReason.DESCRIPTOR.values} - {"ERROR_REASON_UNSPECIFIED"}
    assert proto == {r.value for r in Reason}


def test_design_table():
    assert TRANSIENT == {Reason.SERVICE_BUSY, Reason.SERVICE_TIMEOUT, Reason.QUOTA_EXCEEDED}
    assert CODES[Reason.SERVICE_BUSY] is grpc.StatusCode.UNAVAILABLE
    assert CODES[Reason.SERVICE_TIMEOUT] is grpc.StatusCode.DEADLINE_EXCEEDED
    assert CODES[Reason.QUOTA_EXCEEDED] is grpc.StatusCode.RESOURCE_EXHAUSTED
    for r in (Reason.MESSAGE_SIZE_EXCEEDED, Reason.INVALID_ARGUMENT, Reason.QUERY_COMPILE_ERROR):
        assert CODES[r] is grpc.StatusCode.INVALID_ARGUMENT
    assert CODES[Reason.RESOURCE_NOT_FOUND] is grpc.StatusCode.NOT_FOUND
    assert CODES[Reason.SCHEMA_INCOMPATIBLE] is grpc.StatusCode.FAILED_PRECONDITION
    assert CODES[Reason.CONSUMER_DISCONNECTED] is grpc.StatusCode.ABORTED
    assert set(CODES) == set(Reason)


def test_status_round_trip_keeps_reason_metadata_and_retry_after():
    err = HeadwaterError(Reason.QUOTA_EXCEEDED, "hub trips is over 1 TU", metadata={"hub": "trips"},
                         retry_after=0.25)
    back = HeadwaterError.from_status(err.to_status("ingestion"))
    assert back.reason is Reason.QUOTA_EXCEEDED and back.is_transient
    assert back.metadata == {"hub": "trips", "service": "ingestion"}
    assert back.retry_after == 0.25
    assert back.message == "hub trips is over 1 TU"


def test_without_error_info_unavailable_is_transient():
    err = HeadwaterError.from_status(None, grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert err.reason is Reason.SERVICE_BUSY and err.is_transient
    err = HeadwaterError.from_status(None, grpc.StatusCode.INTERNAL, "boom")
    assert not err.is_transient
