"""Segment files: the on-disk unit of a partition's log.

A segment file is a 24-byte file header followed by batches::

    file header : b"HWSEG001" | base_sequence u64 | base_offset u64
    batch       : header (50 bytes) | producer id | end positions (u32 each) | payload

    batch header: magic b"HWB1" | payload_len u32 | crc32 u32 | base_sequence u64
                  | count u32 | base_offset u64 | enqueued_time_ns u64
                  | producer_sequence i64 (-1 when not idempotent) | producer_id_len u16

The crc covers every byte of the batch after the crc field, so a torn or
partial write at the tail is detected and cut off on recovery.

The payload is the batch's events already encoded as a run of
``ReadEventsResponse.events`` entries (tag 1, length, ``ReceivedEvent``), so a
read answers with slices of stored bytes: no event is decoded or re-encoded on
the read path. ``sequence_number`` and ``offset`` are written as fixed-width
(9-byte, non-minimal) varints, which every protobuf parser accepts, so that a
frame's size does not depend on its numbers and a batch is built with a few
C-level passes instead of per-event Python arithmetic. Batches of
``COMPILED_MIN_EVENTS`` or more are written by a compiled kernel (log/_kernels.py,
byte for byte the same) once it is loaded, from a list of events or from
:class:`PackedEvents` (the Kafka endpoint's: one buffer, no object per event).

The offset of an event is its logical byte position in the partition: the sum
of the sizes of all frames before it (headers excluded).
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import accumulate, chain, repeat
from operator import add, and_, rshift, sub
from pathlib import Path

import numpy as np

from headwater.services.ingestion.log.jit import KERNELS
from headwater.storage import fsync_dir

__all__ = [
    "BATCH_HEADER",
    "FILE_HEADER",
    "EncodedBatch",
    "PackedEvents",
    "Segment",
    "batch_ends",
    "encode_batch",
    "slice_batches",
    "varint",
]

FILE_MAGIC = b"HWSEG001"
FILE_HEADER = struct.Struct("<8sQQ")
BATCH_MAGIC = b"HWB1"
BATCH_HEADER = struct.Struct("<4sIIQIQQqH")
_U32 = struct.Struct("<I")
_CRC_FROM = 12  # the crc covers the batch from this byte on
#: Batches of at least this many events are framed by the compiled kernel (once it is loaded).
COMPILED_MIN_EVENTS = 64


def varint(value: int) -> bytes:
    """Minimal protobuf varint of a non-negative int."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# b"\n" + varint(n): a length-delimited field 1 header, for n < 16384.
_LD1 = [b"\n" + varint(n) for n in range(16384)]
_SMALL = 16384 - 64
# Low 14 bits of a fixed-width varint, with continuation bits, after a tag.
_LOW_SEQ = [b"\x18" + bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) for n in range(16384)]
_LOW_OFF = [b"\x20" + bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) for n in range(16384)]


@functools.lru_cache(maxsize=4096)
def _high7(high: int) -> bytes:
    """Bits 14..62 of a 9-byte varint (``high`` = value >> 14)."""
    return bytes([((high >> (7 * i)) & 0x7F) | 0x80 for i in range(6)] + [(high >> 42) & 0x7F])


def _fixed_varint(tag: int, value: int) -> bytes:
    low = value & 0x3FFF
    return bytes((tag, (low & 0x7F) | 0x80, ((low >> 7) & 0x7F) | 0x80)) + _high7(value >> 14)


def _timestamp_field(ts_ns: int) -> bytes:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    body = b"\x08" + varint(seconds) + (b"\x10" + varint(nanos) if nanos else b"")
    return b"\x2a" + varint(len(body)) + body


class EncodedBatch:
    """A batch ready to append: bytes, count, and where each event ends."""

    __slots__ = (
        "base_offset",
        "base_sequence",
        "count",
        "data",
        "payload_len",
        "producer_id",
        "producer_sequence",
        "ts_ns",
    )

    def __init__(self, data: bytes, count: int, payload_len: int, base_sequence: int, base_offset: int,
                 ts_ns: int, producer_id: str, producer_sequence: int) -> None:
        self.data = data
        self.count = count
        self.payload_len = payload_len
        self.base_sequence = base_sequence
        self.base_offset = base_offset
        self.ts_ns = ts_ns
        self.producer_id = producer_id
        self.producer_sequence = producer_sequence


