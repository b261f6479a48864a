"""Kafka record batches (magic 2) <-> Headwater events.

Produce: each record becomes one serialized ``EventData``: value -> body, key ->
partition key, headers -> properties. One Kafka batch is published as one
Headwater batch (all or nothing), so an idempotent producer's batch maps to one
idempotent publish: producer id + epoch -> ``producer_id`` ``kafka-<id>-<epoch>``,
the batch's base sequence -> ``producer_sequence``.

Fetch: the stored frames of a read are parsed as one ``ReadEventsResponse``
(one C-level parse) and written as one uncompressed record batch; offset =
sequence number, timestamp = enqueued time (CreateTime type, so each record
keeps its own).

The libraries do the parts that are not per record: kafka-python's codec module
decompresses (gzip, snappy, lz4, zstd) and the crc32c package checks and writes
CRC-32C. The per-record loops are numba kernels (``log/_kernels.py``) for batches of
at least ``COMPILED_MIN_RECORDS`` records once they are loaded (about 20-50 ns a
record instead of about a microsecond): produce yields a :class:`PackedEvents`
(one buffer, no Python object per record) that the log frames in one pass too.
The Python loops below are the path for small batches, for what the kernels
hand back (keys or headers that are not ASCII, keys kept in base64, corrupt
input) and the reference the kernels are tested against; kafka-python's reader
and builder are the reference in the unit tests.
"""

from __future__ import annotations

import base64
import struct
from itertools import chain, repeat
from operator import add

import numpy as np
from crc32c import crc32c
from kafka import codec
from kafka.record.util import decode_varint

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.log.jit import KERNELS
from headwater.services.ingestion.log.segment import PackedEvents
from headwater.services.ingestion.log.segment import varint as _uvarint
from headwater.v1 import ingestion_pb2

__all__ = ["COMPILED_MIN_RECORDS", "KERNELS", "KEY_B64_PROPERTY", "ProducedBatch", "decode_batches", "encode_fetch"]

#: A record key that is not UTF-8 travels base64-encoded in this property (partition keys are strings).
KEY_B64_PROPERTY = "x-kafka-key-base64"
_KEY_B64 = np.frombuffer(KEY_B64_PROPERTY.encode(), np.uint8)

#: Batches (and fetches) of at least this many records take the compiled kernels once loaded.
COMPILED_MIN_RECORDS = 64

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# firstTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_HEADER = struct.Struct(">qiibIhiqqqhii")
_AFTER_CRC = struct.Struct(">hiqqqhii")
_CRC_FROM = 21  # the CRC covers the batch from the attributes on
_DECOMPRESS = {1: codec.gzip_decode, 2: codec.snappy_decode, 3: codec.lz4_decode, 4: codec.zstd_decode}
_CODEC_NAMES = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


_TABLE = 1 << 15
_UV = [_uvarint(n) for n in range(_TABLE)]  # protobuf lengths
_ZZ = [_uvarint(n << 1) for n in range(_TABLE)]  # Kafka zigzag varints of non-negative ints


def _zz(n: int) -> bytes:
    return _ZZ[n] if 0 <= n < _TABLE else _uvarint((n << 1) ^ (n >> 63))


def _uv(n: int) -> bytes:
    return _UV[n] if n < _TABLE else _uvarint(n)


class ProducedBatch:
    """One Kafka record batch as Headwater events."""

    __slots__ = ("count", "events", "producer_id", "producer_sequence")

    def __init__(self, events: list[bytes] | PackedEvents, producer_id: str, producer_sequence: int) -> None:
        self.events = events
        self.count = len(events)
        self.producer_id = producer_id
        self.producer_sequence = producer_sequence


def _utf8(raw: bytes) -> bytes:
    """Protobuf strings must be UTF-8: invalid bytes become U+FFFD."""
    try:
        raw.decode()
        return raw
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace").encode()


def _field(buf: bytes, p: int) -> tuple[bytes, int]:
    """A header key or value (length-prefixed, -1 = null -> empty) as UTF-8."""
    n, p = decode_varint(buf, p)
    if n <= 0:
        return b"", p
    return _utf8(buf[p:p + n]), p + n


