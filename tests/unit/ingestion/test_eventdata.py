"""The SDK's EventData and EventDataBatch shapes (azure-eventhub's), and starting positions."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from headwater.eventhub import EventData, EventDataBatch
from headwater.eventhub._common import event_position
from headwater.services.ingestion.log.segment import encode_batch
from headwater.v1 import event_pb2, ingestion_pb2


def _received(**fields) -> EventData:
    raw = event_pb2.EventData(**fields).SerializeToString()
    batch = encode_batch([raw], "2", 41, 1000, time.time_ns())
    msg = ingestion_pb2.ReadEventsResponse.FromString(batch.data[-batch.payload_len:]).events[0]
    return EventData._from_received(msg)


def test_received_event_reads_its_fields_and_stamps():
    ev = _received(body=b'{"a": 1}', properties={"k": "v"}, content_type="application/json",
                   message_id="m1", correlation_id="c1", partition_key="car")
    assert ev.body_as_json() == {"a": 1} and ev.properties == {"k": "v"}
    assert (ev.content_type, ev.message_id, ev.correlation_id, ev.partition_key) == (
        "application/json", "m1", "c1", "car")
    assert (ev.sequence_number, ev.offset, ev.partition_id) == (41, "1000", "2")
    assert ev.enqueued_time.tzinfo is not None
    assert ev.system_properties["x-opt-sequence-number"] == 41


def test_a_received_event_can_be_changed_and_sent_again():
    ev = _received(body=b"x", properties={"k": "v"})
    ev.properties["extra"] = 1
    ev.content_type = "text/plain"
    batch = EventDataBatch(partition_key="p")
    batch.add(ev)
    sent = event_pb2.EventData.FromString(batch._events[0])
    assert sent.body == b"x" and dict(sent.properties) == {"k": "v", "extra": "1"}
    assert sent.content_type == "text/plain" and sent.partition_key == "p"


def test_batch_add_takes_a_snapshot_and_refuses_to_grow_past_the_limit():
    ev = EventData("one")
    batch = EventDataBatch(max_size_in_bytes=100)
    batch.add(ev)
    ev.properties["later"] = "x"
    assert dict(event_pb2.EventData.FromString(batch._events[0]).properties) == {}
    with pytest.raises(ValueError, match="size limit: 100"):
        batch.add(EventData(b"y" * 90))
    assert len(batch) == 1 and batch.size_in_bytes < 100
    with pytest.raises(TypeError):
        batch.add("not an event")
    with pytest.raises(TypeError):
        EventData(42)


def test_starting_positions():
    assert event_position("-1").earliest and event_position("@latest").latest
    assert event_position("120").offset == 120 and not event_position("120").inclusive
    assert event_position(7, True).sequence_number == 7 and event_position(7, True).inclusive
    when = event_position(dt.datetime(2024, 1, 1))
    assert when.enqueued_time.ToDatetime() == dt.datetime(2024, 1, 1)
    with pytest.raises(ValueError, match="starting_position"):
        event_position("yesterday")
