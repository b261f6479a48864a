"""Kafka record batches (magic 2) <-> Headwater events.

Produce: kafka-python's ``MemoryRecords``/``DefaultRecordBatch`` read the
batches (CRC, varints, and gzip/snappy/lz4/zstd through its codec module);
each record becomes one serialized ``EventData``: value -> body, key ->
partition key, headers -> properties. One Kafka batch is published as one
Headwater batch (all or nothing), so an idempotent producer's batch maps to
one idempotent publish: producer id + epoch -> ``producer_id``
``kafka-<id>-<epoch>``, the batch's base sequence -> ``producer_sequence``.

Fetch: the stored frames of a read are parsed as one ``ReadEventsResponse``
(one C-level parse) and written as one record batch by kafka-python's
``DefaultRecordBatchBuilder``; offset = sequence number, timestamp = enqueued
time (CreateTime type, so each record keeps its own).
"""

from __future__ import annotations

import base64
import struct

from kafka.errors import CorruptRecordError, UnsupportedCodecError
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder

from headwater.errors import HeadwaterError, Reason
from headwater.v1 import event_pb2, ingestion_pb2

__all__ = ["KEY_B64_PROPERTY", "ProducedBatch", "decode_batches", "encode_fetch"]

#: A record key that is not UTF-8 travels base64-encoded in this property (partition keys are strings).
KEY_B64_PROPERTY = "x-kafka-key-base64"
_BASE = struct.Struct(">q")
_LEADER_EPOCH_AT = 12


class ProducedBatch:
    """One Kafka record batch as Headwater events."""

    __slots__ = ("count", "events", "producer_id", "producer_sequence")

    def __init__(self, events: list[bytes], producer_id: str, producer_sequence: int) -> None:
        self.events = events
        self.count = len(events)
        self.producer_id = producer_id
        self.producer_sequence = producer_sequence


def _event(record, EventData=event_pb2.EventData) -> bytes:  # noqa: N803 - bound for speed
    key = record.key
    headers = record.headers
    props = {}
    if headers:
        for name, value in headers:
            props[name] = value.decode("utf-8", "replace") if value is not None else ""
    pkey = ""
    if key:
        try:
            pkey = key.decode()
        except UnicodeDecodeError:
            props[KEY_B64_PROPERTY] = base64.b64encode(key).decode()
    value = record.value
    return EventData(body=value or b"", properties=props, partition_key=pkey).SerializeToString()


def decode_batches(records: bytes | None) -> list[ProducedBatch]:
    """The record batches of one partition of a Produce request; INVALID_ARGUMENT when corrupt."""
    if not records:
        return []
    out = []
    try:
        mem = MemoryRecords(bytes(records))
        while mem.has_next():
            batch = mem.next_batch()
            if batch is None:
                break
            if batch.magic != 2:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"record batch magic {batch.magic}: only magic 2 (Kafka 0.11+) is accepted")
            if batch.is_transactional or batch.is_control_batch:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "transactional record batches are not supported")
            if not batch.validate_crc():
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "record batch CRC does not match its bytes")
            events = list(map(_event, batch))
            if batch.producer_id >= 0:
                out.append(ProducedBatch(events, f"kafka-{batch.producer_id}-{batch.producer_epoch}",
                                         batch.base_sequence))
            else:
                out.append(ProducedBatch(events, "", -1))
    except (CorruptRecordError, UnsupportedCodecError, struct.error, ValueError, IndexError) as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"corrupt record batch: {exc}") from None
    return out


def encode_fetch(pieces: list, count: int) -> tuple[bytes, int]:
    """Stored frames -> one record batch; returns (bytes, first sequence number)."""
    resp = ingestion_pb2.ReadEventsResponse.FromString(b"".join(pieces))
    events = resp.events
    first = events[0].sequence_number
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 31)
    append = builder.append
    for rec in events:
        ev = rec.event
        props = ev.properties
        key = ev.partition_key.encode() if ev.partition_key else None
        headers = []
        if props:
            for name, value in props.items():
                if name == KEY_B64_PROPERTY:
                    key = base64.b64decode(value)
                else:
                    headers.append((name, value.encode()))
        ts = rec.enqueued_time
        append(rec.sequence_number - first, ts.seconds * 1000 + ts.nanos // 1_000_000, key, ev.body, headers)
    buf = builder.build()
    _BASE.pack_into(buf, 0, first)
    struct.pack_into(">i", buf, _LEADER_EPOCH_AT, -1)
    return bytes(buf), first