def _records(buf: bytes, count: int) -> list[bytes]:
    """The records of one (uncompressed) batch body as serialized EventData messages."""
    events: list[bytes] = []
    append = events.append
    pos = 0
    for _ in range(count):
        b = buf[pos]
        if b < 0x80:
            length, pos = (b >> 1) ^ -(b & 1), pos + 1
        elif buf[pos + 1] < 0x80:  # two bytes: records of 64 to 8,191 bytes
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            length, pos = (u >> 1) ^ -(u & 1), pos + 2
        else:
            length, pos = decode_varint(buf, pos)
        end = pos + length
        p = pos + 1  # attributes: unused
        while buf[p] & 0x80:  # timestamp delta: Headwater stamps the enqueued time
            p += 1
        p += 1
        while buf[p] & 0x80:  # offset delta: the log numbers events itself
            p += 1
        p += 1
        b = buf[p]
        if b < 0x80:
            klen, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            klen, p = decode_varint(buf, p)
        if klen > 0:
            key = buf[p:p + klen]
            p += klen
        else:
            key = b""
        b = buf[p]
        if b < 0x80:
            vlen, p = (b >> 1) ^ -(b & 1), p + 1
        elif buf[p + 1] < 0x80:
            u = (b & 0x7F) | (buf[p + 1] << 7)
            vlen, p = (u >> 1) ^ -(u & 1), p + 2
        else:
            vlen, p = decode_varint(buf, p)
        if vlen > 0:
            value = buf[p:p + vlen]
            p += vlen
        else:
            value = b""
        props = []
        b = buf[p]
        if b < 0x80:
            hcount, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            hcount, p = decode_varint(buf, p)
        for _ in range(hcount):
            hk, p = _field(buf, p)
            hv, p = _field(buf, p)
            entry = b"\n" + _uv(len(hk)) + hk + b"\x12" + _uv(len(hv)) + hv
            props.append(b"\x12" + _uv(len(entry)) + entry)
        if p != end:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"corrupt record batch: a record of {length} bytes "
                                 f"ends after {p - pos}")
        pos = end
        if key:
            try:
                key.decode()
            except UnicodeDecodeError:
                b64 = base64.b64encode(key)
                entry = b"\n" + _uv(len(KEY_B64_PROPERTY)) + KEY_B64_PROPERTY.encode() + b"\x12" + _uv(len(b64)) + b64
                props.append(b"\x12" + _uv(len(entry)) + entry)
                key = b""
        head = (b"\n" + (_UV[vlen] if vlen < _TABLE else _uvarint(vlen))) if vlen > 0 else b""
        if props or key:
            append(b"".join((head, value, *props, b'"' + _uv(len(key)) + key if key else b"")))
        else:
            append(head + value)
    if pos != len(buf):
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"corrupt record batch: {len(buf) - pos} bytes after "
                             f"its {count} records")
    return events


def _compiled_records(body: bytes, count: int) -> PackedEvents | None:
    """The records as EventData by the kernel; None when it is not loaded or hands the batch back."""
    kernels = KERNELS.get()
    if kernels is None:
        return None
    # An EventData is at most 8 bytes per header longer than its record (whose headers take >= 2 bytes each).
    out = np.empty(len(body) * 5 + 16, np.uint8)
    ends = np.empty(count, np.int64)
    try:
        written, status = kernels.records_to_events(np.frombuffer(body, np.uint8), count, out, ends)
    except IndexError:  # the bounds check caught what the status did not: the Python path says what is wrong
        return None
    if status != kernels.OK:
        return None
    return PackedEvents(out[:written], ends)


def decode_batches(records: bytes | None) -> list[ProducedBatch]:
    """The record batches of one partition of a Produce request; INVALID_ARGUMENT when corrupt."""
    if not records:
        return []
    data = bytes(records)
    out = []
    pos = 0
    try:
        while pos + _HEADER.size <= len(data):
            (_, length, _, magic, crc, attrs, _, _, _, producer_id, producer_epoch, base_sequence,
             count) = _HEADER.unpack_from(data, pos)
            end = pos + 12 + length
            if magic != 2:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"record batch magic {magic}: only magic 2 (Kafka 0.11+) is accepted")
            if end > len(data):
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "corrupt record batch: truncated")
            if crc32c(memoryview(data)[pos + _CRC_FROM:end]) != crc:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "corrupt record batch: CRC does not match")
            if attrs & 0x30:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     "transactional and control record batches are not supported")
            body = data[pos + _HEADER.size:end]
            compression = attrs & 0x07
            if compression:
                decode = _DECOMPRESS.get(compression)
                if decode is None:
                    raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown compression type {compression}")
                body = decode(body)
            packed = _compiled_records(body, count) if count >= COMPILED_MIN_RECORDS else None
            events = packed if packed is not None else _records(body, count)
            pid = f"kafka-{producer_id}-{producer_epoch}" if producer_id >= 0 else ""
            out.append(ProducedBatch(events, pid, base_sequence if pid else -1))
            pos = end
    except (struct.error, ValueError, IndexError, OSError, RuntimeError) as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"corrupt record batch: {exc}") from None
    return out


def _headers(props) -> tuple[bytes | None, bytes]:
    """Properties -> (key from ``x-kafka-key-base64`` or None, the record's header section)."""
    key = None
    parts = []
    for name, value in props.items():
        if name == KEY_B64_PROPERTY:
            raw = base64.b64decode(value)
            key = _zz(len(raw)) + raw
            continue
        nb, vb = name.encode(), value.encode()
        parts.append(_zz(len(nb)) + nb + _zz(len(vb)) + vb)
    return key, _zz(len(parts)) + b"".join(parts)


