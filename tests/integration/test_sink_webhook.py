"""The webhook output through a real sink process: JSON batches, 5xx and timeouts transient.

The sink service makes one attempt per WriteRows; the writer retries (as the processing
service does, docs/errors.md), here with the shared policy."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pytest
from aiohttp import web

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async
from headwater.v1 import sink_pb2 as spb
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.integration.test_sink_service import create, rpc, start_sink, write

#: How a writer retries WriteRows (the one retry layer of the write path).
WRITER = RetryPolicy(max_attempts=5, max_delay_s=20, initial_backoff_s=0.01)


@pytest.fixture
async def receiver():
    """An HTTP receiver whose answers the test scripts: a list of statuses (or 'slow') to give first."""
    state = {"script": [], "bodies": [], "headers": []}

    async def hook(request: web.Request) -> web.Response:
        step = state["script"].pop(0) if state["script"] else 200
        if step == "slow":
            await asyncio.sleep(2)
        body = await request.read()
        if step in (200, "slow"):
            state["bodies"].append(json.loads(body))
            state["headers"].append(dict(request.headers))
            return web.Response(status=200)
        return web.Response(status=step, text=f"scripted {step}")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


async def test_batches_are_posted_and_5xx_retried(service_process, root_policy, tmp_path, receiver):
    proc = start_sink(service_process, tmp_path)
    receiver["script"] = [503, 500]
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        sink = await create(stub, "hook", kind="webhook", url=receiver["url"], max_rows_per_request=2)
        assert sink.delivery_guarantee == spb.DELIVERY_GUARANTEE_AT_LEAST_ONCE
        table = pa.table({"k": ["a", "b", "c"], "n": [1, 2, 3]})
        with pytest.raises(HeadwaterError) as info:  # one attempt: the 503 comes back, transient
            await write(stub, "hook", table, ckpt=3, batch=1)
        assert info.value.is_transient and "HTTP 503" in info.value.message
        resp = await retry_async(lambda: write(stub, "hook", table, ckpt=3, batch=1), WRITER)
        assert resp.rows_written == 3
        assert receiver["bodies"] == [[{"k": "a", "n": 1}, {"k": "b", "n": 2}], [{"k": "c", "n": 3}]]
        assert receiver["headers"][0]["X-Headwater-Checkpoint"] == "3"
        assert receiver["headers"][0]["X-Headwater-Sink"] == "hook"
        got = (await rpc(stub.GetSink(spb.GetSinkRequest(name="sinks/hook")))).sink
        assert got.stats.retries == 2


async def test_4xx_is_permanent_and_names_the_output(service_process, root_policy, tmp_path, receiver):
    proc = start_sink(service_process, tmp_path)
    receiver["script"] = [400]
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "hook", kind="webhook", url=receiver["url"])
        with pytest.raises(HeadwaterError) as info:
            await write(stub, "hook", pa.table({"k": ["a"]}))
        assert not info.value.is_transient and info.value.reason is Reason.PRECONDITION_FAILED
        assert "webhook sink 'hook'" in info.value.message and "HTTP 400" in info.value.message


async def test_timeouts_are_retried_and_dropped_under_drop_policy(service_process, root_policy, tmp_path,
                                                                   receiver):
    proc = start_sink(service_process, tmp_path)
    receiver["script"] = ["slow", "slow", "slow", "slow"]
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "hook", kind="webhook", url=receiver["url"], timeout_s=0.3,
                     policy=spb.ERROR_POLICY_DROP)
        # Timeouts are transient: the third attempt of the writer is dropped (drop_after_attempts).
        resp = await retry_async(lambda: write(stub, "hook", pa.table({"k": ["a", "b"]})), WRITER)
        assert (resp.rows_written, resp.rows_dropped) == (0, 2)
        assert "no answer within 0.3s" in resp.drop_reason
