"""Shapes shared by the sync and async SDK: EventData, EventDataBatch, positions.

Names and behaviour follow azure-eventhub so that code written for Event Hubs
ports by changing the import and the connection string.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from headwater.auth import ConnectionString
from headwater.v1 import event_pb2, ingestion_pb2

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "EventData",
    "EventDataBatch",
    "connection_for",
    "event_position",
    "hub_properties",
    "parse_connection",
    "partition_properties",
]

#: The service's default max_message_bytes (1 MiB).
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024
#: Per-event framing the service counts against the limit (tag + length).
EVENT_OVERHEAD = 16


_UNREAD: Any = object()


class EventData:
    """An event: a body plus application properties, as azure.eventhub.EventData.

    Received events also carry ``sequence_number``, ``offset``,
    ``enqueued_time``, ``partition_key`` and ``partition_id``.
    """

    # Received events are wrapped lazily: fields are read from the protobuf
    # message on first access, so receiving costs no per-field work up front.
    __slots__ = (
        "_body",
        "_content_type",
        "_correlation_id",
        "_message_id",
        "_partition_key",
        "_properties",
        "_received",
    )

    def __init__(self, body: str | bytes | None = None) -> None:
        if body is None:
            self._body: bytes | None = b""
        elif isinstance(body, str):
            self._body = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray, memoryview)):
            self._body = bytes(body)
        else:
            raise TypeError(f"EventData body must be str or bytes, not {type(body).__name__}")
        self._properties: dict[str, Any] | None = {}
        self._content_type: str | None = None
        self._correlation_id: str | None = None
        self._message_id: str | None = None
        self._partition_key: str | None = ""
        self._received: event_pb2.ReceivedEvent | None = None

    # -- received events ------------------------------------------------------
    @classmethod
    def _from_received(cls, msg: event_pb2.ReceivedEvent) -> EventData:
        ev = cls.__new__(cls)
        ev._received = msg
        ev._body = ev._properties = ev._partition_key = None
        ev._content_type = ev._correlation_id = ev._message_id = _UNREAD
        return ev

    def _event(self) -> event_pb2.EventData:
        # Only a received event has fields left to read (the others were set by its constructor).
        assert self._received is not None
        return self._received.event

    def _field(self, name: str) -> str | None:
        return getattr(self._event(), name) or None

    @property
    def body(self) -> bytes:
        """The payload bytes."""
        if self._body is None:
            self._body = self._event().body
        return self._body

    @property
    def properties(self) -> dict[str, Any]:
        """Application properties (values are strings once sent)."""
        if self._properties is None:
            self._properties = dict(self._event().properties)
        return self._properties

    @properties.setter
    def properties(self, value: dict[str, Any]) -> None:
        self._properties = dict(value) if value is not None else {}

    @property
    def content_type(self) -> str | None:
        if self._content_type is _UNREAD:
            self._content_type = self._field("content_type")
        return self._content_type

    @content_type.setter
    def content_type(self, value: str | None) -> None:
        self._content_type = value

    @property
    def correlation_id(self) -> str | None:
        if self._correlation_id is _UNREAD:
            self._correlation_id = self._field("correlation_id")
        return self._correlation_id

    @correlation_id.setter
    def correlation_id(self, value: str | None) -> None:
        self._correlation_id = value

    @property
    def message_id(self) -> str | None:
        if self._message_id is _UNREAD:
            self._message_id = self._field("message_id")
        return self._message_id

    @message_id.setter
    def message_id(self, value: str | None) -> None:
        self._message_id = value

    def body_as_str(self, encoding: str = "UTF-8") -> str:
        return self.body.decode(encoding)

    def body_as_json(self, encoding: str = "UTF-8") -> Any:
        try:
            return json.loads(self.body.decode(encoding))
        except ValueError as exc:
            raise TypeError(f"event body is not JSON: {exc}") from None

    @property
    def sequence_number(self) -> int | None:
        return self._received.sequence_number if self._received is not None else None

    @property
    def offset(self) -> str | None:
        """The offset, a string as azure-eventhub has it."""
        return str(self._received.offset) if self._received is not None else None

    @property
    def enqueued_time(self) -> dt.datetime | None:
        if self._received is None:
            return None
        return self._received.enqueued_time.ToDatetime(tzinfo=dt.UTC)

    @property
    def partition_key(self) -> str | None:
        if self._partition_key is None:
            self._partition_key = self._event().partition_key
        return self._partition_key or None

    @property
    def partition_id(self) -> str | None:
        return self._received.partition_id if self._received is not None else None

    @property
    def system_properties(self) -> dict[str, Any]:
        if self._received is None:
            return {}
        return {"x-opt-sequence-number": self.sequence_number, "x-opt-offset": self.offset,
                "x-opt-enqueued-time": self.enqueued_time, "x-opt-partition-key": self.partition_key}

    # -- encoding ---------------------------------------------------------------
    def _encode(self, partition_key: str = "") -> bytes:
        """Serialize as it is now (a batch takes a snapshot, as azure-eventhub's add does)."""
        key = partition_key or self.partition_key or ""
        self._partition_key = key
        return event_pb2.EventData(
            body=self.body, properties={str(k): str(v) for k, v in self.properties.items()},
            content_type=self.content_type or "", correlation_id=self.correlation_id or "",
            message_id=self.message_id or "", partition_key=key).SerializeToString()

    def __repr__(self) -> str:
        body = self.body[:40]
        if self._received is not None:
            return (f"EventData(body={body!r}, sequence_number={self.sequence_number}, "
                    f"partition_id={self.partition_id!r})")
        return f"EventData(body={body!r})"

    def __str__(self) -> str:
        return self.body.decode("utf-8", "replace")


class EventDataBatch:
    """Events sent together, stored all or nothing; ``add`` refuses to grow past
    ``max_size_in_bytes`` (ValueError, as azure-eventhub)."""

    def __init__(self, max_size_in_bytes: int | None = None, partition_id: str | None = None,
                 partition_key: str | None = None) -> None:
        if partition_id is not None and partition_key is not None:
            raise ValueError("set partition_id or partition_key, not both")
        self.max_size_in_bytes = max_size_in_bytes or DEFAULT_MAX_BATCH_BYTES
        self.partition_id = str(partition_id) if partition_id is not None else None
        self.partition_key = str(partition_key) if partition_key is not None else None
        self._events: list[bytes] = []
        self._size = 0

    @classmethod
    def _from_encoded(cls, encoded: list[bytes], partition_id: str | None = None,
                      partition_key: str | None = None) -> EventDataBatch:
        """A batch of already serialized EventData (perf tools, HTTP bridges)."""
        batch = cls(max_size_in_bytes=1 << 62, partition_id=partition_id, partition_key=partition_key)
        batch._events = list(encoded)
        batch._size = sum(map(len, encoded)) + EVENT_OVERHEAD * len(encoded)
        return batch

    def add(self, event_data: EventData) -> None:
        if not isinstance(event_data, EventData):
            raise TypeError(f"add() takes an EventData, not {type(event_data).__name__}")
        encoded = event_data._encode(self.partition_key or "")
        size = len(encoded) + EVENT_OVERHEAD
        if self._size + size > self.max_size_in_bytes:
            raise ValueError(f"EventDataBatch has reached its size limit: {self.max_size_in_bytes}")
        self._events.append(encoded)
        self._size += size

    @property
    def size_in_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        return f"EventDataBatch(count={len(self)}, size={self._size}, max_size={self.max_size_in_bytes})"


def to_batch(event_data_batch: EventDataBatch | Iterable[EventData], partition_id: str | None,
             partition_key: str | None) -> EventDataBatch:
    """send_batch accepts a batch or a list of EventData (as azure-eventhub)."""
    if isinstance(event_data_batch, EventDataBatch):
        if (partition_id or partition_key) and (event_data_batch.partition_id or event_data_batch.partition_key):
            raise TypeError("partition_id/partition_key are set on the batch; do not pass them to send_batch")
        if partition_id is not None:
            event_data_batch.partition_id = str(partition_id)
        if partition_key is not None:
            event_data_batch.partition_key = str(partition_key)
        return event_data_batch
    batch = EventDataBatch(max_size_in_bytes=DEFAULT_MAX_BATCH_BYTES, partition_id=partition_id,
                           partition_key=partition_key)
    for ev in event_data_batch:
        batch.add(ev)
    return batch


def parse_connection(conn_str: str, eventhub_name: str | None) -> tuple[ConnectionString, str]:
    conn = ConnectionString.parse(conn_str)
    hub = eventhub_name or conn.entity_path
    if not hub:
        raise ValueError("the Event Hub name is missing: pass eventhub_name= or add EntityPath= to the "
                         "connection string")
    if conn.entity_path and eventhub_name and conn.entity_path != eventhub_name:
        raise ValueError(f"eventhub_name {eventhub_name!r} differs from EntityPath {conn.entity_path!r}")
    return conn, hub


def connection_for(fully_qualified_namespace: str | ConnectionString, credential: Any = None) -> ConnectionString:
    """The Azure constructors' (namespace, credential) as a connection string.

    ``fully_qualified_namespace`` is ``host:port`` (or ``headwater://host:port/``);
    ``credential`` has ``policy_name``/``key`` (headwater's SharedAccessKeyCredential,
    DefaultAzureCredential) or ``named_key`` (azure.core's AzureNamedKeyCredential),
    or is None when the service runs without auth.
    """
    if isinstance(fully_qualified_namespace, ConnectionString):
        return fully_qualified_namespace
    ns = fully_qualified_namespace
    endpoint = ns if "://" in ns else f"headwater://{ns.rstrip('/')}/"
    name = key = ""
    if credential is not None:
        named = getattr(credential, "named_key", None)
        if named is not None:
            name, key = named.name, named.key
        elif hasattr(credential, "policy_name") and hasattr(credential, "key"):
            name, key = credential.policy_name, credential.key
        else:
            raise TypeError("credential must carry a shared access key: policy_name and key, or named_key")
    return ConnectionString(endpoint=endpoint, shared_access_key_name=name, shared_access_key=key)


def event_position(position: Any, inclusive: bool = False) -> event_pb2.EventPosition:
    """azure-eventhub starting positions: "-1" (start), "@latest", an offset
    (str), a sequence number (int), a datetime, or an EventPosition."""
    if isinstance(position, event_pb2.EventPosition):
        return position
    if position is None or position == "-1" or position == -1 or position == "@earliest":
        return event_pb2.EventPosition(earliest=True)
    if position == "@latest":
        return event_pb2.EventPosition(latest=True)
    if isinstance(position, dt.datetime):
        ts = timestamp_pb2.Timestamp()
        if position.tzinfo is None:
            position = position.replace(tzinfo=dt.UTC)
        ts.FromDatetime(position)
        return event_pb2.EventPosition(enqueued_time=ts, inclusive=inclusive)
    if isinstance(position, bool):
        raise ValueError(f"starting_position {position!r} is not a position")
    if isinstance(position, int):
        return event_pb2.EventPosition(sequence_number=position, inclusive=inclusive)
    if isinstance(position, str):
        try:
            return event_pb2.EventPosition(offset=int(position), inclusive=inclusive)
        except ValueError:
            pass
    raise ValueError(f"starting_position {position!r} is not '-1', '@latest', an offset string, "
                     "a sequence number or a datetime")


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def hub_properties(hub: ingestion_pb2.Hub) -> dict[str, Any]:
    return {"eventhub_name": hub.name.removeprefix("hubs/"),
            "created_at": hub.create_time.ToDatetime(tzinfo=dt.UTC),
            "partition_ids": list(hub.partition_ids)}


def partition_properties(hub: str, p: ingestion_pb2.PartitionProperties) -> dict[str, Any]:
    return {"eventhub_name": hub, "id": p.partition_id,
            "beginning_sequence_number": p.beginning_sequence_number,
            "last_enqueued_sequence_number": p.last_enqueued_sequence_number,
            "last_enqueued_offset": str(p.last_enqueued_offset),
            "last_enqueued_time_utc": p.last_enqueued_time.ToDatetime(tzinfo=dt.UTC)
            if p.HasField("last_enqueued_time") else None,
            "is_empty": p.is_empty}


def last_enqueued(resp: ingestion_pb2.ReadEventsResponse) -> dict[str, Any] | None:
    if not resp.HasField("retrieval_time"):
        return None
    return {"sequence_number": resp.last_enqueued_sequence_number, "offset": str(resp.last_enqueued_offset),
            "enqueued_time": resp.last_enqueued_time.ToDatetime(tzinfo=dt.UTC)
            if resp.HasField("last_enqueued_time") else None,
            "retrieval_time": resp.retrieval_time.ToDatetime(tzinfo=dt.UTC)}


class Idempotence:
    """Producer id and per-partition sequence of an idempotent producer."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.producer_id = uuid.uuid4().hex if enabled else ""
        self.next: dict[str, int] = {}

    def fields(self, batch: EventDataBatch) -> dict[str, Any]:
        if not self.enabled:
            return {}
        if batch.partition_id is None:
            raise ValueError("an idempotent producer sends to a partition: create_batch(partition_id=...)")
        return {"producer_id": self.producer_id, "producer_sequence": self.next.get(batch.partition_id, 0)}

    def sent(self, batch: EventDataBatch) -> None:
        if self.enabled and batch.partition_id is not None:
            self.next[batch.partition_id] = self.next.get(batch.partition_id, 0) + len(batch)
