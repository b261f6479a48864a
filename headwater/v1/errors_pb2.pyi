from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    SERVICE_BUSY: _ClassVar[ErrorReason]
    SERVICE_TIMEOUT: _ClassVar[ErrorReason]
    QUOTA_EXCEEDED: _ClassVar[ErrorReason]
    MESSAGE_SIZE_EXCEEDED: _ClassVar[ErrorReason]
    INVALID_ARGUMENT: _ClassVar[ErrorReason]
    QUERY_COMPILE_ERROR: _ClassVar[ErrorReason]
    RESOURCE_NOT_FOUND: _ClassVar[ErrorReason]
    SCHEMA_INCOMPATIBLE: _ClassVar[ErrorReason]
    CONSUMER_DISCONNECTED: _ClassVar[ErrorReason]
    RESOURCE_ALREADY_EXISTS: _ClassVar[ErrorReason]
    UNAUTHORIZED: _ClassVar[ErrorReason]
    PERMISSION_DENIED: _ClassVar[ErrorReason]
    PRECONDITION_FAILED: _ClassVar[ErrorReason]
    JOB_FAILED: _ClassVar[ErrorReason]
    INTERNAL_ERROR: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
SERVICE_BUSY: ErrorReason
SERVICE_TIMEOUT: ErrorReason
QUOTA_EXCEEDED: ErrorReason
MESSAGE_SIZE_EXCEEDED: ErrorReason
INVALID_ARGUMENT: ErrorReason
QUERY_COMPILE_ERROR: ErrorReason
RESOURCE_NOT_FOUND: ErrorReason
SCHEMA_INCOMPATIBLE: ErrorReason
CONSUMER_DISCONNECTED: ErrorReason
RESOURCE_ALREADY_EXISTS: ErrorReason
UNAUTHORIZED: ErrorReason
PERMISSION_DENIED: ErrorReason
PRECONDITION_FAILED: ErrorReason
JOB_FAILED: ErrorReason
INTERNAL_ERROR: ErrorReason
