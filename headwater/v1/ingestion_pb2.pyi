import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from headwater.v1 import errors_pb2 as _errors_pb2
from headwater.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_OPERATION_UNSPECIFIED: _ClassVar[FaultOperation]
    FAULT_OPERATION_PUBLISH: _ClassVar[FaultOperation]
    FAULT_OPERATION_READ: _ClassVar[FaultOperation]
    FAULT_OPERATION_ALL: _ClassVar[FaultOperation]
FAULT_OPERATION_UNSPECIFIED: FaultOperation
FAULT_OPERATION_PUBLISH: FaultOperation
FAULT_OPERATION_READ: FaultOperation
FAULT_OPERATION_ALL: FaultOperation

class CaptureDescription(_message.Message):
    __slots__ = ("enabled", "interval", "size_limit_bytes", "destination", "archive_name_format")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SIZE_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_NAME_FORMAT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    interval: _duration_pb2.Duration
    size_limit_bytes: int
    destination: str
    archive_name_format: str
    def __init__(self, enabled: _Optional[bool] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., size_limit_bytes: _Optional[int] = ..., destination: _Optional[str] = ..., archive_name_format: _Optional[str] = ...) -> None: ...

class ThroughputSettings(_message.Message):
    __slots__ = ("units", "auto_inflate", "maximum_units")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    AUTO_INFLATE_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_UNITS_FIELD_NUMBER: _ClassVar[int]
    units: int
    auto_inflate: bool
    maximum_units: int
    def __init__(self, units: _Optional[int] = ..., auto_inflate: _Optional[bool] = ..., maximum_units: _Optional[int] = ...) -> None: ...

class Hub(_message.Message):
    __slots__ = ("name", "partition_count", "partition_ids", "message_retention", "create_time", "throughput", "capture")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_RETENTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    partition_count: int
    partition_ids: _containers.RepeatedScalarFieldContainer[str]
    message_retention: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    throughput: ThroughputSettings
    capture: CaptureDescription
    def __init__(self, name: _Optional[str] = ..., partition_count: _Optional[int] = ..., partition_ids: _Optional[_Iterable[str]] = ..., message_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., throughput: _Optional[_Union[ThroughputSettings, _Mapping]] = ..., capture: _Optional[_Union[CaptureDescription, _Mapping]] = ...) -> None: ...

class PartitionProperties(_message.Message):
    __slots__ = ("name", "hub", "partition_id", "beginning_sequence_number", "last_enqueued_sequence_number", "last_enqueued_offset", "last_enqueued_time", "is_empty")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    BEGINNING_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    name: str
    hub: str
    partition_id: str
    beginning_sequence_number: int
    last_enqueued_sequence_number: int
    last_enqueued_offset: int
    last_enqueued_time: _timestamp_pb2.Timestamp
    is_empty: bool
    def __init__(self, name: _Optional[str] = ..., hub: _Optional[str] = ..., partition_id: _Optional[str] = ..., beginning_sequence_number: _Optional[int] = ..., last_enqueued_sequence_number: _Optional[int] = ..., last_enqueued_offset: _Optional[int] = ..., last_enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., is_empty: _Optional[bool] = ...) -> None: ...

