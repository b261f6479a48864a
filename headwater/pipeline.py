"""The book's pipeline, set up over gRPC: hub, sink, job, and a trip generator.

Used by ``headwater demo`` (``make up``), the end-to-end tests and
``headwater perf pipeline``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson

from headwater.auth import ConnectionString, PolicyStore
from headwater.channel import aio_channel
from headwater.config import headwater_home
from headwater.errors import HeadwaterError, Reason
from headwater.sink_settings import set_settings
from headwater.trips import trip

__all__ = ["BOOK_QUERY", "local_connection", "send_trips", "setup_pipeline"]

BOOK_QUERY = """\
SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) AS trips
INTO [Dashboard]
FROM [Trips] TIMESTAMP BY createdAt
GROUP BY startLocation, TumblingWindow(second, 10)
"""


def local_connection(address: str, home: str | os.PathLike[str] | None = None) -> ConnectionString:
    """A connection string for ``address`` signed with the local root policy (of ``home``, else
    :func:`~headwater.config.headwater_home`)."""
    root = PolicyStore(Path(home or headwater_home()) / "auth.json").ensure().root()
    return ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=root.name,
                            shared_access_key=root.key)


async def _ignore_exists(coro: Awaitable[Any]) -> None:
    import grpc

    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        err = await HeadwaterError.from_aio_call(exc)
        if err.reason is not Reason.RESOURCE_ALREADY_EXISTS:
            raise err from None


async def setup_pipeline(endpoints: dict[str, str], hub: str = "trips", partitions: int = 4,
                         sink_kind: str = "dashboard", dataset: str = "trips-per-location",
                         query: str = BOOK_QUERY, sink_config: dict[str, Any] | None = None,
                         home: str | os.PathLike[str] | None = None) -> None:
    """Create the hub, the sink and the job, and start the job (idempotent). ``home``: whose
    root policy signs the calls (default :func:`~headwater.config.headwater_home`)."""
    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import ingestion_pb2_grpc, processing_pb2_grpc, sink_pb2_grpc
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import sink_pb2 as spb

    async with aio_channel(local_connection(endpoints["ingestion"], home)) as ch:
        await _ignore_exists(ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ipb.CreateHubRequest(hub_id=hub, hub=ipb.Hub(partition_count=partitions))))
    async with aio_channel(local_connection(endpoints["sink"], home)) as ch:
        sink = set_settings(spb.Sink(description="Trips per start location, 10-second windows"), sink_kind,
                            sink_config or {"key": "startLocation", "value": "trips", "time": "WindowEnd"})
        await _ignore_exists(sink_pb2_grpc.SinkServiceStub(ch).CreateSink(
            spb.CreateSinkRequest(sink_id=dataset, sink=sink)))
    async with aio_channel(local_connection(endpoints["processing"], home)) as ch:
        stub = processing_pb2_grpc.ProcessingServiceStub(ch)
        name = f"jobs/{dataset}"
        await _ignore_exists(stub.CreateJob(ppb.CreateJobRequest(job=ppb.Job(
            name=name, query=query,
            inputs=[ppb.JobInput(alias="Trips", kind=ppb.INPUT_KIND_STREAM, hub=f"hubs/{hub}", format="json")],
            outputs=[ppb.JobOutput(alias="Dashboard", sink=f"sinks/{dataset}")]))))
        job = (await stub.GetJob(ppb.GetJobRequest(name=name))).job
        if job.state not in (ppb.JOB_STATE_RUNNING, ppb.JOB_STATE_STARTING, ppb.JOB_STATE_DEGRADED):
            await stub.StartJob(ppb.StartJobRequest(name=name, start_mode=ppb.JOB_START_MODE_NOW))


async def send_trips(address: str, hub: str, rate: float, duration_s: float | None = None,
                     batch_per_s: int = 4) -> int:
    """Send generated trips at ``rate`` events/s in batches; returns how many were sent."""
    import random
    from datetime import datetime

    from headwater.v1 import event_pb2, ingestion_pb2_grpc
    from headwater.v1 import ingestion_pb2 as ipb

    rng = random.Random()
    sent = 0
    start = time.monotonic()
    # At most 2,000 trips (~0.5 MB) a request, under the 1 MiB limit at any rate.
    per_batch = max(1, min(int(rate / batch_per_s), 2000))
    async with aio_channel(local_connection(address)) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        while duration_s is None or time.monotonic() - start < duration_s:
            now = datetime.now(UTC)
            events = [event_pb2.EventData(body=orjson.dumps(trip(rng, now)), content_type="application/json")
                      for _ in range(per_batch)]
            await stub.PublishEvents(ipb.PublishEventsRequest(hub=f"hubs/{hub}", events=events))
            sent += len(events)
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    return sent
