"""Transient errors through a real gRPC server and client: typed, retried, never a traceback."""

from __future__ import annotations

import grpc
import pytest

from headwater.auth import PolicyStore
from headwater.channel import aio_channel
from headwater.config import load_config
from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async
from headwater.server import GrpcBinding, Service, serve_in_process
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc
from tests.conftest import conn_for


class Flaky(pb_grpc.ProcessingServiceServicer):
    """Fails ListJobs with SERVICE_BUSY twice, then answers; GetJob raises a bug;
    ListAlertRules times out waiting for a peer."""

    def __init__(self) -> None:
        self.calls = 0

    async def ListJobs(self, request, context):
        self.calls += 1
        if self.calls <= 2:
            raise HeadwaterError(Reason.SERVICE_BUSY, "warming up", retry_after=0.01)
        return pb.ListJobsResponse(jobs=[pb.Job(name="jobs/ok")])

    async def GetJob(self, request, context):
        raise KeyError("secret internal detail")

    async def ListAlertRules(self, request, context):
        import nats.errors

        raise nats.errors.TimeoutError()  # the storage peer (here NATS) did not answer in time


class FlakyService(Service):
    name = "processing"

    def __init__(self, config):
        super().__init__(config)
        self.servicer = Flaky()

    def bindings(self):
        return [GrpcBinding(pb_grpc.add_ProcessingServiceServicer_to_server, self.servicer,
                            "headwater.v1.ProcessingService")]


@pytest.fixture
async def flaky(_isolated_home):
    cfg = load_config(FlakyService.config_class, "processing", env={}, grpc_port=0, metrics_port=-1)
    service = FlakyService(cfg)
    async with serve_in_process(service) as running:
        yield service, running, PolicyStore(cfg.auth_path()).ensure().root()


async def call(method, request):
    try:
        return await method(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        raise await HeadwaterError.from_aio_call(exc) from None


async def test_transient_error_round_trips_and_the_policy_retries_it(flaky):
    service, running, root = flaky
    async with aio_channel(conn_for(running.address, root)) as ch:
        stub = pb_grpc.ProcessingServiceStub(ch)
        with pytest.raises(HeadwaterError) as info:
            await call(stub.ListJobs, pb.ListJobsRequest())
        assert info.value.reason is Reason.SERVICE_BUSY and info.value.is_transient
        assert info.value.retry_after == pytest.approx(0.01)
        assert info.value.metadata["service"] == "processing"
        resp = await retry_async(lambda: call(stub.ListJobs, pb.ListJobsRequest()),
                                 RetryPolicy(max_attempts=5, initial_backoff_s=0.001))
        assert [j.name for j in resp.jobs] == ["jobs/ok"]
        assert service.servicer.calls == 3


async def test_unexpected_exceptions_become_internal_with_an_id_and_no_traceback(flaky):
    service, running, root = flaky
    async with aio_channel(conn_for(running.address, root)) as ch:
        with pytest.raises(HeadwaterError) as info:
            await call(pb_grpc.ProcessingServiceStub(ch).GetJob, pb.GetJobRequest(name="jobs/x"))
    err = info.value
    assert err.reason is Reason.INTERNAL_ERROR and not err.is_transient
    assert err.metadata["error_id"] in err.message
    assert "secret internal detail" not in err.message and "Traceback" not in err.message


async def test_a_peer_timing_out_is_a_transient_service_timeout_not_internal(flaky):
    _, running, root = flaky
    async with aio_channel(conn_for(running.address, root)) as ch:
        with pytest.raises(HeadwaterError) as info:
            await call(pb_grpc.ProcessingServiceStub(ch).ListAlertRules, pb.ListAlertRulesRequest(parent="jobs/x"))
    err = info.value
    assert err.reason is Reason.SERVICE_TIMEOUT and err.is_transient, err
    assert "timed out" in err.message
