import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from headwater.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_STOPPED: _ClassVar[JobState]
    JOB_STATE_STARTING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_STOPPING: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_DEGRADED: _ClassVar[JobState]

class JobStartMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_START_MODE_UNSPECIFIED: _ClassVar[JobStartMode]
    JOB_START_MODE_NOW: _ClassVar[JobStartMode]
    JOB_START_MODE_CUSTOM_TIME: _ClassVar[JobStartMode]
    JOB_START_MODE_WHEN_LAST_STOPPED: _ClassVar[JobStartMode]
    JOB_START_MODE_EARLIEST: _ClassVar[JobStartMode]

class OutOfOrderAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUT_OF_ORDER_ACTION_UNSPECIFIED: _ClassVar[OutOfOrderAction]
    OUT_OF_ORDER_ACTION_ADJUST: _ClassVar[OutOfOrderAction]
    OUT_OF_ORDER_ACTION_DROP: _ClassVar[OutOfOrderAction]

class OutputErrorPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_ERROR_POLICY_UNSPECIFIED: _ClassVar[OutputErrorPolicy]
    OUTPUT_ERROR_POLICY_RETRY: _ClassVar[OutputErrorPolicy]
    OUTPUT_ERROR_POLICY_DROP: _ClassVar[OutputErrorPolicy]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_STREAM: _ClassVar[InputKind]
    INPUT_KIND_REFERENCE: _ClassVar[InputKind]

class AlertOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_OPERATOR_UNSPECIFIED: _ClassVar[AlertOperator]
    ALERT_OPERATOR_GREATER_THAN: _ClassVar[AlertOperator]
    ALERT_OPERATOR_GREATER_THAN_OR_EQUAL: _ClassVar[AlertOperator]
    ALERT_OPERATOR_LESS_THAN: _ClassVar[AlertOperator]
    ALERT_OPERATOR_LESS_THAN_OR_EQUAL: _ClassVar[AlertOperator]

class AlertAggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_AGGREGATION_UNSPECIFIED: _ClassVar[AlertAggregation]
    ALERT_AGGREGATION_MAXIMUM: _ClassVar[AlertAggregation]
    ALERT_AGGREGATION_MINIMUM: _ClassVar[AlertAggregation]
    ALERT_AGGREGATION_AVERAGE: _ClassVar[AlertAggregation]
    ALERT_AGGREGATION_TOTAL: _ClassVar[AlertAggregation]

class EventVerdictKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_VERDICT_KIND_UNSPECIFIED: _ClassVar[EventVerdictKind]
    EVENT_VERDICT_KIND_ON_TIME: _ClassVar[EventVerdictKind]
    EVENT_VERDICT_KIND_ADJUSTED: _ClassVar[EventVerdictKind]
    EVENT_VERDICT_KIND_DROPPED: _ClassVar[EventVerdictKind]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_STOPPED: JobState
JOB_STATE_STARTING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_STOPPING: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_DEGRADED: JobState
JOB_START_MODE_UNSPECIFIED: JobStartMode
JOB_START_MODE_NOW: JobStartMode
JOB_START_MODE_CUSTOM_TIME: JobStartMode
JOB_START_MODE_WHEN_LAST_STOPPED: JobStartMode
JOB_START_MODE_EARLIEST: JobStartMode
OUT_OF_ORDER_ACTION_UNSPECIFIED: OutOfOrderAction
OUT_OF_ORDER_ACTION_ADJUST: OutOfOrderAction
OUT_OF_ORDER_ACTION_DROP: OutOfOrderAction
OUTPUT_ERROR_POLICY_UNSPECIFIED: OutputErrorPolicy
OUTPUT_ERROR_POLICY_RETRY: OutputErrorPolicy
OUTPUT_ERROR_POLICY_DROP: OutputErrorPolicy
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_STREAM: InputKind
INPUT_KIND_REFERENCE: InputKind
ALERT_OPERATOR_UNSPECIFIED: AlertOperator
ALERT_OPERATOR_GREATER_THAN: AlertOperator
ALERT_OPERATOR_GREATER_THAN_OR_EQUAL: AlertOperator
ALERT_OPERATOR_LESS_THAN: AlertOperator
ALERT_OPERATOR_LESS_THAN_OR_EQUAL: AlertOperator
ALERT_AGGREGATION_UNSPECIFIED: AlertAggregation
ALERT_AGGREGATION_MAXIMUM: AlertAggregation
ALERT_AGGREGATION_MINIMUM: AlertAggregation
ALERT_AGGREGATION_AVERAGE: AlertAggregation
ALERT_AGGREGATION_TOTAL: AlertAggregation
EVENT_VERDICT_KIND_UNSPECIFIED: EventVerdictKind
EVENT_VERDICT_KIND_ON_TIME: EventVerdictKind
EVENT_VERDICT_KIND_ADJUSTED: EventVerdictKind
EVENT_VERDICT_KIND_DROPPED: EventVerdictKind