def _body_only(events, first_index: int, delta: bytes) -> bytes | None:
    """The records of events that carry a body only (no key, no properties: the common case),
    built with C-level maps over the batch; None when some event has more."""
    evs = [r.event for r in events]
    bodies = [e.body for e in evs]
    lens = list(map(len, bodies))
    n = len(lens)
    if max(lens) >= _TABLE - 64 or first_index + n >= _TABLE:
        return None
    # A body-only EventData serializes to tag + length + body; anything more means a key or properties.
    plain = list(map(add, lens, map(len, map(_UV.__getitem__, lens))))
    if [e.ByteSize() for e in evs] != [x + 1 if x else 0 for x in plain]:
        return None
    prefix = b"\x00" + delta  # attributes, timestamp delta
    zz_off = _ZZ[first_index:first_index + n]
    zz_len = list(map(_ZZ.__getitem__, lens))
    rec_lens = map(add, map(len, zz_off), map(add, map(len, zz_len), map(add, lens, repeat(len(prefix) + 2, n))))
    return b"".join(chain.from_iterable(zip(
        map(_ZZ.__getitem__, rec_lens), repeat(prefix, n), zz_off, repeat(b"\x01", n), zz_len, bodies,
        repeat(b"\x00", n))))


def encode_fetch(pieces: list, count: int) -> tuple[list, int]:
    """Stored frames -> one record batch; returns (its bytes in pieces, first sequence number).

    Each piece holds events of one stored batch, which share one enqueued time. The
    batch comes in pieces (header, records) so that the records are not copied again
    on their way to the socket.
    """
    if count >= COMPILED_MIN_RECORDS:
        kernels = KERNELS.get()
        if kernels is not None:
            done = _compiled_fetch(kernels, pieces, count)
            if done is not None:
                return done
    return _encode_fetch_py(pieces, count)


def _header(payload, count: int, first: int, first_ts: int, last_ts: int) -> bytes:
    """The record batch header (61 bytes) for ``payload``, the records."""
    after = _AFTER_CRC.pack(0, count - 1, first_ts, last_ts, -1, -1, -1, count)
    crc = crc32c(payload, crc32c(after))
    return struct.pack(">qiibI", first, 49 + len(payload), -1, 2, crc) + after


def _compiled_fetch(kernels, pieces: list, count: int) -> tuple[list, int] | None:
    """The record batch as [header, records] (no copy of the records), or None for the Python path."""
    size = sum(map(len, pieces))
    # A record is never longer than its stored frame: the frame carries >= 31 bytes of partition id,
    # time and numbers, the record <= 28 of length, deltas and counts.
    out = np.empty(size + 16 * count + 64, np.uint8)
    meta = np.zeros(3, np.int64)
    q = i = 0
    for piece in pieces:
        try:
            q, i, status = kernels.frames_to_records(np.frombuffer(piece, np.uint8), out, q, i, _KEY_B64, meta)
        except IndexError:
            return None
        if status != kernels.OK:
            return None
    if i != count:
        return None
    first, first_ts, last_ts = (int(x) for x in meta)
    payload = out[:q]
    return [_header(payload, count, first, first_ts, last_ts), payload], first


def _encode_fetch_py(pieces: list, count: int) -> tuple[list, int]:
    out: list[bytes] = []
    append = out.append
    zz, table = _ZZ, _TABLE
    first = first_ts = last_ts = -1
    i = 0
    parse = ingestion_pb2.ReadEventsResponse.FromString
    for piece in pieces:
        events = parse(piece).events
        if not events:
            continue
        t = events[0].enqueued_time
        ts = t.seconds * 1000 + t.nanos // 1_000_000
        if first < 0:
            first, first_ts = events[0].sequence_number, ts
        last_ts = ts
        delta = _zz(ts - first_ts)
        fast = _body_only(events, i, delta)
        if fast is not None:
            append(fast)
            i += len(events)
            continue
        for rec in events:
            ev = rec.event
            body = ev.body
            key = ev.partition_key
            props = ev.properties
            keyb = b"\x01"  # null
            hdrs = b"\x00"
            if props:
                kb, hdrs = _headers(props)
                if kb is not None:
                    keyb = kb
            if key:
                kb = key.encode()
                keyb = _zz(len(kb)) + kb
            n = len(body)
            rb = b"".join((b"\x00", delta, zz[i] if i < table else _zz(i), keyb, zz[n] if n < table else _zz(n),
                           body, hdrs))
            n = len(rb)
            append(zz[n] if n < table else _zz(n))
            append(rb)
            i += 1
    payload = b"".join(out)
    return [_header(payload, i, first, first_ts, last_ts), payload], first
