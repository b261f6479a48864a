import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordBatchFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_BATCH_FORMAT_UNSPECIFIED: _ClassVar[RecordBatchFormat]
    RECORD_BATCH_FORMAT_ARROW_IPC: _ClassVar[RecordBatchFormat]
    RECORD_BATCH_FORMAT_JSON_LINES: _ClassVar[RecordBatchFormat]
RECORD_BATCH_FORMAT_UNSPECIFIED: RecordBatchFormat
RECORD_BATCH_FORMAT_ARROW_IPC: RecordBatchFormat
RECORD_BATCH_FORMAT_JSON_LINES: RecordBatchFormat

class EventData(_message.Message):
    __slots__ = ("body", "properties", "content_type", "partition_key", "message_id", "correlation_id")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BODY_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    properties: _containers.ScalarMap[str, str]
    content_type: str
    partition_key: str
    message_id: str
    correlation_id: str
    def __init__(self, body: _Optional[bytes] = ..., properties: _Optional[_Mapping[str, str]] = ..., content_type: _Optional[str] = ..., partition_key: _Optional[str] = ..., message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ReceivedEvent(_message.Message):
    __slots__ = ("event", "partition_id", "sequence_number", "offset", "enqueued_time")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    event: EventData
    partition_id: str
    sequence_number: int
    offset: int
    enqueued_time: _timestamp_pb2.Timestamp
    def __init__(self, event: _Optional[_Union[EventData, _Mapping]] = ..., partition_id: _Optional[str] = ..., sequence_number: _Optional[int] = ..., offset: _Optional[int] = ..., enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventPosition(_message.Message):
    __slots__ = ("earliest", "latest", "offset", "sequence_number", "enqueued_time", "inclusive")
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    earliest: bool
    latest: bool
    offset: int
    sequence_number: int
    enqueued_time: _timestamp_pb2.Timestamp
    inclusive: bool
    def __init__(self, earliest: _Optional[bool] = ..., latest: _Optional[bool] = ..., offset: _Optional[int] = ..., sequence_number: _Optional[int] = ..., enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inclusive: _Optional[bool] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("format", "data", "row_count")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    format: RecordBatchFormat
    data: bytes
    row_count: int
    def __init__(self, format: _Optional[_Union[RecordBatchFormat, str]] = ..., data: _Optional[bytes] = ..., row_count: _Optional[int] = ...) -> None: ...
