"""The runner's side of GetMetadataPropertyValue: properties are read only for inputs
whose readers call it, and packed answers' metadata survives merging and slicing."""

from __future__ import annotations

from types import SimpleNamespace

from headwater.services.processing.engine_adapter import JobRuntime
from headwater.services.processing.runtime import Chunk, JobRunner, merge_chunks
from headwater.v1 import event_pb2
from headwater.v1 import ingestion_pb2 as ipb
from tests.unit.processing.test_engine_adapter import job


def _request(query: str):
    runner = SimpleNamespace(rt=JobRuntime(job(query)))
    return JobRunner._read_request(runner, "hubs/h", "$Default", "0", event_pb2.EventPosition(earliest=True),
                                   100, "i")


def test_properties_are_read_only_when_the_query_calls_the_function():
    assert not _request("SELECT v, PartitionId INTO [o] FROM [i]").include_properties
    assert _request("SELECT GetMetadataPropertyValue(i, 'User') AS u INTO [o] FROM [i]").include_properties


def _answer(first_seq: int, n: int) -> ipb.ReadEventsResponse:
    bodies = [b'{"v":%d}' % (first_seq + k) for k in range(n)]
    offs = [0]
    for b in bodies:
        offs.append(offs[-1] + len(b))
    return ipb.ReadEventsResponse(packed=ipb.PackedEvents(
        bodies=b"".join(bodies), body_offsets=offs, sequence_numbers=range(first_seq, first_seq + n),
        enqueued_times_us=[1] * n, offsets=[100 * (first_seq + k) for k in range(n)], content_types=["application/json"],
        metadata=[ipb.PackedEventMetadata(properties={"n": str(first_seq + k)}, partition_key=f"k{first_seq + k}")
                  for k in range(n)]))


def test_chunk_metadata_survives_merge_and_take():
    merged = merge_chunks([Chunk.of("i", "0", _answer(0, 2)), Chunk.of("i", "0", _answer(2, 2))])[("i", "0")]
    meta = merged.take(slice(1, 4)).metadata()
    assert [(m["SequenceNumber"], m["Offset"], m["PartitionKey"], m["User"]) for m in meta] == [
        (1, "100", "k1", {"n": "1"}), (2, "200", "k2", {"n": "2"}), (3, "300", "k3", {"n": "3"})]
    plain = ipb.ReadEventsResponse(packed=ipb.PackedEvents(bodies=b"{}", body_offsets=[0, 2], sequence_numbers=[5],
                                                           enqueued_times_us=[1], offsets=[0]))
    assert Chunk.of("i", "0", plain).metadata() is None
