"""The job seam: Event Hubs system columns (PartitionId, EventEnqueuedUtcTime) for job inputs."""

from __future__ import annotations

import numpy as np
import orjson

from headwater.services.processing.engine_adapter import JobRuntime
from headwater.v1 import processing_pb2 as pb

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds


def job(query: str) -> pb.Job:
    return pb.Job(name="jobs/t", query=query,
                  inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h", format="json")],
                  outputs=[pb.JobOutput(alias="o", sink="sinks/s")])


def test_partition_by_partition_id_counts_per_partition():
    rt = JobRuntime(job("SELECT PartitionId, COUNT(*) AS n INTO [o] FROM [i] PARTITION BY PartitionId "
                        "TIMESTAMP BY t GROUP BY TumblingWindow(second, 10), PartitionId"))
    bodies = [orjson.dumps({"t": f"2023-11-14T22:13:2{i}Z"}) for i in range(1, 7)]
    rt.feed("i", bodies, ["application/json"] * 6, [T0 + 10_000_000] * 6, ["0", "1", "0", "1", "0", "0"])
    rt.rt.flush()
    rows = rt.take_outputs()["o"]
    assert sorted((r["PartitionId"], r["n"]) for r in rows) == [(0, 4), (1, 2)]


def test_enqueued_time_column_and_payload_wins():
    rt = JobRuntime(job("SELECT v, EventEnqueuedUtcTime AS enq, PartitionId INTO [o] FROM [i]"))
    rt.feed("i", [orjson.dumps({"v": 1}), orjson.dumps({"v": 2, "PartitionId": "mine"})],
            ["application/json"] * 2, [T0, T0 + 1_000_000], ["3", "3"])
    rt.rt.flush()
    rows = sorted(rt.take_outputs()["o"], key=lambda r: r["v"])
    assert rows[0]["PartitionId"] == 3 and rows[1]["PartitionId"] == "mine"
    assert rows[0]["enq"].isoformat() == "2023-11-14T22:13:20+00:00"


def test_system_columns_come_from_the_plan_not_the_query_text():
    """A comment naming PartitionId adds no column; a column reference does (issue 10)."""
    rt = JobRuntime(job("-- PartitionId EventEnqueuedUtcTime\n"
                        "SELECT COUNT(*) AS n INTO [o] FROM [i] TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)"))
    assert rt.rt.system == {}
    assert rt.rt.mode == "vectorised"
    rt = JobRuntime(job("SELECT v, PartitionId AS p INTO [o] FROM [i]"))
    assert rt.rt.system == {"i": {"PartitionId"}}


def _packed(events: list) -> tuple[bytes, np.ndarray]:
    bodies = [orjson.dumps(e) for e in events]
    offsets = np.zeros(len(bodies) + 1, np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    return b"".join(bodies), offsets


def test_metadata_inputs_only_for_get_metadata_property_value():
    """Only a plan calling GetMetadataPropertyValue makes the runner read properties."""
    assert JobRuntime(job("SELECT v, PartitionId INTO [o] FROM [i]")).metadata_inputs == set()
    rt = JobRuntime(job("SELECT GetMetadataPropertyValue(x, '[User].[color]') AS c INTO [o] FROM [i] x"))
    assert rt.metadata_inputs == {"i"}


def test_feed_packed_metadata_reaches_get_metadata_property_value():
    rt = JobRuntime(job("SELECT v, GetMetadataPropertyValue(x, '[User].[color]') AS c, "
                        "GetMetadataPropertyValue(x, '[EventHub].[SequenceNumber]') AS s, "
                        "GetMetadataPropertyValue(x, '[EventHub].[Offset]') AS o, "
                        "GetMetadataPropertyValue(x, '[EventHub].[PartitionKey]') AS k, "
                        "GetMetadataPropertyValue(x, '[EventHub].[PartitionId]') AS p, "
                        "GetMetadataPropertyValue(x, 'User') AS u INTO [o] FROM [i] x"))
    # the second body is an array: both its events carry its metadata
    body, offsets = _packed([{"v": 1}, [{"v": 2}, {"v": 3}], "not an object"])
    meta = [{"Offset": "0", "SequenceNumber": 7, "PartitionKey": "k1", "User": {"color": "red"}},
            {"Offset": "64", "SequenceNumber": 8, "PartitionKey": None, "User": {"color": "blue", "n": "1"}},
            {"Offset": "128", "SequenceNumber": 9, "PartitionKey": None, "User": {}}]
    rt.feed_packed("i", "2", body, offsets, "application/json", np.full(3, T0, np.int64),
                   np.array([7, 8, 9], np.int64), metadata=meta)
    rt.rt.flush()
    rows = sorted(rt.take_outputs()["o"], key=lambda r: r["v"])
    assert [(r["v"], r["c"], r["s"], r["o"], r["k"], r["p"]) for r in rows] == [
        (1, "red", 7, "0", "k1", 2), (2, "blue", 8, "64", None, 2), (3, "blue", 8, "64", None, 2)]
    assert rows[1]["u"] == {"color": "blue", "n": "1"}


def test_feed_packed_without_metadata_reads_null():
    rt = JobRuntime(job("SELECT v, GetMetadataPropertyValue(x, '[User].[color]') AS c INTO [o] FROM [i] x"))
    body, offsets = _packed([{"v": 1}])
    rt.feed_packed("i", "0", body, offsets, "application/json", np.full(1, T0, np.int64), np.array([0], np.int64))
    rt.rt.flush()
    assert [(r["v"], r["c"]) for r in rt.take_outputs()["o"]] == [(1, None)]


def test_metadata_with_a_vectorised_reader_of_the_same_input():
    """One statement reads metadata (row path), another the same input vectorised."""
    j = job("SELECT v, GetMetadataPropertyValue(x, '[User].[color]') AS c INTO [o] FROM [i] x;\n"
            "SELECT COUNT(*) AS n INTO [o2] FROM [i] GROUP BY TumblingWindow(second, 10)")
    j.outputs.append(pb.JobOutput(alias="o2", sink="sinks/s2"))
    rt = JobRuntime(j)
    assert rt.rt.mode == "mixed"
    body, offsets = _packed([{"v": 1}, {"v": 2}])
    meta = [{"User": {"color": "red"}}, {"User": {}}]
    rt.feed_packed("i", "0", body, offsets, "application/json", np.full(2, T0, np.int64),
                   np.array([0, 1], np.int64), metadata=meta)
    rt.rt.flush()
    out = rt.take_outputs()
    assert sorted((r["v"], r["c"]) for r in out["o"]) == [(1, "red"), (2, None)]
    assert [r["n"] for r in out["o2"]] == [2]