class ConsumerGroup(_message.Message):
    __slots__ = ("name", "user_metadata", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    user_metadata: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., user_metadata: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("hub", "consumer_group", "partition_id", "offset", "sequence_number", "update_time")
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    hub: str
    consumer_group: str
    partition_id: str
    offset: int
    sequence_number: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, hub: _Optional[str] = ..., consumer_group: _Optional[str] = ..., partition_id: _Optional[str] = ..., offset: _Optional[int] = ..., sequence_number: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Ownership(_message.Message):
    __slots__ = ("hub", "consumer_group", "partition_id", "owner_id", "etag", "last_modified_time", "expire_time")
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    hub: str
    consumer_group: str
    partition_id: str
    owner_id: str
    etag: str
    last_modified_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, hub: _Optional[str] = ..., consumer_group: _Optional[str] = ..., partition_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., etag: _Optional[str] = ..., last_modified_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FaultRule(_message.Message):
    __slots__ = ("rule_id", "hub", "operation", "reason", "probability", "count", "partition_id", "remaining", "injected")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    hub: str
    operation: FaultOperation
    reason: _errors_pb2.ErrorReason
    probability: float
    count: int
    partition_id: str
    remaining: int
    injected: int
    def __init__(self, rule_id: _Optional[str] = ..., hub: _Optional[str] = ..., operation: _Optional[_Union[FaultOperation, str]] = ..., reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., probability: _Optional[float] = ..., count: _Optional[int] = ..., partition_id: _Optional[str] = ..., remaining: _Optional[int] = ..., injected: _Optional[int] = ...) -> None: ...

class CreateHubRequest(_message.Message):
    __slots__ = ("hub_id", "hub", "request_id")
    HUB_ID_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    hub_id: str
    hub: Hub
    request_id: str
    def __init__(self, hub_id: _Optional[str] = ..., hub: _Optional[_Union[Hub, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateHubResponse(_message.Message):
    __slots__ = ("hub",)
    HUB_FIELD_NUMBER: _ClassVar[int]
    hub: Hub
    def __init__(self, hub: _Optional[_Union[Hub, _Mapping]] = ...) -> None: ...

class GetHubRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetHubResponse(_message.Message):
    __slots__ = ("hub",)
    HUB_FIELD_NUMBER: _ClassVar[int]
    hub: Hub
    def __init__(self, hub: _Optional[_Union[Hub, _Mapping]] = ...) -> None: ...

class ListHubsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHubsResponse(_message.Message):
    __slots__ = ("hubs", "next_page_token")
    HUBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hubs: _containers.RepeatedCompositeFieldContainer[Hub]
    next_page_token: str
    def __init__(self, hubs: _Optional[_Iterable[_Union[Hub, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateHubRequest(_message.Message):
    __slots__ = ("hub", "update_mask")
    HUB_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    hub: Hub
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, hub: _Optional[_Union[Hub, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateHubResponse(_message.Message):
    __slots__ = ("hub",)
    HUB_FIELD_NUMBER: _ClassVar[int]
    hub: Hub
    def __init__(self, hub: _Optional[_Union[Hub, _Mapping]] = ...) -> None: ...

class DeleteHubRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteHubResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPartitionPropertiesRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPartitionPropertiesResponse(_message.Message):
    __slots__ = ("partition",)
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    partition: PartitionProperties
    def __init__(self, partition: _Optional[_Union[PartitionProperties, _Mapping]] = ...) -> None: ...

class CreateConsumerGroupRequest(_message.Message):
    __slots__ = ("parent", "consumer_group_id", "user_metadata", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    consumer_group_id: str
    user_metadata: str
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., consumer_group_id: _Optional[str] = ..., user_metadata: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ...) -> None: ...

class GetConsumerGroupRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ...) -> None: ...

class ListConsumerGroupsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConsumerGroupsResponse(_message.Message):
    __slots__ = ("consumer_groups", "next_page_token")
    CONSUMER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consumer_groups: _containers.RepeatedCompositeFieldContainer[ConsumerGroup]
    next_page_token: str
    def __init__(self, consumer_groups: _Optional[_Iterable[_Union[ConsumerGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteConsumerGroupRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteConsumerGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishEventsRequest(_message.Message):
    __slots__ = ("hub", "events", "partition_id", "partition_key", "producer_id", "producer_sequence", "request_id")
    HUB_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    hub: str
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.EventData]
    partition_id: str
    partition_key: str
    producer_id: str
    producer_sequence: int
    request_id: str
    def __init__(self, hub: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_event_pb2.EventData, _Mapping]]] = ..., partition_id: _Optional[str] = ..., partition_key: _Optional[str] = ..., producer_id: _Optional[str] = ..., producer_sequence: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class PublishEventsResponse(_message.Message):
    __slots__ = ("partition_id", "first_sequence_number", "last_sequence_number", "enqueued_time", "duplicate", "request_id")
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    partition_id: str
    first_sequence_number: int
    last_sequence_number: int
    enqueued_time: _timestamp_pb2.Timestamp
    duplicate: bool
    request_id: str
    def __init__(self, partition_id: _Optional[str] = ..., first_sequence_number: _Optional[int] = ..., last_sequence_number: _Optional[int] = ..., enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duplicate: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class PublishEventsStreamRequest(_message.Message):
    __slots__ = ("hub", "events", "partition_id", "partition_key", "producer_id", "producer_sequence", "request_id", "continue_on_error")
    HUB_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    hub: str
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.EventData]
    partition_id: str
    partition_key: str
    producer_id: str
    producer_sequence: int
    request_id: str
    continue_on_error: bool
    def __init__(self, hub: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_event_pb2.EventData, _Mapping]]] = ..., partition_id: _Optional[str] = ..., partition_key: _Optional[str] = ..., producer_id: _Optional[str] = ..., producer_sequence: _Optional[int] = ..., request_id: _Optional[str] = ..., continue_on_error: _Optional[bool] = ...) -> None: ...

class PublishEventsStreamResponse(_message.Message):
    __slots__ = ("partition_id", "first_sequence_number", "last_sequence_number", "enqueued_time", "duplicate", "request_id", "error")
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    partition_id: str
    first_sequence_number: int
    last_sequence_number: int
    enqueued_time: _timestamp_pb2.Timestamp
    duplicate: bool
    request_id: str
    error: _status_pb2.Status
    def __init__(self, partition_id: _Optional[str] = ..., first_sequence_number: _Optional[int] = ..., last_sequence_number: _Optional[int] = ..., enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duplicate: _Optional[bool] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class ReadEventsRequest(_message.Message):
    __slots__ = ("hub", "partition_id", "consumer_group", "event_position", "max_batch_size", "max_wait", "owner_level", "track_last_enqueued_event_properties", "packed", "include_properties")
    HUB_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    EVENT_POSITION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_FIELD_NUMBER: _ClassVar[int]
    OWNER_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TRACK_LAST_ENQUEUED_EVENT_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    hub: str
    partition_id: str
    consumer_group: str
    event_position: _event_pb2.EventPosition
    max_batch_size: int
    max_wait: _duration_pb2.Duration
    owner_level: int
    track_last_enqueued_event_properties: bool
    packed: bool
    include_properties: bool
    def __init__(self, hub: _Optional[str] = ..., partition_id: _Optional[str] = ..., consumer_group: _Optional[str] = ..., event_position: _Optional[_Union[_event_pb2.EventPosition, _Mapping]] = ..., max_batch_size: _Optional[int] = ..., max_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., owner_level: _Optional[int] = ..., track_last_enqueued_event_properties: _Optional[bool] = ..., packed: _Optional[bool] = ..., include_properties: _Optional[bool] = ...) -> None: ...

class ReadEventsResponse(_message.Message):
    __slots__ = ("events", "last_enqueued_sequence_number", "last_enqueued_offset", "last_enqueued_time", "retrieval_time", "packed")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_TIME_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.ReceivedEvent]
    last_enqueued_sequence_number: int
    last_enqueued_offset: int
    last_enqueued_time: _timestamp_pb2.Timestamp
    retrieval_time: _timestamp_pb2.Timestamp
    packed: PackedEvents
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.ReceivedEvent, _Mapping]]] = ..., last_enqueued_sequence_number: _Optional[int] = ..., last_enqueued_offset: _Optional[int] = ..., last_enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retrieval_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., packed: _Optional[_Union[PackedEvents, _Mapping]] = ...) -> None: ...

class PackedEvents(_message.Message):
    __slots__ = ("bodies", "body_offsets", "sequence_numbers", "enqueued_times_us", "offsets", "content_types", "content_type_ids", "metadata")
    BODIES_FIELD_NUMBER: _ClassVar[int]
    BODY_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIMES_US_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_IDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    bodies: bytes
    body_offsets: _containers.RepeatedScalarFieldContainer[int]
    sequence_numbers: _containers.RepeatedScalarFieldContainer[int]
    enqueued_times_us: _containers.RepeatedScalarFieldContainer[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    content_types: _containers.RepeatedScalarFieldContainer[str]
    content_type_ids: _containers.RepeatedScalarFieldContainer[int]
    metadata: _containers.RepeatedCompositeFieldContainer[PackedEventMetadata]
    def __init__(self, bodies: _Optional[bytes] = ..., body_offsets: _Optional[_Iterable[int]] = ..., sequence_numbers: _Optional[_Iterable[int]] = ..., enqueued_times_us: _Optional[_Iterable[int]] = ..., offsets: _Optional[_Iterable[int]] = ..., content_types: _Optional[_Iterable[str]] = ..., content_type_ids: _Optional[_Iterable[int]] = ..., metadata: _Optional[_Iterable[_Union[PackedEventMetadata, _Mapping]]] = ...) -> None: ...

class PackedEventMetadata(_message.Message):
    __slots__ = ("properties", "partition_key", "message_id", "correlation_id")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    properties: _containers.ScalarMap[str, str]
    partition_key: str
    message_id: str
    correlation_id: str
    def __init__(self, properties: _Optional[_Mapping[str, str]] = ..., partition_key: _Optional[str] = ..., message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("hub", "consumer_group", "page_size", "page_token")
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hub: str
    consumer_group: str
    page_size: int
    page_token: str
    def __init__(self, hub: _Optional[str] = ..., consumer_group: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class UpdateCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class ListOwnershipsRequest(_message.Message):
    __slots__ = ("hub", "consumer_group", "page_size", "page_token")
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hub: str
    consumer_group: str
    page_size: int
    page_token: str
    def __init__(self, hub: _Optional[str] = ..., consumer_group: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOwnershipsResponse(_message.Message):
    __slots__ = ("ownerships", "next_page_token")
    OWNERSHIPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ownerships: _containers.RepeatedCompositeFieldContainer[Ownership]
    next_page_token: str
    def __init__(self, ownerships: _Optional[_Iterable[_Union[Ownership, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClaimOwnershipRequest(_message.Message):
    __slots__ = ("ownerships",)
    OWNERSHIPS_FIELD_NUMBER: _ClassVar[int]
    ownerships: _containers.RepeatedCompositeFieldContainer[Ownership]
    def __init__(self, ownerships: _Optional[_Iterable[_Union[Ownership, _Mapping]]] = ...) -> None: ...

class ClaimOwnershipResponse(_message.Message):
    __slots__ = ("ownerships",)
    OWNERSHIPS_FIELD_NUMBER: _ClassVar[int]
    ownerships: _containers.RepeatedCompositeFieldContainer[Ownership]
    def __init__(self, ownerships: _Optional[_Iterable[_Union[Ownership, _Mapping]]] = ...) -> None: ...

class SetFaultRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: FaultRule
    def __init__(self, rule: _Optional[_Union[FaultRule, _Mapping]] = ...) -> None: ...

class SetFaultRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: FaultRule
    def __init__(self, rule: _Optional[_Union[FaultRule, _Mapping]] = ...) -> None: ...

class ListFaultRulesRequest(_message.Message):
    __slots__ = ("hub", "page_size", "page_token")
    HUB_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hub: str
    page_size: int
    page_token: str
    def __init__(self, hub: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFaultRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[FaultRule]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[FaultRule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClearFaultRulesRequest(_message.Message):
    __slots__ = ("hub", "rule_id")
    HUB_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    hub: str
    rule_id: str
    def __init__(self, hub: _Optional[str] = ..., rule_id: _Optional[str] = ...) -> None: ...

class ClearFaultRulesResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...
