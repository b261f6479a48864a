import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from headwater.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_MODE_UNSPECIFIED: _ClassVar[OutputMode]
    OUTPUT_MODE_APPEND: _ClassVar[OutputMode]
    OUTPUT_MODE_UPDATE: _ClassVar[OutputMode]
    OUTPUT_MODE_COMPLETE: _ClassVar[OutputMode]

class ErrorPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_POLICY_UNSPECIFIED: _ClassVar[ErrorPolicy]
    ERROR_POLICY_RETRY: _ClassVar[ErrorPolicy]
    ERROR_POLICY_DROP: _ClassVar[ErrorPolicy]

class DeliveryGuarantee(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_GUARANTEE_UNSPECIFIED: _ClassVar[DeliveryGuarantee]
    DELIVERY_GUARANTEE_AT_LEAST_ONCE: _ClassVar[DeliveryGuarantee]
    DELIVERY_GUARANTEE_EXACTLY_ONCE: _ClassVar[DeliveryGuarantee]
OUTPUT_MODE_UNSPECIFIED: OutputMode
OUTPUT_MODE_APPEND: OutputMode
OUTPUT_MODE_UPDATE: OutputMode
OUTPUT_MODE_COMPLETE: OutputMode
ERROR_POLICY_UNSPECIFIED: ErrorPolicy
ERROR_POLICY_RETRY: ErrorPolicy
ERROR_POLICY_DROP: ErrorPolicy
DELIVERY_GUARANTEE_UNSPECIFIED: DeliveryGuarantee
DELIVERY_GUARANTEE_AT_LEAST_ONCE: DeliveryGuarantee
DELIVERY_GUARANTEE_EXACTLY_ONCE: DeliveryGuarantee

class Sink(_message.Message):
    __slots__ = ("name", "kind", "config", "output_mode", "key_columns", "error_policy", "create_time", "delivery_guarantee", "stats", "description", "memory", "dashboard", "postgres", "files", "delta", "webhook", "hub")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODE_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ERROR_POLICY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    POSTGRES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    config: _struct_pb2.Struct
    output_mode: OutputMode
    key_columns: _containers.RepeatedScalarFieldContainer[str]
    error_policy: ErrorPolicy
    create_time: _timestamp_pb2.Timestamp
    delivery_guarantee: DeliveryGuarantee
    stats: SinkStats
    description: str
    memory: MemorySettings
    dashboard: MemorySettings
    postgres: PostgresSettings
    files: FilesSettings
    delta: DeltaSettings
    webhook: WebhookSettings
    hub: HubSinkSettings
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_mode: _Optional[_Union[OutputMode, str]] = ..., key_columns: _Optional[_Iterable[str]] = ..., error_policy: _Optional[_Union[ErrorPolicy, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery_guarantee: _Optional[_Union[DeliveryGuarantee, str]] = ..., stats: _Optional[_Union[SinkStats, _Mapping]] = ..., description: _Optional[str] = ..., memory: _Optional[_Union[MemorySettings, _Mapping]] = ..., dashboard: _Optional[_Union[MemorySettings, _Mapping]] = ..., postgres: _Optional[_Union[PostgresSettings, _Mapping]] = ..., files: _Optional[_Union[FilesSettings, _Mapping]] = ..., delta: _Optional[_Union[DeltaSettings, _Mapping]] = ..., webhook: _Optional[_Union[WebhookSettings, _Mapping]] = ..., hub: _Optional[_Union[HubSinkSettings, _Mapping]] = ...) -> None: ...

class MemorySettings(_message.Message):
    __slots__ = ("max_rows", "key", "value", "time", "title")
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    max_rows: int
    key: str
    value: str
    time: str
    title: str
    def __init__(self, max_rows: _Optional[int] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., time: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class PostgresSettings(_message.Message):
    __slots__ = ("dsn", "table", "schema", "id_field", "compatibility_level", "create_table", "add_columns", "connect_timeout_s")
    DSN_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    ADD_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    dsn: str
    table: str
    schema: str
    id_field: _containers.RepeatedScalarFieldContainer[str]
    compatibility_level: str
    create_table: bool
    add_columns: bool
    connect_timeout_s: int
    def __init__(self, dsn: _Optional[str] = ..., table: _Optional[str] = ..., schema: _Optional[str] = ..., id_field: _Optional[_Iterable[str]] = ..., compatibility_level: _Optional[str] = ..., create_table: _Optional[bool] = ..., add_columns: _Optional[bool] = ..., connect_timeout_s: _Optional[int] = ...) -> None: ...

class FilesSettings(_message.Message):
    __slots__ = ("path", "format", "path_pattern", "date_format", "time_format", "time_field", "roll_size_mb", "roll_interval_s", "prefix")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DATE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIME_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_FIELD_NUMBER: _ClassVar[int]
    ROLL_SIZE_MB_FIELD_NUMBER: _ClassVar[int]
    ROLL_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: str
    path_pattern: str
    date_format: str
    time_format: str
    time_field: str
    roll_size_mb: float
    roll_interval_s: float
    prefix: str
    def __init__(self, path: _Optional[str] = ..., format: _Optional[str] = ..., path_pattern: _Optional[str] = ..., date_format: _Optional[str] = ..., time_format: _Optional[str] = ..., time_field: _Optional[str] = ..., roll_size_mb: _Optional[float] = ..., roll_interval_s: _Optional[float] = ..., prefix: _Optional[str] = ...) -> None: ...

class DeltaSettings(_message.Message):
    __slots__ = ("path", "partition_by", "merge_schema", "commit_rows", "commit_interval_s", "storage_options")
    class StorageOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BY_FIELD_NUMBER: _ClassVar[int]
    MERGE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ROWS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    STORAGE_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    path: str
    partition_by: _containers.RepeatedScalarFieldContainer[str]
    merge_schema: bool
    commit_rows: int
    commit_interval_s: float
    storage_options: _containers.ScalarMap[str, str]
    def __init__(self, path: _Optional[str] = ..., partition_by: _Optional[_Iterable[str]] = ..., merge_schema: _Optional[bool] = ..., commit_rows: _Optional[int] = ..., commit_interval_s: _Optional[float] = ..., storage_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WebhookSettings(_message.Message):
    __slots__ = ("url", "headers", "timeout_s", "max_rows_per_request")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    url: str
    headers: _containers.ScalarMap[str, str]
    timeout_s: float
    max_rows_per_request: int
    def __init__(self, url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_s: _Optional[float] = ..., max_rows_per_request: _Optional[int] = ...) -> None: ...

class HubSinkSettings(_message.Message):
    __slots__ = ("hub", "connection_string", "format", "partition_key_column", "partition_id_column", "property_columns", "schema_group", "registry_address", "max_batch_bytes")
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_STRING_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_GROUP_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    hub: str
    connection_string: str
    format: str
    partition_key_column: str
    partition_id_column: str
    property_columns: _containers.RepeatedScalarFieldContainer[str]
    schema_group: str
    registry_address: str
    max_batch_bytes: int
    def __init__(self, hub: _Optional[str] = ..., connection_string: _Optional[str] = ..., format: _Optional[str] = ..., partition_key_column: _Optional[str] = ..., partition_id_column: _Optional[str] = ..., property_columns: _Optional[_Iterable[str]] = ..., schema_group: _Optional[str] = ..., registry_address: _Optional[str] = ..., max_batch_bytes: _Optional[int] = ...) -> None: ...

class SinkStats(_message.Message):
    __slots__ = ("rows_written", "bytes_written", "rows_dropped", "retries", "duplicate_writes", "last_write_time", "last_error")
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    ROWS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_WRITES_FIELD_NUMBER: _ClassVar[int]
    LAST_WRITE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    rows_written: int
    bytes_written: int
    rows_dropped: int
    retries: int
    duplicate_writes: int
    last_write_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, rows_written: _Optional[int] = ..., bytes_written: _Optional[int] = ..., rows_dropped: _Optional[int] = ..., retries: _Optional[int] = ..., duplicate_writes: _Optional[int] = ..., last_write_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class CreateSinkRequest(_message.Message):
    __slots__ = ("sink_id", "sink", "request_id")
    SINK_ID_FIELD_NUMBER: _ClassVar[int]
    SINK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sink_id: str
    sink: Sink
    request_id: str
    def __init__(self, sink_id: _Optional[str] = ..., sink: _Optional[_Union[Sink, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateSinkResponse(_message.Message):
    __slots__ = ("sink",)
    SINK_FIELD_NUMBER: _ClassVar[int]
    sink: Sink
    def __init__(self, sink: _Optional[_Union[Sink, _Mapping]] = ...) -> None: ...

class GetSinkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSinkResponse(_message.Message):
    __slots__ = ("sink",)
    SINK_FIELD_NUMBER: _ClassVar[int]
    sink: Sink
    def __init__(self, sink: _Optional[_Union[Sink, _Mapping]] = ...) -> None: ...

class ListSinksRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    kind: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListSinksResponse(_message.Message):
    __slots__ = ("sinks", "next_page_token")
    SINKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sinks: _containers.RepeatedCompositeFieldContainer[Sink]
    next_page_token: str
    def __init__(self, sinks: _Optional[_Iterable[_Union[Sink, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSinkRequest(_message.Message):
    __slots__ = ("name", "request_id", "allow_missing")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    allow_missing: bool
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class DeleteSinkResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSinkKindsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SinkKind(_message.Message):
    __slots__ = ("name", "description", "plugin", "delivery_guarantee")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    plugin: str
    delivery_guarantee: DeliveryGuarantee
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., plugin: _Optional[str] = ..., delivery_guarantee: _Optional[_Union[DeliveryGuarantee, str]] = ...) -> None: ...

class ListSinkKindsResponse(_message.Message):
    __slots__ = ("kinds", "next_page_token")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedCompositeFieldContainer[SinkKind]
    next_page_token: str
    def __init__(self, kinds: _Optional[_Iterable[_Union[SinkKind, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WriteRowsRequest(_message.Message):
    __slots__ = ("sink", "batch", "writer", "checkpoint_id", "batch_id", "commit")
    SINK_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    sink: str
    batch: _event_pb2.RecordBatch
    writer: str
    checkpoint_id: int
    batch_id: int
    commit: bool
    def __init__(self, sink: _Optional[str] = ..., batch: _Optional[_Union[_event_pb2.RecordBatch, _Mapping]] = ..., writer: _Optional[str] = ..., checkpoint_id: _Optional[int] = ..., batch_id: _Optional[int] = ..., commit: _Optional[bool] = ...) -> None: ...

class WriteRowsResponse(_message.Message):
    __slots__ = ("rows_written", "rows_dropped", "duplicate", "drop_reason", "dropped_rows")
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    ROWS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_ROWS_FIELD_NUMBER: _ClassVar[int]
    rows_written: int
    rows_dropped: int
    duplicate: bool
    drop_reason: str
    dropped_rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, rows_written: _Optional[int] = ..., rows_dropped: _Optional[int] = ..., duplicate: _Optional[bool] = ..., drop_reason: _Optional[str] = ..., dropped_rows: _Optional[_Iterable[int]] = ...) -> None: ...

class ReadTableRequest(_message.Message):
    __slots__ = ("name", "filter", "order_by", "limit", "page_size", "page_token", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    filter: str
    order_by: str
    limit: int
    page_size: int
    page_token: str
    format: _event_pb2.RecordBatchFormat
    def __init__(self, name: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., limit: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., format: _Optional[_Union[_event_pb2.RecordBatchFormat, str]] = ...) -> None: ...

class ReadTableResponse(_message.Message):
    __slots__ = ("batch", "next_page_token", "total_rows")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    batch: _event_pb2.RecordBatch
    next_page_token: str
    total_rows: int
    def __init__(self, batch: _Optional[_Union[_event_pb2.RecordBatch, _Mapping]] = ..., next_page_token: _Optional[str] = ..., total_rows: _Optional[int] = ...) -> None: ...

class SubscribeRowsRequest(_message.Message):
    __slots__ = ("name", "include_snapshot", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    include_snapshot: bool
    format: _event_pb2.RecordBatchFormat
    def __init__(self, name: _Optional[str] = ..., include_snapshot: _Optional[bool] = ..., format: _Optional[_Union[_event_pb2.RecordBatchFormat, str]] = ...) -> None: ...

class SubscribeRowsResponse(_message.Message):
    __slots__ = ("batch", "output_mode", "snapshot", "checkpoint_id", "batch_id", "write_time", "replace", "key_columns")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    batch: _event_pb2.RecordBatch
    output_mode: OutputMode
    snapshot: bool
    checkpoint_id: int
    batch_id: int
    write_time: _timestamp_pb2.Timestamp
    replace: bool
    key_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batch: _Optional[_Union[_event_pb2.RecordBatch, _Mapping]] = ..., output_mode: _Optional[_Union[OutputMode, str]] = ..., snapshot: _Optional[bool] = ..., checkpoint_id: _Optional[int] = ..., batch_id: _Optional[int] = ..., write_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replace: _Optional[bool] = ..., key_columns: _Optional[_Iterable[str]] = ...) -> None: ...