class PackedEvents:
    """Serialized ``EventData`` messages back to back in one buffer, with where each ends.

    A sequence of bytes for code that iterates events; :func:`encode_batch` frames it
    without making one Python object per event.
    """

    __slots__ = ("data", "ends")

    def __init__(self, data, ends: np.ndarray) -> None:
        self.data = data  # bytes-like (bytes or a uint8 numpy array)
        self.ends = ends  # int64, cumulative: event i is data[ends[i-1]:ends[i]]

    @classmethod
    def of(cls, events: list[bytes]) -> PackedEvents:
        return cls(b"".join(events), np.cumsum(np.fromiter(map(len, events), np.int64, len(events))))

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def nbytes(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def sizes(self) -> np.ndarray:
        return np.diff(self.ends, prepend=0)

    def _start(self, i: int) -> int:
        return int(self.ends[i - 1]) if i > 0 else 0

    def __getitem__(self, i):
        if isinstance(i, slice):
            lo, hi, step = i.indices(len(self))
            if step != 1:
                raise ValueError("PackedEvents slices are contiguous")
            hi = max(hi, lo)
            base = self._start(lo)
            return PackedEvents(memoryview(self.data)[base:self._start(hi)], self.ends[lo:hi] - base)
        if i < 0:
            i += len(self)
        return bytes(memoryview(self.data)[self._start(i):int(self.ends[i])])

    def __iter__(self):
        view = memoryview(self.data)
        start = 0
        for end in self.ends.tolist():
            yield bytes(view[start:end])
            start = end


def encode_batch(events: list[bytes] | PackedEvents, partition_id: str, base_sequence: int, base_offset: int,
                 ts_ns: int, producer_id: str = "", producer_sequence: int = -1) -> EncodedBatch:
    """Encode serialized ``EventData`` messages as one stored batch."""
    n = len(events)
    pid = partition_id.encode()
    const = b"\x12" + varint(len(pid)) + pid + _timestamp_field(ts_ns)
    if n >= COMPILED_MIN_EVENTS:
        kernels = KERNELS.get()
        if kernels is not None:
            return _encode_compiled(kernels, events, const, base_sequence, base_offset, ts_ns, producer_id,
                                    producer_sequence)
    if isinstance(events, PackedEvents):
        events = list(events)
    lens = list(map(len, events))
    k = len(const) + 20  # const + two 10-byte fields (tag + 9-byte varint)
    if n and max(lens) < _SMALL:
        # Every step is a C-level map over the batch: no per-event Python code.
        ev_fields = list(map(_LD1.__getitem__, lens))
        body_lens = list(map(add, map(len, ev_fields), map(add, lens, repeat(k, n))))
        if max(body_lens) < 16384:
            frame_heads = list(map(_LD1.__getitem__, body_lens))
            frame_lens = list(map(add, map(len, frame_heads), body_lens))
            ends = list(accumulate(frame_lens))
            offsets = list(map(sub, map(add, ends, repeat(base_offset, n)), frame_lens))
            lo = base_sequence & 0x3FFF
            seq_low: Iterable[bytes]
            seq_high: Iterable[bytes]
            if lo + n <= 16384:  # consecutive numbers: a slice of the table, one high part
                seq_low = _LOW_SEQ[lo:lo + n]
                seq_high = repeat(_high7(base_sequence >> 14), n)
            else:
                seqs = range(base_sequence, base_sequence + n)
                seq_low = map(_LOW_SEQ.__getitem__, map(and_, seqs, repeat(0x3FFF, n)))
                seq_high = map(_high7, map(rshift, seqs, repeat(14, n)))
            pieces = chain.from_iterable(zip(
                frame_heads, ev_fields, events, repeat(const, n), seq_low, seq_high,
                map(_LOW_OFF.__getitem__, map(and_, offsets, repeat(0x3FFF, n))),
                map(_high7, map(rshift, offsets, repeat(14, n))),
            ))
            payload = b"".join(pieces)
            return _frame(payload, ends, n, base_sequence, base_offset, ts_ns, producer_id, producer_sequence)
    # General path: large events.
    parts: list[bytes] = []
    ends = []
    pos = 0
    for i, ev in enumerate(events):
        body = b"".join((b"\n", varint(len(ev)), ev, const,
                         _fixed_varint(0x18, base_sequence + i), _fixed_varint(0x20, base_offset + pos)))
        frame = b"\n" + varint(len(body)) + body
        parts.append(frame)
        pos += len(frame)
        ends.append(pos)
    return _frame(b"".join(parts), ends, n, base_sequence, base_offset, ts_ns, producer_id, producer_sequence)


def _encode_compiled(kernels, events, const: bytes, base_sequence: int, base_offset: int, ts_ns: int,
                     producer_id: str, producer_sequence: int) -> EncodedBatch:
    """The batch written by the compiled kernel straight into its final buffer."""
    packed = events if isinstance(events, PackedEvents) else PackedEvents.of(events)
    n = len(packed)
    pid = producer_id.encode()
    ends_at = BATCH_HEADER.size + len(pid)
    payload_at = ends_at + 4 * n
    # frame head (<= 6) + event field head (<= 6) + const + two 10-byte numbers per event
    out = np.empty(payload_at + packed.nbytes + n * (len(const) + 32), np.uint8)
    payload_len = kernels.encode_frames(np.frombuffer(packed.data, np.uint8), packed.ends,
                                        np.frombuffer(const, np.uint8), base_sequence, base_offset, out, ends_at,
                                        payload_at)
    total = payload_at + payload_len
    out[BATCH_HEADER.size:ends_at] = np.frombuffer(pid, np.uint8)
    head = BATCH_HEADER.pack(BATCH_MAGIC, payload_len, 0, base_sequence, n, base_offset, ts_ns,
                             producer_sequence, len(pid))
    out[:BATCH_HEADER.size] = np.frombuffer(head, np.uint8)
    # an ndarray is a buffer; numpy's stubs declare __buffer__ only for Python >= 3.12
    crc = zlib.crc32(out[_CRC_FROM:total])  # type: ignore[arg-type]
    out[8:12] = np.frombuffer(_U32.pack(crc), np.uint8)
    return EncodedBatch(out[:total].tobytes(), n, payload_len, base_sequence, base_offset, ts_ns,
                        producer_id, producer_sequence)


def _frame(payload: bytes, ends: list[int], n: int, base_sequence: int, base_offset: int, ts_ns: int,
           producer_id: str, producer_sequence: int) -> EncodedBatch:
    pid = producer_id.encode()
    tail = pid + array("I", ends).tobytes() + payload
    head = BATCH_HEADER.pack(BATCH_MAGIC, len(payload), 0, base_sequence, n, base_offset, ts_ns,
                             producer_sequence, len(pid))
    crc = zlib.crc32(tail, zlib.crc32(head[_CRC_FROM:]))
    head = head[:8] + _U32.pack(crc) + head[_CRC_FROM:]
    return EncodedBatch(head + tail, n, len(payload), base_sequence, base_offset, ts_ns,
                        producer_id, producer_sequence)


def slice_batches(buf: bytes, start_sequence: int, max_events: int) -> tuple[list, int]:
    """Frames of up to ``max_events`` events from ``start_sequence`` out of
    ``buf``, which holds whole consecutive batches (the first one containing
    ``start_sequence``): (list of memoryview pieces, events)."""
    view = memoryview(buf)
    pieces = []
    got = 0
    pos = 0
    first_batch = True
    while pos < len(buf) and got < max_events:
        (_, payload_len, _, bseq, count, _, _, _, pid_len) = BATCH_HEADER.unpack_from(buf, pos)
        ends_at = pos + BATCH_HEADER.size + pid_len
        payload_at = ends_at + 4 * count
        first = max(start_sequence - bseq, 0) if first_batch else 0
        first_batch = False
        last = min(count, first + (max_events - got))
        if first < last:
            lo = _U32.unpack_from(buf, ends_at + 4 * (first - 1))[0] if first > 0 else 0
            hi = _U32.unpack_from(buf, ends_at + 4 * (last - 1))[0] if last < count else payload_len
            pieces.append(view[payload_at + lo:payload_at + hi])
            got += last - first
        pos = payload_at + payload_len
    return pieces, got


def batch_ends(buf: bytes) -> array:
    """End position of each event in the payload of the batch at the start of ``buf``."""
    (_, _, _, _, count, _, _, _, pid_len) = BATCH_HEADER.unpack_from(buf, 0)
    ends = array("I")
    start = BATCH_HEADER.size + pid_len
    ends.frombytes(bytes(buf[start:start + 4 * count]))
    return ends


class BatchInfo:
    """A batch header as recovery reads it."""

    __slots__ = (
        "base_offset",
        "base_sequence",
        "count",
        "payload_len",
        "position",
        "producer_id",
        "producer_sequence",
        "size",
        "ts_ns",
    )

    def __init__(self, position: int, size: int, base_sequence: int, count: int, base_offset: int,
                 ts_ns: int, producer_id: str, producer_sequence: int, payload_len: int) -> None:
        self.position = position
        self.size = size
        self.base_sequence = base_sequence
        self.count = count
        self.base_offset = base_offset
        self.ts_ns = ts_ns
        self.producer_id = producer_id
        self.producer_sequence = producer_sequence
        self.payload_len = payload_len


class Segment:
    """One segment file with its in-memory batch index."""

    def __init__(self, path: Path, base_sequence: int, base_offset: int, fd: int, size: int) -> None:
        self.path = path
        self.base_sequence = base_sequence
        self.base_offset = base_offset
        self.fd = fd
        self.size = size
        # One entry per batch: first sequence, first offset, file position, time.
        self.seqs = array("q")
        self.offs = array("q")
        self.poss = array("q")
        self.times = array("q")
        self.next_sequence = base_sequence
        self.next_offset = base_offset
        self.last_ts_ns = 0
        self.dirty = False

    # -- creation and recovery -------------------------------------------------

    @classmethod
    def create(cls, folder: Path, base_sequence: int, base_offset: int) -> Segment:
        path = folder / f"{base_sequence:020d}.seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, FILE_HEADER.pack(FILE_MAGIC, base_sequence, base_offset))
        os.fsync(fd)
        fsync_dir(folder)
        return cls(path, base_sequence, base_offset, fd, FILE_HEADER.size)

    @classmethod
    def open(cls, path: Path, on_batch=None) -> Segment:
        """Open and recover: scan every batch, cut a torn tail, rebuild the index.

        ``on_batch(BatchInfo)`` sees each valid batch (producer state).
        """
        fd = os.open(path, os.O_RDWR)
        data = _read_all(fd)
        if len(data) < FILE_HEADER.size or data[:8] != FILE_MAGIC:
            os.close(fd)
            raise ValueError(f"{path} is not a segment file")
        _, base_sequence, base_offset = FILE_HEADER.unpack_from(data, 0)
        seg = cls(path, base_sequence, base_offset, fd, FILE_HEADER.size)
        pos = FILE_HEADER.size
        view = memoryview(data)
        total = len(data)
        while pos + BATCH_HEADER.size <= total:
            (magic, payload_len, crc, bseq, count, boff, ts_ns, pseq,
             pid_len) = BATCH_HEADER.unpack_from(data, pos)
            if magic != BATCH_MAGIC:
                break
            size = BATCH_HEADER.size + pid_len + 4 * count + payload_len
            if pos + size > total or bseq != seg.next_sequence or boff != seg.next_offset:
                break
            if zlib.crc32(view[pos + _CRC_FROM:pos + size]) != crc:
                break
            pid_start = pos + BATCH_HEADER.size
            producer_id = bytes(view[pid_start:pid_start + pid_len]).decode() if pid_len else ""
            seg._index(pos, bseq, boff, ts_ns, count, payload_len)
            if on_batch is not None:
                on_batch(BatchInfo(pos, size, bseq, count, boff, ts_ns, producer_id, pseq, payload_len))
            pos += size
        if pos < total:
            os.ftruncate(fd, pos)  # the torn tail: never acknowledged
            os.fsync(fd)
        seg.size = pos
        return seg

    def _index(self, pos: int, bseq: int, boff: int, ts_ns: int, count: int, payload_len: int) -> None:
        self.seqs.append(bseq)
        self.offs.append(boff)
        self.poss.append(pos)
        self.times.append(ts_ns)
        self.next_sequence = bseq + count
        self.next_offset = boff + payload_len
        self.last_ts_ns = ts_ns

    # -- writing ------------------------------------------------------------------

    def append(self, batch: EncodedBatch) -> None:
        data = batch.data
        written = os.pwrite(self.fd, data, self.size)
        while written < len(data):  # a short write: finish it
            written += os.pwrite(self.fd, data[written:], self.size + written)
        self._index(self.size, batch.base_sequence, batch.base_offset, batch.ts_ns, batch.count,
                    batch.payload_len)
        self.size += len(data)
        self.dirty = True

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    # -- reading ------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self.seqs

    def first_ts_ns(self) -> int:
        return self.times[0] if self.times else 0

    def read(self, start_sequence: int, max_events: int, max_bytes: int) -> tuple[list, int]:
        """Frames of events from ``start_sequence``: (list of byte pieces, events)."""
        if start_sequence >= self.next_sequence or not self.seqs:
            return [], 0
        i = bisect_right(self.seqs, start_sequence) - 1
        if i < 0:
            i = 0
            start_sequence = self.seqs[0]
        nb = len(self.seqs)
        # Which batches to read: until max_events or max_bytes.
        j = i
        events = self._batch_end_seq(i) - start_sequence
        while events < max_events and j + 1 < nb and (self._batch_end_pos(j) - self.poss[i]) < max_bytes:
            j += 1
            events += self._batch_end_seq(j) - self.seqs[j]
        start_pos = self.poss[i]
        end_pos = self._batch_end_pos(j)
        buf = os.pread(self.fd, end_pos - start_pos, start_pos)
        return slice_batches(buf, start_sequence, max_events)

    def _batch_end_seq(self, b: int) -> int:
        return self.seqs[b + 1] if b + 1 < len(self.seqs) else self.next_sequence

    def _batch_end_pos(self, b: int) -> int:
        return self.poss[b + 1] if b + 1 < len(self.poss) else self.size

    def sequence_at_offset(self, offset: int) -> int:
        """Sequence number of the first event starting at or after ``offset``."""
        i = bisect_right(self.offs, offset) - 1
        if i < 0:
            return self.base_sequence
        pos = self.poss[i]
        head = os.pread(self.fd, BATCH_HEADER.size, pos)
        (_, _, _, bseq, count, boff, _, _, pid_len) = BATCH_HEADER.unpack(head)
        ends = array("I")
        ends.frombytes(os.pread(self.fd, 4 * count, pos + BATCH_HEADER.size + pid_len))
        rel = offset - boff
        # starts of events are 0, ends[0], ends[1], ...
        k = 1 + bisect_left(ends, rel) if rel > 0 else 0
        return bseq + k

    def offset_of(self, sequence: int) -> int:
        """Offset of the event with ``sequence`` (in this segment)."""
        i = bisect_right(self.seqs, sequence) - 1
        pos = self.poss[i]
        head = os.pread(self.fd, BATCH_HEADER.size, pos)
        (_, _, _, bseq, _, boff, _, _, pid_len) = BATCH_HEADER.unpack(head)
        k = sequence - bseq
        if k == 0:
            return boff
        return boff + _U32.unpack(os.pread(self.fd, 4, pos + BATCH_HEADER.size + pid_len + 4 * (k - 1)))[0]

    def sequence_at_time(self, ts_ns: int) -> int:
        """First sequence enqueued at or after ``ts_ns`` (next_sequence if none)."""
        b = bisect_left(self.times, ts_ns)  # times never decrease (the log keeps them monotonic)
        return self.seqs[b] if b < len(self.seqs) else self.next_sequence


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(64 << 20, size - pos), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)
