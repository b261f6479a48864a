"""A Send key's poison events cannot stop a job: an event nested 1,000 deep, bad UTF-8,
cut JSON and a number out of range are counted (with a sample naming partition and
sequence number), and the pass-through job goes on, across a restart too. Every
service a real process."""

from __future__ import annotations

import pytest

from tests.integration.processing_support import Pipeline

pytestmark = pytest.mark.slow

POISON = [
    b'{"tripId": "deep", "d": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"tripId": "bad-utf8", "s": "\xff\xfe"}',
    b'{"tripId": "cut", "fare": 1',
    b'{"tripId": "huge", "fare": 12.5e999}',
]


def _publish_raw(pipe: Pipeline, hub: str, bodies: list[bytes]) -> None:
    from headwater.v1 import event_pb2
    from headwater.v1 import ingestion_pb2 as ipb

    pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
        hub=f"hubs/{hub}", partition_id="0",
        events=[event_pb2.EventData(body=b, content_type="application/json") for b in bodies]))


def test_poison_events_are_counted_and_the_passthrough_job_goes_on(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("mem", "memory")
    pipe.create_job("copy", "SELECT * INTO [Mem] FROM [Trips]", {"Trips": "trips"}, {"Mem": "mem"})
    pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)
    good = [f'{{"tripId": "g{i}", "fare": 1.5}}'.encode() for i in range(10)]
    _publish_raw(pipe, "trips", good[:5] + POISON + good[5:])

    def trip_ids():
        return sorted(r["tripId"] for r in pipe.read_table("mem"))

    rows = pipe.wait_rows(trip_ids, lambda ids: len(ids) >= 11, timeout=30)
    # The deep event is valid JSON (1,000 levels): it goes through as a record; the other
    # three are refused one by one, never the batch around them.
    assert rows == sorted([f"g{i}" for i in range(10)] + ["deep"])
    m = pipe.wait_metrics("copy", lambda m: m.input_deserialization_errors + m.data_conversion_errors >= 3)
    assert m.input_deserialization_errors + m.data_conversion_errors == 3
    assert pipe.get_job("copy").state == ppb.JOB_STATE_RUNNING
    # Each refused event is named: partition and sequence number (the 7th to 9th published).
    named = " ".join(m.error_samples)
    for seq in (6, 7, 8):
        assert f"'sequence_number': {seq}" in named and "'partition': '0'" in named, named

    # A restart does not fail on them again (they are behind the checkpoint, counted once).
    pipe.processing.kill()
    pipe.start_processing()
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after restart")
    _publish_raw(pipe, "trips", [b'{"tripId": "after"}'])
    rows = pipe.wait_rows(trip_ids, lambda ids: "after" in ids, timeout=30)
    assert rows.count("g0") == 1 and "after" in rows
    assert pipe.get_job("copy").state == ppb.JOB_STATE_RUNNING
