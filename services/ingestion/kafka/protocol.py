"""Kafka wire basics: the supported APIs and versions, error codes, framing.

Every request and response struct comes from kafka-python's ``kafka.protocol``
(generated from Apache Kafka's own JSON message schemas, flexible versions
included); this module only says which (API, version) pairs the endpoint
answers and how a Headwater error reads as a Kafka error code.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest
from kafka.protocol.admin.groups import DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.api_header import RequestHeader
from kafka.protocol.consumer import (
    FetchRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from headwater.errors import HeadwaterError, Reason

__all__ = ["API", "ERR", "RequestFrame", "SUPPORTED", "error_code", "parse_request_header"]


class ERR:
    """Kafka error codes the endpoint answers with (org.apache.kafka.common.protocol.Errors)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    MESSAGE_TOO_LARGE = 10
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    REQUEST_TIMED_OUT = 7
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REQUEST = 42
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    KAFKA_STORAGE_ERROR = 56
    SASL_AUTHENTICATION_FAILED = 58
    GROUP_ID_NOT_FOUND = 69
    THROTTLING_QUOTA_EXCEEDED = 89


class API:
    """API keys (org.apache.kafka.common.protocol.ApiKeys)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    SASL_AUTHENTICATE = 36


#: api key -> (request class, min version, max version) the endpoint answers.
#: The maxima stop before versions that address topics by id only (Fetch 13,
#: Produce 13, OffsetCommit 10) or batch groups (OffsetFetch 8): clients
#: negotiate the highest version both sides have, so every current client
#: lands inside these ranges.
SUPPORTED: dict[int, tuple[type, int, int]] = {
    API.PRODUCE: (ProduceRequest, 3, 11),
    API.FETCH: (FetchRequest, 4, 12),
    API.LIST_OFFSETS: (ListOffsetsRequest, 1, 7),
    API.METADATA: (MetadataRequest, 0, 12),
    API.OFFSET_COMMIT: (OffsetCommitRequest, 2, 9),
    API.OFFSET_FETCH: (OffsetFetchRequest, 1, 7),
    API.FIND_COORDINATOR: (FindCoordinatorRequest, 0, 4),
    API.JOIN_GROUP: (JoinGroupRequest, 0, 7),
    API.HEARTBEAT: (HeartbeatRequest, 0, 4),
    API.LEAVE_GROUP: (LeaveGroupRequest, 0, 4),
    API.SYNC_GROUP: (SyncGroupRequest, 0, 5),
    API.DESCRIBE_GROUPS: (DescribeGroupsRequest, 0, 5),
    API.LIST_GROUPS: (ListGroupsRequest, 0, 4),
    API.SASL_HANDSHAKE: (SaslHandshakeRequest, 0, 1),
    API.API_VERSIONS: (ApiVersionsRequest, 0, 3),
    API.CREATE_TOPICS: (CreateTopicsRequest, 2, 7),
    API.DELETE_TOPICS: (DeleteTopicsRequest, 1, 5),
    API.INIT_PRODUCER_ID: (InitProducerIdRequest, 0, 4),
    API.SASL_AUTHENTICATE: (SaslAuthenticateRequest, 0, 2),
}

_ERROR_CODES = {
    Reason.RESOURCE_NOT_FOUND: ERR.UNKNOWN_TOPIC_OR_PARTITION,
    Reason.MESSAGE_SIZE_EXCEEDED: ERR.MESSAGE_TOO_LARGE,
    Reason.PRECONDITION_FAILED: ERR.OUT_OF_ORDER_SEQUENCE_NUMBER,
    Reason.INVALID_ARGUMENT: ERR.INVALID_REQUEST,
    Reason.PERMISSION_DENIED: ERR.TOPIC_AUTHORIZATION_FAILED,
    Reason.UNAUTHORIZED: ERR.SASL_AUTHENTICATION_FAILED,
    Reason.QUOTA_EXCEEDED: ERR.THROTTLING_QUOTA_EXCEEDED,
    Reason.SERVICE_BUSY: ERR.KAFKA_STORAGE_ERROR,
    Reason.SERVICE_TIMEOUT: ERR.REQUEST_TIMED_OUT,
    Reason.RESOURCE_ALREADY_EXISTS: ERR.TOPIC_ALREADY_EXISTS,
}


def error_code(exc: HeadwaterError) -> int:
    """The Kafka error code for a Headwater error."""
    return _ERROR_CODES.get(exc.reason, ERR.UNKNOWN_SERVER_ERROR)


_HEAD = struct.Struct(">hhi")


class RequestFrame:
    """A request's header fields, read before its body (the version decides the body's shape)."""

    __slots__ = ("api_key", "api_version", "client_id", "correlation_id", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.api_key, self.api_version, self.correlation_id = _HEAD.unpack_from(data, 0)
        self.client_id = ""

    def decode(self, request_class: type[Any]) -> Any:
        """The body, decoded with the header (client id, tagged fields) by the library."""
        msg = request_class.decode(self.data, version=self.api_version, header=True)
        self.client_id = msg.header.client_id or ""
        return msg

    def client_id_only(self) -> str:
        """The client id of a request whose body is not decoded (unsupported API or version)."""
        try:
            return RequestHeader.decode(io.BytesIO(self.data), flexible=False).client_id or ""
        except Exception:  # noqa: BLE001 - a header we cannot read: no client id
            return ""


def parse_request_header(data: bytes) -> RequestFrame:
    if len(data) < _HEAD.size:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"a Kafka request of {len(data)} bytes has no header")
    return RequestFrame(data)
