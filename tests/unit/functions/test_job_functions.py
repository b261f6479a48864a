"""JavaScript functions carried in a job's definition (Job.functions) run through the job seam,
and GetMetadataPropertyValue reads the Event Hubs columns the runtime adds to job inputs."""

from __future__ import annotations

import orjson
import pytest

from headwater.errors import HeadwaterError
from headwater.services.processing.engine_adapter import JobRuntime
from headwater.v1 import processing_pb2 as pb

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds
UDA_SUM = "function main() { this.init = function () { this.s = 0; };" \
          " this.accumulate = function (v, ts) { this.s += v; }; this.computeResult = function () { return this.s; }; }"


def job(query: str, functions=()) -> pb.Job:
    return pb.Job(name="jobs/t", query=query, functions=list(functions),
                  inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h", format="json")],
                  outputs=[pb.JobOutput(alias="o", sink="sinks/s")])


def test_job_carries_javascript_udf_and_uda() -> None:
    rt = JobRuntime(job("SELECT UDA.total(v) AS total, COUNT(*) AS n INTO [o] FROM [i] TIMESTAMP BY t "
                        "GROUP BY TumblingWindow(second, 10); SELECT UDF.double(v) AS d INTO [o] FROM [i]",
                        [pb.JobFunction(name="double", language="javascript", code="function main(x) { return 2 * x; }"),
                         pb.JobFunction(name="total", code=UDA_SUM)]))
    bodies = [orjson.dumps({"t": f"2023-11-14T22:13:2{i}Z", "v": i}) for i in range(1, 4)]
    rt.feed("i", bodies, ["application/json"] * 3, [T0 + 10_000_000] * 3, ["0"] * 3)
    rt.rt.flush()
    rows = rt.take_outputs()["o"]
    assert sorted(r["d"] for r in rows if "d" in r) == [2, 4, 6]
    assert [(r["total"], r["n"]) for r in rows if "total" in r] == [(6, 3)]


def test_bad_javascript_in_a_job_is_invalid_argument() -> None:
    with pytest.raises(HeadwaterError, match="job.functions.*does not compile") as info:
        JobRuntime(job("SELECT UDF.f(v) AS x INTO [o] FROM [i]", [pb.JobFunction(name="f", code="function main( {")]))
    assert info.value.reason == "INVALID_ARGUMENT"
    with pytest.raises(HeadwaterError, match="javascript only"):
        JobRuntime(job("SELECT UDF.f(v) AS x INTO [o] FROM [i]",
                       [pb.JobFunction(name="f", language="python", code="import os")]))


def test_get_metadata_property_value_in_a_job() -> None:
    rt = JobRuntime(job("SELECT v, GetMetadataPropertyValue(i, '[EventHub].[EventEnqueuedUtcTime]') AS enq,"
                        " GetMetadataPropertyValue(i, 'EventHub.PartitionId') AS pid INTO [o] FROM [i]"))
    rt.feed("i", [orjson.dumps({"v": 1})], ["application/json"], [T0], ["2"])
    rt.rt.flush()
    (row,) = rt.take_outputs()["o"]
    assert row["pid"] == 2 and row["enq"].isoformat() == "2023-11-14T22:13:20+00:00"
