"""The embedded log: encoding, recovery after a torn write, producer state, retention, positions."""

from __future__ import annotations

import os
import time

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.log.embedded import PartitionLog
from headwater.services.ingestion.log.segment import encode_batch
from headwater.v1 import event_pb2, ingestion_pb2


def _events(n: int, prefix: str = "e", size: int = 0) -> list[bytes]:
    return [event_pb2.EventData(body=(f"{prefix}{i}".encode() + b"x" * size),
                                properties={"i": str(i)}).SerializeToString() for i in range(n)]


def _decode(pieces) -> list:
    return list(ingestion_pb2.ReadEventsResponse.FromString(b"".join(pieces)).events)


def _open(path, **kw) -> PartitionLog:
    return PartitionLog(path, "0", **kw).open()


def test_stored_frames_decode_as_read_events_response():
    batch = encode_batch(_events(3) + _events(1, size=20000), "7", 2**40, 2**50, 1_700_000_000_123_456_789)
    data = batch.data
    # The payload is the tail of the record: decode it as the response protobuf.
    events = list(ingestion_pb2.ReadEventsResponse.FromString(data[-batch.payload_len:]).events)
    assert [e.sequence_number for e in events] == [2**40 + i for i in range(4)]
    assert events[0].offset == 2**50
    assert all(b.offset > a.offset for a, b in zip(events, events[1:]))
    assert events[3].event.body.startswith(b"e0") and len(events[3].event.body) == 20002
    assert events[1].partition_id == "7" and events[1].event.properties["i"] == "1"
    assert events[0].enqueued_time.ToNanoseconds() == 1_700_000_000_123_456_789


def test_append_read_and_positions(tmp_path):
    log = _open(tmp_path)
    first = log.append(_events(5, "a"))
    log.append(_events(5, "b"))
    assert (first.first_sequence, first.last_sequence) == (0, 4)
    events = _decode(log.read(0, 100)[0])
    assert [e.event.body for e in events] == [f"a{i}".encode() for i in range(5)] + [f"b{i}".encode() for i in range(5)]
    mid = _decode(log.read(3, 4)[0])
    assert [e.sequence_number for e in mid] == [3, 4, 5, 6]
    off7 = events[7].offset
    assert log.sequence_for_offset(off7, inclusive=True) == 7
    assert log.sequence_for_offset(off7, inclusive=False) == 8
    assert log.last_offset() == events[-1].offset
    assert log.sequence_for_time(0) == 0
    assert log.sequence_for_time(time.time_ns() + 10**9) == 10
    log.close()


def test_recovery_cuts_a_torn_tail_and_sequences_continue(tmp_path):
    log = _open(tmp_path)
    for i in range(3):
        log.append(_events(4, f"k{i}-"))
    seg_path = log.active.path
    size = os.path.getsize(seg_path)
    log.close()
    # A torn write: half of a fourth batch reached the file before kill -9.
    torn = encode_batch(_events(4, "torn"), "0", 12, 0, time.time_ns()).data
    with open(seg_path, "ab") as fh:
        fh.write(torn[: len(torn) // 2])
    log = _open(tmp_path)
    assert os.path.getsize(seg_path) == size
    assert log.next_sequence == 12
    assert log.append(_events(2, "after")).first_sequence == 12
    events = _decode(log.read(0, 100)[0])
    assert [e.sequence_number for e in events] == list(range(14))
    assert events[-1].event.body == b"after1"
    log.close()


def test_recovery_cuts_a_corrupt_batch(tmp_path):
    log = _open(tmp_path)
    log.append(_events(3))
    good = log.active.size
    log.append(_events(3, "bad"))
    path = log.active.path
    log.close()
    with open(path, "r+b") as fh:  # flip a byte inside the last batch's payload
        fh.seek(good + 80)
        b = fh.read(1)
        fh.seek(good + 80)
        fh.write(bytes([b[0] ^ 0xFF]))
    log = _open(tmp_path)
    assert log.next_sequence == 3 and log.active.size == good
    log.close()


def test_idempotent_producer_state_survives_reopen(tmp_path):
    log = _open(tmp_path)
    r = log.append(_events(3), producer_id="p", producer_sequence=0)
    log.close()
    log = _open(tmp_path)
    dup = log.append(_events(3), producer_id="p", producer_sequence=0)
    assert dup.duplicate and dup.first_sequence == r.first_sequence
    with pytest.raises(HeadwaterError) as err:
        log.append(_events(1), producer_id="p", producer_sequence=7)
    assert err.value.reason is Reason.PRECONDITION_FAILED
    assert not log.append(_events(1), producer_id="p", producer_sequence=3).duplicate
    assert log.next_sequence == 4
    log.close()


def test_segments_roll_and_retention_removes_whole_old_segments(tmp_path):
    log = _open(tmp_path, segment_max_bytes=4096)
    for i in range(10):
        log.append(_events(5, f"r{i}-", size=300))
    assert len(log.segments) > 3
    cutoff = time.time_ns() + 1
    removed = log.apply_retention(cutoff)
    assert removed == 50 and log.is_empty and log.beginning_sequence == 50
    assert log.append(_events(1)).first_sequence == 50
    # Reading before the beginning starts at the beginning.
    events = _decode(log.read(0, 10)[0])
    assert [e.sequence_number for e in events] == [50]
    log.close()
    log = _open(tmp_path, segment_max_bytes=4096)
    assert (log.beginning_sequence, log.next_sequence) == (50, 51)
    log.close()


def test_retention_keeps_recent_segments(tmp_path):
    log = _open(tmp_path, segment_max_bytes=4096)
    for _i in range(12):
        log.append(_events(5, size=300))
    old_cutoff = log.segments[2].last_ts_ns + 1
    log.apply_retention(old_cutoff)
    assert log.beginning_sequence > 0 and not log.is_empty
    assert _decode(log.read(0, 1)[0])[0].sequence_number == log.beginning_sequence
    log.close()


def test_read_respects_max_events_across_batches_and_segments(tmp_path):
    log = _open(tmp_path, segment_max_bytes=4096)
    for _i in range(20):
        log.append(_events(7, size=100))
    seq, seen = 0, []
    while True:
        pieces, n, seq = log.read(seq, 9)
        if not n:
            break
        assert n <= 9
        seen += [e.sequence_number for e in _decode(pieces)]
    assert seen == list(range(140))
    log.close()