class EventOrderingPolicy(_message.Message):
    __slots__ = ("late_arrival_tolerance", "out_of_order_tolerance", "out_of_order_action")
    LATE_ARRIVAL_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_ORDER_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_ORDER_ACTION_FIELD_NUMBER: _ClassVar[int]
    late_arrival_tolerance: _duration_pb2.Duration
    out_of_order_tolerance: _duration_pb2.Duration
    out_of_order_action: OutOfOrderAction
    def __init__(self, late_arrival_tolerance: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., out_of_order_tolerance: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., out_of_order_action: _Optional[_Union[OutOfOrderAction, str]] = ...) -> None: ...

class JobInput(_message.Message):
    __slots__ = ("alias", "kind", "hub", "consumer_group", "format", "connection_string", "reference_data", "reference_path", "reference_query", "reference_delta_query", "dsn", "refresh_interval", "path_pattern", "date_format", "time_format")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_STRING_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DATA_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PATH_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_QUERY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DELTA_QUERY_FIELD_NUMBER: _ClassVar[int]
    DSN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PATH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DATE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIME_FORMAT_FIELD_NUMBER: _ClassVar[int]
    alias: str
    kind: InputKind
    hub: str
    consumer_group: str
    format: str
    connection_string: str
    reference_data: bytes
    reference_path: str
    reference_query: str
    reference_delta_query: str
    dsn: str
    refresh_interval: _duration_pb2.Duration
    path_pattern: str
    date_format: str
    time_format: str
    def __init__(self, alias: _Optional[str] = ..., kind: _Optional[_Union[InputKind, str]] = ..., hub: _Optional[str] = ..., consumer_group: _Optional[str] = ..., format: _Optional[str] = ..., connection_string: _Optional[str] = ..., reference_data: _Optional[bytes] = ..., reference_path: _Optional[str] = ..., reference_query: _Optional[str] = ..., reference_delta_query: _Optional[str] = ..., dsn: _Optional[str] = ..., refresh_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., path_pattern: _Optional[str] = ..., date_format: _Optional[str] = ..., time_format: _Optional[str] = ...) -> None: ...

