"""The runtime seam for the batch read path: feed_packed, take_output_tables,
advance_arrival, poison events counted with samples, query limits (issues 9 and 10)."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pytest

from headwater.errors import HeadwaterError, QueryCompileError
from headwater.services.processing.engine import compile_query
from headwater.services.processing.engine_adapter import JobRuntime
from headwater.services.processing.sql.parser import MAX_IN_LIST, MAX_QUERY_CHARS
from headwater.v1 import processing_pb2 as pb

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z


def job(query: str) -> pb.Job:
    return pb.Job(name="jobs/t", query=query,
                  inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h", format="json")],
                  outputs=[pb.JobOutput(alias="o", sink="sinks/s")])


def packed(bodies: list[bytes]) -> tuple[bytes, np.ndarray]:
    offsets = np.zeros(len(bodies) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in bodies])
    return b"".join(bodies), offsets


def feed(rt: JobRuntime, bodies: list[bytes], partition: str = "0", first_seq: int = 100, t0: int = T0) -> None:
    body, offsets = packed(bodies)
    n = len(bodies)
    rt.feed_packed("i", partition, body, offsets, "application/json", np.arange(n, dtype=np.int64) + t0,
                   np.arange(first_seq, first_seq + n, dtype=np.int64))


def test_feed_packed_equals_feed_and_outputs_are_typed_tables() -> None:
    q = ("SELECT k, COUNT(*) AS n, AVG(v) AS a, System.Timestamp() AS e, 1 = 1 AS yes INTO [o] FROM [i] "
         "TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 10)")
    bodies = [orjson.dumps({"k": f"k{i % 3}", "v": i, "t": f"2023-11-14T22:13:2{1 + i % 9}Z"}) for i in range(30)]
    a, b = JobRuntime(job(q)), JobRuntime(job(q))
    feed(a, bodies)
    a.rt.flush()
    b.feed("i", bodies, ["application/json"] * 30, [T0] * 30, ["0"] * 30)
    b.rt.flush()
    tables = a.take_output_tables()
    assert sorted(tables["o"].to_pylist(), key=lambda r: r["k"]) == \
        sorted(b.take_output_tables()["o"].to_pylist(), key=lambda r: r["k"])
    t = tables["o"]
    assert t.schema.field("k").type == pa.string() and t.schema.field("n").type == pa.int64()
    assert t.schema.field("a").type == pa.float64() and t.schema.field("e").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("yes").type == pa.bool_() and t.num_rows == 3


def test_records_arrays_and_mixed_columns_are_json_text() -> None:
    rt = JobRuntime(job("SELECT r, x INTO [o] FROM [i]"))
    feed(rt, [orjson.dumps({"r": {"a": 1}, "x": 1}), orjson.dumps({"r": [1, 2], "x": "one"})])
    rt.advance_arrival(T0 + 10)
    t = rt.take_output_tables()["o"]
    assert t.schema.field("r").type == pa.string() and t.schema.field("x").type == pa.string()
    assert t.column("r").to_pylist() == ['{"a":1}', "[1,2]"]


def test_poison_events_are_counted_with_partition_and_sequence_number() -> None:
    rt = JobRuntime(job("SELECT COUNT(*) AS n INTO [o] FROM [i] TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)"))
    deep = b'{"t":"2023-11-14T22:13:21Z","d":' + b"[" * 1000 + b"]" * 1000 + b"}"
    good = b'{"t":"2023-11-14T22:13:21Z"}'
    bodies = [good, b'{"t": "2023-11-14T22:13:21Z", "s": "\xff\xfe"}', b"[1, 2", good, deep,
              b'{"t": 12.5e999}', b'{"t": {"not": "a time"}}', good]
    feed(rt, bodies, partition="3", first_seq=500)
    rt.rt.flush()
    assert rt.take_outputs()["o"] == [{"n": 4}]  # three good ones and the deep one (decodes: 1,000 < orjson's limit)
    c = rt.counters()
    assert c["conversion_errors"] == 1 and c["deserialization_errors"] == 3  # bad UTF-8, cut JSON, 1e999
    samples = rt.error_samples()
    assert [(s["partition"], s["sequence_number"]) for s in samples] == [("3", 501), ("3", 502), ("3", 505),
                                                                         ("3", 506)]
    assert all(s["reason"] for s in samples)


def test_a_failing_cast_stops_the_job_naming_partition_and_offsets() -> None:
    rt = JobRuntime(job("SELECT CAST(v AS float) AS f INTO [o] FROM [i]"))
    with pytest.raises(HeadwaterError) as info:
        feed(rt, [orjson.dumps({"v": "1.5"}), orjson.dumps({"v": "abc"})], partition="2", first_seq=70)
        rt.advance_arrival(T0 + 10)
    assert "CAST" in info.value.message and "partition 2" in info.value.message


def test_advance_arrival_closes_arrival_time_windows() -> None:
    rt = JobRuntime(job("SELECT COUNT(*) AS n INTO [o] FROM [i] GROUP BY TumblingWindow(second, 10)"))
    feed(rt, [b'{"a":1}'] * 5, t0=T0 + 1)
    assert rt.take_outputs()["o"] == []
    rt.advance_arrival(T0 + 10_000_001)
    assert rt.take_outputs()["o"] == [{"n": 5}]


def test_query_text_and_in_list_limits_are_compile_errors() -> None:
    with pytest.raises(QueryCompileError, match="at most"):
        compile_query("SELECT * FROM i -- " + "x" * MAX_QUERY_CHARS)
    items = ", ".join(str(i) for i in range(MAX_IN_LIST + 1))
    with pytest.raises(QueryCompileError, match=f"at most {MAX_IN_LIST} items") as info:
        compile_query(f"SELECT *\nFROM i WHERE v IN ({items})")
    assert (info.value.line, info.value.column) == (2, 16)


def test_partitions_fed_one_after_another_close_arrival_windows_once() -> None:
    """An epoch feeds partition 0 (arrived up to 12 s) then partition 1 (arrived at 5 s): the
    window (0, 10] closes with both partitions' events in one row, not two partial rows."""
    rt = JobRuntime(job("SELECT COUNT(*) AS n INTO [o] FROM [i] GROUP BY TumblingWindow(second, 10)"))
    base = T0 - T0 % 10_000_000
    feed(rt, [b'{"a":1}'] * 3, partition="0", t0=base + 12_000_000)
    feed(rt, [b'{"a":2}'] * 2, partition="1", t0=base + 5_000_000)
    rt.advance_arrival(base + 12_000_000)
    assert rt.take_outputs()["o"] == [{"n": 2}]
    rt.advance_arrival(base + 20_000_001)
    assert rt.take_outputs()["o"] == [{"n": 3}]


