"""Issue 9: one 14 KB event under ``LIKE '%error%timeout%retry%'`` froze the processing service
for 13 s (backtracking). Against a real processing process: TestQuery with that event, and a
catastrophic REGEXMATCH pattern, answers correctly while the health service answers too; a
job carries JavaScript functions as code and bad code is refused with INVALID_ARGUMENT."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from headwater.channel import sync_channel
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc
from tests.conftest import conn_for

NOISE = "error timeout " * 1000  # 14 KB, every word but 'retry'


def test_like_and_regexmatch_on_hostile_input_do_not_stall(service_process, root_policy):
    proc = service_process("processing")
    events = b"\n".join(json.dumps(e).encode() for e in [
        {"id": 1, "msg": NOISE}, {"id": 2, "msg": NOISE + "retry"}, {"id": 3, "msg": "a" * 5000 + "!"}])
    query = ("SELECT id, REGEXMATCH(msg, '(a+)+$') AS catastrophic, REGEXMATCH(msg, '(') AS invalid INTO [Out] "
             "FROM [In] WHERE msg LIKE '%error%timeout%retry%' OR msg LIKE 'a%!'")
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = pb_grpc.ProcessingServiceStub(ch)
        health = health_pb2_grpc.HealthStub(ch)
        with ThreadPoolExecutor(2) as pool:
            query_done = pool.submit(stub.TestQuery, pb.TestQueryRequest(
                query=query, inputs=[pb.TestInput(alias="In", data=events)]), timeout=60)
            probe = pool.submit(health.Check, health_pb2.HealthCheckRequest(), timeout=60)
            assert probe.result().status == health_pb2.HealthCheckResponse.SERVING
            (out,) = query_done.result().outputs
        rows = sorted((json.loads(line) for line in out.rows.data.splitlines()), key=lambda r: r["id"])
        assert rows == [{"id": 2, "catastrophic": 0, "invalid": 0}, {"id": 3, "catastrophic": 0, "invalid": 0}]


def test_job_carries_javascript_functions_and_refuses_bad_code(service_process, root_policy):
    proc = service_process("processing")
    job = pb.Job(name="jobs/js", query="SELECT UDF.hex(h) AS n INTO [Out] FROM [In]",
                 inputs=[pb.JobInput(alias="In", kind=pb.INPUT_KIND_STREAM, hub="hubs/h", format="json")],
                 outputs=[pb.JobOutput(alias="Out", sink="sinks/s")],
                 functions=[pb.JobFunction(name="hex", language="javascript",
                                           code="function main(h) { return parseInt(h, 16); }")])
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = pb_grpc.ProcessingServiceStub(ch)
        stub.CreateJob(pb.CreateJobRequest(job=job), timeout=30)
        got = stub.GetJob(pb.GetJobRequest(name="jobs/js"), timeout=30).job
        assert [(f.name, f.language) for f in got.functions] == [("hex", "javascript")]
        assert "parseInt" in got.functions[0].code
        bad = pb.Job()
        bad.CopyFrom(job)
        bad.name = "jobs/bad"
        bad.functions[0].code = "function main( {"
        try:
            stub.CreateJob(pb.CreateJobRequest(job=bad), timeout=30)
            raise AssertionError("bad JavaScript was accepted")
        except grpc.RpcError as exc:
            err = HeadwaterError.from_rpc_error(exc)
        assert err.reason is Reason.INVALID_ARGUMENT and "does not compile" in err.message
