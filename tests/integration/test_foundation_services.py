"""The four services as real processes: health, reflection, errors and auth over the wire."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from headwater.auth import AUTH_FAILED, Policy, PolicyStore, Right, generate_sas_token
from headwater.channel import sync_channel
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc
from tests.conftest import conn_for

SERVICES = ("ingestion", "registry", "processing", "sink")


def reflected_services(address: str) -> set[str]:
    """List services as any language's client would: through the reflection API."""
    with grpc.insecure_channel(address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        return {s.name for r in responses for s in r.list_services_response.service}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_answers_health_and_reflection(service_process, name):
    proc = service_process(name)
    with grpc.insecure_channel(proc.address) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    names = reflected_services(proc.address)
    assert "grpc.health.v1.Health" in names
    assert "grpc.reflection.v1alpha.ServerReflection" in names
    own = {n for n in names if n.startswith("headwater.v1.")}
    if name == "processing":
        assert own == {"headwater.v1.ProcessingService"}


def job(name: str, query: str = "SELECT * INTO [o] FROM [i]") -> pb.Job:
    return pb.Job(name=name, query=query, inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h")],
                  outputs=[pb.JobOutput(alias="o", sink="sinks/s")])


def call(stub_method, request, **kw):
    try:
        return stub_method(request, timeout=10, **kw)
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None


def test_errors_round_trip_reason_and_transience(service_process, root_policy):
    proc = service_process("processing")
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = pb_grpc.ProcessingServiceStub(ch)
        with pytest.raises(HeadwaterError) as info:
            call(stub.GetJob, pb.GetJobRequest(name="jobs/missing"))
        assert info.value.reason is Reason.RESOURCE_NOT_FOUND and not info.value.is_transient
        assert info.value.metadata["resource"] == "jobs/missing"
        assert info.value.metadata["service"] == "processing"
        with pytest.raises(HeadwaterError) as info:
            call(stub.CreateJob, pb.CreateJobRequest(job=job("trips job")))
        assert info.value.reason is Reason.INVALID_ARGUMENT
        assert info.value.metadata["field"] == "job.name"
        created = call(stub.CreateJob, pb.CreateJobRequest(job=job("jobs/trips"), request_id="r1")).job
        assert created.state == pb.JOB_STATE_STOPPED
        # A retried create with the same request id is not a conflict.
        again = call(stub.CreateJob, pb.CreateJobRequest(job=job("jobs/trips"),
                                                         request_id="r1")).job
        assert again.create_time == created.create_time
        with pytest.raises(HeadwaterError) as info:
            call(stub.CreateJob, pb.CreateJobRequest(job=job("jobs/trips")))
        assert info.value.reason is Reason.RESOURCE_ALREADY_EXISTS
        # A query that does not compile: QUERY_COMPILE_ERROR with line and column, over the wire.
        with pytest.raises(HeadwaterError) as info:
            call(stub.CreateJob, pb.CreateJobRequest(job=job("jobs/bad", "SELECT *\nINTO [o]\nFROM [i] WHERE")))
        assert info.value.reason is Reason.QUERY_COMPILE_ERROR
        assert (info.value.line, info.value.column) == (3, 15), info.value


def test_jobs_survive_a_restart(service_process, root_policy, tmp_path):
    data = str(tmp_path / "proc")
    proc = service_process("processing", "--data-dir", data)
    bare = pb.Job(name="a", query="SELECT * INTO [o] FROM [i]",  # bare ids in the request
                  inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="h")],
                  outputs=[pb.JobOutput(alias="o", sink="s")])
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        created = call(pb_grpc.ProcessingServiceStub(ch).CreateJob, pb.CreateJobRequest(job=bare)).job
    # Responses name resources one way (AIP-122).
    assert (created.name, created.inputs[0].hub, created.outputs[0].sink) == ("jobs/a", "hubs/h", "sinks/s")
    proc.kill()
    proc = service_process("processing", "--data-dir", data)
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        jobs = call(pb_grpc.ProcessingServiceStub(ch).ListJobs, pb.ListJobsRequest()).jobs
    assert [(j.name, j.inputs[0].hub, j.outputs[0].sink) for j in jobs] == [("jobs/a", "hubs/h", "sinks/s")]


def test_auth_refusals(service_process, root_policy, _isolated_home):
    store = PolicyStore(_isolated_home / "auth.json").ensure()
    store.put(Policy("reader", "cmVhZGVy", frozenset({Right.LISTEN})))
    proc = service_process("processing")
    resource = f"headwater://{proc.address}/"

    def with_token(token: str | None, method: str):
        with grpc.insecure_channel(proc.address) as ch:
            stub = pb_grpc.ProcessingServiceStub(ch)
            md = (("authorization", token),) if token else ()
            req = (pb.ListJobsRequest() if method == "list"
                   else pb.CreateJobRequest(job=job("jobs/x")))
            return call(getattr(stub, "ListJobs" if method == "list" else "CreateJob"), req, metadata=md)

    reader = generate_sas_token(resource, "reader", "cmVhZGVy")
    assert with_token(reader, "list").jobs == []  # Listen may read
    with pytest.raises(HeadwaterError) as info:
        with_token(reader, "create")  # but not manage
    assert info.value.reason is Reason.PERMISSION_DENIED
    for token in (
        None,
        generate_sas_token(resource, "reader", "cmVhZGVy", ttl_s=-1),
        generate_sas_token(resource, "reader", "Zm9yZ2Vk"),
        generate_sas_token(resource, "ghost", "Zm9yZ2Vk"),
    ):
        with pytest.raises(HeadwaterError) as info:
            with_token(token, "list")
        assert info.value.reason is Reason.UNAUTHORIZED, token
        assert info.value.message == AUTH_FAILED  # one message for every failure (docs/security.md)
    # The root policy's connection string signs for the SDK and may do anything.
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        call(pb_grpc.ProcessingServiceStub(ch).CreateJob,
             pb.CreateJobRequest(job=job("jobs/x")))