def test_read_answers_map_number_columns_without_an_object_per_value() -> None:
    """ReadEventsResponseColumns is wire-identical to ReadEventsResponse: the packed
    columns come as little-endian bytes, mapped by Chunk.of; slices share the buffer."""
    from headwater.eventhub.wire import ReadEventsResponseColumns
    from headwater.services.processing.runtime import Chunk, merge_chunks
    from headwater.v1 import ingestion_pb2 as ipb

    resp = ipb.ReadEventsResponse(last_enqueued_sequence_number=12)
    p = resp.packed
    p.bodies, p.content_types[:] = b'{"a":1}{"a":22}{"a":333}', ["application/json", "text/x"]
    p.body_offsets.extend([0, 7, 15, 24])
    p.sequence_numbers.extend([10, 11, 12])
    p.enqueued_times_us.extend([T0, T0 + 1, T0 + 2])
    p.content_type_ids.extend([0, 1, 0])
    resp.retrieval_time.seconds = 5
    wire = resp.SerializeToString()
    as_objects = Chunk.of("i", "0", ipb.ReadEventsResponse.FromString(wire))
    cols = ReadEventsResponseColumns.FromString(wire)
    assert isinstance(cols.packed.body_offsets, bytes) and cols.HasField("retrieval_time")
    chunk = Chunk.of("i", "0", cols)
    for name in ("offsets", "seqs", "arrivals", "ct_ids"):
        assert getattr(chunk, name).tolist() == getattr(as_objects, name).tolist(), name
    assert chunk.bodies == as_objects.bodies and chunk.content_types == as_objects.content_types

    tail = chunk.take(slice(1, 3))
    assert tail.bodies is chunk.bodies and tail.offsets.tolist() == [7, 15, 24] and tail.nbytes == 17
    assert [t for t, _ in tail.by_content_type()] == ["text/x", "application/json"]
    merged = merge_chunks([chunk.take(slice(0, 1)), tail])[("i", "0")]
    assert merged.bodies == chunk.bodies and merged.offsets.tolist() == [0, 7, 15, 24]
    assert merged.seqs.tolist() == [10, 11, 12]


def test_newline_joined_reads_bodies_at_any_offset() -> None:
    from headwater.services.processing.engine import PackedBodies

    buf = b'xx{"a":1}{"b":2}{"c":3}'
    assert PackedBodies(buf, np.array([2, 9, 16, 23])).newline_joined() == b'{"a":1}\n{"b":2}\n{"c":3}'
    assert PackedBodies(buf, np.array([9, 16])).newline_joined() == b'{"b":2}'
    assert PackedBodies(buf, np.array([9])).newline_joined() == b""


def test_a_small_vectorised_state_is_captured_with_its_size() -> None:
    rt = JobRuntime(job("SELECT k, COUNT(*) AS n INTO [o] FROM [i] TIMESTAMP BY t GROUP BY k, TumblingWindow(s, 10)"),
                    "", None)
    feed(rt, [orjson.dumps({"k": "a", "t": "2023-11-14T22:13:20Z"})])
    captured = rt.snapshot_begin()
    assert captured.nbytes() is not None and captured.nbytes() < 1 << 20
    rt2 = JobRuntime(job("SELECT k, COUNT(*) AS n INTO [o] FROM [i] TIMESTAMP BY t GROUP BY k, TumblingWindow(s, 10)"),
                     "", None)
    rt2.restore(captured.finish())