class JobOutput(_message.Message):
    __slots__ = ("alias", "sink", "connection_string")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    SINK_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_STRING_FIELD_NUMBER: _ClassVar[int]
    alias: str
    sink: str
    connection_string: str
    def __init__(self, alias: _Optional[str] = ..., sink: _Optional[str] = ..., connection_string: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "query", "inputs", "outputs", "event_ordering", "output_error_policy", "state", "error", "create_time", "start_time", "checkpoint_interval", "udfs", "functions", "dead_letter_hub")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ORDERING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ERROR_POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    UDFS_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_HUB_FIELD_NUMBER: _ClassVar[int]
    name: str
    query: str
    inputs: _containers.RepeatedCompositeFieldContainer[JobInput]
    outputs: _containers.RepeatedCompositeFieldContainer[JobOutput]
    event_ordering: EventOrderingPolicy
    output_error_policy: OutputErrorPolicy
    state: JobState
    error: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    checkpoint_interval: _duration_pb2.Duration
    udfs: _containers.RepeatedScalarFieldContainer[str]
    functions: _containers.RepeatedCompositeFieldContainer[JobFunction]
    dead_letter_hub: str
    def __init__(self, name: _Optional[str] = ..., query: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[JobInput, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[JobOutput, _Mapping]]] = ..., event_ordering: _Optional[_Union[EventOrderingPolicy, _Mapping]] = ..., output_error_policy: _Optional[_Union[OutputErrorPolicy, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., checkpoint_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., udfs: _Optional[_Iterable[str]] = ..., functions: _Optional[_Iterable[_Union[JobFunction, _Mapping]]] = ..., dead_letter_hub: _Optional[str] = ...) -> None: ...

class JobFunction(_message.Message):
    __slots__ = ("name", "language", "code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    language: str
    code: str
    def __init__(self, name: _Optional[str] = ..., language: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job", "request_id")
    JOB_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    job: Job
    request_id: str
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class UpdateJobResponse(_message.Message):
    __slots__ = ("job", "state_kept", "state_note")
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_KEPT_FIELD_NUMBER: _ClassVar[int]
    STATE_NOTE_FIELD_NUMBER: _ClassVar[int]
    job: Job
    state_kept: bool
    state_note: str
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., state_kept: _Optional[bool] = ..., state_note: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("name", "start_mode", "start_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_MODE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_mode: JobStartMode
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., start_mode: _Optional[_Union[JobStartMode, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class StopJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StopJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobMetricsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JobMetrics(_message.Message):
    __slots__ = ("input_events", "input_bytes", "output_events", "late_input_events", "early_input_events", "out_of_order_events", "input_deserialization_errors", "data_conversion_errors", "runtime_errors", "output_errors", "watermark_delay", "su_utilization_percent", "last_error_sample", "read_time", "last_checkpoint_id", "last_checkpoint_time", "partitions", "input_watermarks", "poison_events", "error_samples", "references", "starved_partitions", "dead_letter_events", "output_retries", "last_checkpoint_pause")
    INPUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LATE_INPUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    EARLY_INPUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_ORDER_EVENTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_DESERIALIZATION_ERRORS_FIELD_NUMBER: _ClassVar[int]
    DATA_CONVERSION_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ERRORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_DELAY_FIELD_NUMBER: _ClassVar[int]
    SU_UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_TIME_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_WATERMARKS_FIELD_NUMBER: _ClassVar[int]
    POISON_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    STARVED_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_EVENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_RETRIES_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_PAUSE_FIELD_NUMBER: _ClassVar[int]
    input_events: int
    input_bytes: int
    output_events: int
    late_input_events: int
    early_input_events: int
    out_of_order_events: int
    input_deserialization_errors: int
    data_conversion_errors: int
    runtime_errors: int
    output_errors: int
    watermark_delay: _duration_pb2.Duration
    su_utilization_percent: float
    last_error_sample: str
    read_time: _timestamp_pb2.Timestamp
    last_checkpoint_id: int
    last_checkpoint_time: _timestamp_pb2.Timestamp
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionMetrics]
    input_watermarks: _containers.RepeatedCompositeFieldContainer[InputWatermark]
    poison_events: int
    error_samples: _containers.RepeatedScalarFieldContainer[str]
    references: _containers.RepeatedCompositeFieldContainer[ReferenceMetrics]
    starved_partitions: int
    dead_letter_events: int
    output_retries: int
    last_checkpoint_pause: _duration_pb2.Duration
    def __init__(self, input_events: _Optional[int] = ..., input_bytes: _Optional[int] = ..., output_events: _Optional[int] = ..., late_input_events: _Optional[int] = ..., early_input_events: _Optional[int] = ..., out_of_order_events: _Optional[int] = ..., input_deserialization_errors: _Optional[int] = ..., data_conversion_errors: _Optional[int] = ..., runtime_errors: _Optional[int] = ..., output_errors: _Optional[int] = ..., watermark_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., su_utilization_percent: _Optional[float] = ..., last_error_sample: _Optional[str] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_checkpoint_id: _Optional[int] = ..., last_checkpoint_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partitions: _Optional[_Iterable[_Union[PartitionMetrics, _Mapping]]] = ..., input_watermarks: _Optional[_Iterable[_Union[InputWatermark, _Mapping]]] = ..., poison_events: _Optional[int] = ..., error_samples: _Optional[_Iterable[str]] = ..., references: _Optional[_Iterable[_Union[ReferenceMetrics, _Mapping]]] = ..., starved_partitions: _Optional[int] = ..., dead_letter_events: _Optional[int] = ..., output_retries: _Optional[int] = ..., last_checkpoint_pause: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReferenceMetrics(_message.Message):
    __slots__ = ("input", "refreshes", "refresh_failures", "rows", "valid_from", "last_error")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    REFRESHES_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    input: str
    refreshes: int
    refresh_failures: int
    rows: int
    valid_from: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, input: _Optional[str] = ..., refreshes: _Optional[int] = ..., refresh_failures: _Optional[int] = ..., rows: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class PartitionMetrics(_message.Message):
    __slots__ = ("input", "partition_id", "backlog_events", "watermark_delay", "last_sequence_number", "starved")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_EVENTS_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_DELAY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STARVED_FIELD_NUMBER: _ClassVar[int]
    input: str
    partition_id: str
    backlog_events: int
    watermark_delay: _duration_pb2.Duration
    last_sequence_number: int
    starved: bool
    def __init__(self, input: _Optional[str] = ..., partition_id: _Optional[str] = ..., backlog_events: _Optional[int] = ..., watermark_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_sequence_number: _Optional[int] = ..., starved: _Optional[bool] = ...) -> None: ...

class InputWatermark(_message.Message):
    __slots__ = ("input", "watermark")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    input: str
    watermark: _timestamp_pb2.Timestamp
    def __init__(self, input: _Optional[str] = ..., watermark: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJobMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: JobMetrics
    def __init__(self, metrics: _Optional[_Union[JobMetrics, _Mapping]] = ...) -> None: ...

class TestInput(_message.Message):
    __slots__ = ("alias", "data", "format", "reference")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    alias: str
    data: bytes
    format: str
    reference: bool
    def __init__(self, alias: _Optional[str] = ..., data: _Optional[bytes] = ..., format: _Optional[str] = ..., reference: _Optional[bool] = ...) -> None: ...

class TestQueryRequest(_message.Message):
    __slots__ = ("query", "inputs", "event_ordering", "arrival_time_field")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ORDERING_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_TIME_FIELD_FIELD_NUMBER: _ClassVar[int]
    query: str
    inputs: _containers.RepeatedCompositeFieldContainer[TestInput]
    event_ordering: EventOrderingPolicy
    arrival_time_field: str
    def __init__(self, query: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TestInput, _Mapping]]] = ..., event_ordering: _Optional[_Union[EventOrderingPolicy, _Mapping]] = ..., arrival_time_field: _Optional[str] = ...) -> None: ...

class TestOutput(_message.Message):
    __slots__ = ("alias", "rows")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    rows: _event_pb2.RecordBatch
    def __init__(self, alias: _Optional[str] = ..., rows: _Optional[_Union[_event_pb2.RecordBatch, _Mapping]] = ...) -> None: ...

class TestQueryResponse(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[TestOutput]
    def __init__(self, outputs: _Optional[_Iterable[_Union[TestOutput, _Mapping]]] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("name", "metric", "aggregation", "operator", "threshold", "window", "frequency", "webhook_urls")
    NAME_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URLS_FIELD_NUMBER: _ClassVar[int]
    name: str
    metric: str
    aggregation: AlertAggregation
    operator: AlertOperator
    threshold: float
    window: _duration_pb2.Duration
    frequency: _duration_pb2.Duration
    webhook_urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., metric: _Optional[str] = ..., aggregation: _Optional[_Union[AlertAggregation, str]] = ..., operator: _Optional[_Union[AlertOperator, str]] = ..., threshold: _Optional[float] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., frequency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., webhook_urls: _Optional[_Iterable[str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("rule", "value", "fire_time", "description")
    RULE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    rule: str
    value: float
    fire_time: _timestamp_pb2.Timestamp
    description: str
    def __init__(self, rule: _Optional[str] = ..., value: _Optional[float] = ..., fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateAlertRuleRequest(_message.Message):
    __slots__ = ("parent", "rule")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    rule: AlertRule
    def __init__(self, parent: _Optional[str] = ..., rule: _Optional[_Union[AlertRule, _Mapping]] = ...) -> None: ...

class CreateAlertRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ...) -> None: ...

class ListAlertRulesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteAlertRuleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAlertRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_page_token")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next_page_token: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EventVerdict(_message.Message):
    __slots__ = ("input", "partition_id", "sequence_number", "enqueued_time", "event_time", "adjusted_time", "verdict", "reason", "windows")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ADJUSTED_TIME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    input: str
    partition_id: str
    sequence_number: int
    enqueued_time: _timestamp_pb2.Timestamp
    event_time: _timestamp_pb2.Timestamp
    adjusted_time: _timestamp_pb2.Timestamp
    verdict: EventVerdictKind
    reason: str
    windows: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, input: _Optional[str] = ..., partition_id: _Optional[str] = ..., sequence_number: _Optional[int] = ..., enqueued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., adjusted_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verdict: _Optional[_Union[EventVerdictKind, str]] = ..., reason: _Optional[str] = ..., windows: _Optional[_Iterable[str]] = ...) -> None: ...

class ListEventVerdictsRequest(_message.Message):
    __slots__ = ("name", "input", "from_time", "to_time", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    input: str
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., input: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventVerdictsResponse(_message.Message):
    __slots__ = ("verdicts", "next_page_token", "retained")
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RETAINED_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[EventVerdict]
    next_page_token: str
    retained: int
    def __init__(self, verdicts: _Optional[_Iterable[_Union[EventVerdict, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., retained: _Optional[int] = ...) -> None: ...
