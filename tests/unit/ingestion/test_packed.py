"""The packed read view says what the stored frames say: every body, number,
content type and (when asked) property, as the per-event messages would."""

from __future__ import annotations

import numpy as np
import pytest

from headwater.services.ingestion.log.segment import encode_batch, slice_batches
from headwater.services.ingestion.packed import pack_frames
from headwater.v1 import event_pb2
from headwater.v1 import ingestion_pb2 as ipb


def _frames(events: list[event_pb2.EventData], base: int = 41, start: int = 41) -> bytes:
    batch = encode_batch([e.SerializeToString() for e in events], "3", base, 1000, 1_700_000_000_123_456_789)
    pieces, _ = slice_batches(batch.data, start, len(events))
    return b"".join(pieces)


def test_packed_matches_the_events_column_by_column():
    events = [event_pb2.EventData(body=f'{{"i": {i}}}'.encode() * (1 + i % 3),
                                  content_type="application/json" if i % 4 else "avro/binary+7",
                                  properties={"k": str(i)} if i % 2 else {}, message_id=f"m{i}")
              for i in range(50)]
    events.append(event_pb2.EventData(body=b"", content_type="application/json"))  # an empty body
    buf = _frames(events, start=43)  # from the middle of the batch
    want = ipb.ReadEventsResponse.FromString(buf).events
    got = ipb.PackedEvents.FromString(pack_frames(buf))
    offsets = np.array(got.body_offsets)
    assert len(offsets) == len(want) + 1 and offsets[0] == 0
    assert [got.bodies[offsets[i]:offsets[i + 1]] for i in range(len(want))] == [e.event.body for e in want]
    assert list(got.sequence_numbers) == [e.sequence_number for e in want] == list(range(43, 92))
    assert list(got.offsets) == [e.offset for e in want]
    assert list(got.enqueued_times_us) == [e.enqueued_time.seconds * 1_000_000 + e.enqueued_time.nanos // 1000
                                           for e in want]
    assert [got.content_types[i] for i in got.content_type_ids] == [e.event.content_type for e in want]
    assert not got.metadata  # only when asked

    meta = ipb.PackedEvents.FromString(pack_frames(buf, include_properties=True)).metadata
    assert [dict(m.properties) for m in meta] == [dict(e.event.properties) for e in want]
    assert [m.message_id for m in meta] == [e.event.message_id for e in want]


def test_one_content_type_is_sent_once_and_empty_reads_are_empty():
    buf = _frames([event_pb2.EventData(body=b"x", content_type="application/json")] * 5)
    got = ipb.PackedEvents.FromString(pack_frames(buf))
    assert list(got.content_types) == ["application/json"] and not got.content_type_ids
    assert ipb.PackedEvents.FromString(pack_frames(b"")) == ipb.PackedEvents(body_offsets=[0])


def test_compiled_kernel_writes_the_same_answer_as_the_numpy_passes():
    from headwater.services.ingestion.log.jit import KERNELS
    from headwater.services.ingestion.packed import _pack_compiled, _pack_numpy, packed_answer

    k = KERNELS.load()
    tail = ipb.ReadEventsResponse(last_enqueued_sequence_number=99).SerializeToString()
    mixed = [event_pb2.EventData(body=b'{"i": %d}' % i * (i % 3), content_type="application/json" if i % 5 else "",
                                 partition_key="pk", properties={"p": "q"}) for i in range(40)]
    same = [event_pb2.EventData(body=b"y" * i, content_type="avro/binary+3") for i in range(300)]
    for events in (mixed, same):
        buf = _frames(events, start=42)
        cols = _pack_numpy(buf)
        assert _pack_compiled(k, buf, b"", 0) == cols
        answer = _pack_compiled(k, buf, tail, 6)
        assert answer == packed_answer(buf, False, tail)
        resp = ipb.ReadEventsResponse.FromString(answer)
        assert resp.packed == ipb.PackedEvents.FromString(cols) and resp.last_enqueued_sequence_number == 99
    # A frame that does not parse: the kernel hands it back to the numpy passes.
    bad = _frames(same)[:-3]
    assert _pack_compiled(k, bad, b"", 0) is None
    assert pack_frames(bad) == _pack_numpy(bad)
    with pytest.raises(ValueError):
        pack_frames(b"\x0b" + bad[1:])  # not an events entry
