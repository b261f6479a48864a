"""The book's pipeline end to end, every service a real process.

Trips are published to the ingestion service; a job in the processing service
runs the book's tumbling-window query; the rows land in a memory table of the
sink service. Then the processing service is killed with kill -9 mid-stream and
restarted: the windows it emits afterwards add up to exactly the trips sent,
none lost and none counted twice.
"""

from __future__ import annotations

import asyncio
import collections
import json
from datetime import UTC, datetime, timedelta

import grpc
import pyarrow as pa
import pytest

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError
from headwater.trips import trips
from tests.conftest import conn_for
from tests.wait import wait_until

QUERY = """
SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) AS trips
INTO [Dashboard]
FROM [Trips] TIMESTAMP BY createdAt
GROUP BY startLocation, TumblingWindow(second, 10)
"""

pytestmark = pytest.mark.slow


async def read_table(sink_address, policy, name):
    from headwater.v1 import event_pb2, sink_pb2_grpc
    from headwater.v1 import sink_pb2 as spb

    rows = []
    async with aio_channel(conn_for(sink_address, policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        token = ""
        while True:
            resp = await stub.ReadTable(spb.ReadTableRequest(name=f"sinks/{name}", page_size=10000, page_token=token))
            if resp.batch.format == event_pb2.RECORD_BATCH_FORMAT_JSON_LINES:
                rows += [json.loads(line) for line in resp.batch.data.splitlines() if line.strip()]
            elif resp.batch.data:
                rows += pa.ipc.open_stream(resp.batch.data).read_all().to_pylist()
            token = resp.next_page_token
            if not token:
                return rows


async def publish(address, policy, hub, events):
    from headwater.v1 import event_pb2, ingestion_pb2_grpc
    from headwater.v1 import ingestion_pb2 as ipb

    async with aio_channel(conn_for(address, policy)) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for i in range(0, len(events), 500):
            chunk = events[i:i + 500]
            await stub.PublishEvents(ipb.PublishEventsRequest(
                hub=f"hubs/{hub}", events=[event_pb2.EventData(body=json.dumps(e).encode()) for e in chunk]))


def job_metrics(address, policy, name):
    """GetJobMetrics of ``name`` (``jobs/...``) from the processing service at ``address``."""
    from headwater.channel import sync_channel
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import processing_pb2_grpc

    ch = sync_channel(conn_for(address, policy))
    try:
        return processing_pb2_grpc.ProcessingServiceStub(ch).GetJobMetrics(
            ppb.GetJobMetricsRequest(name=name), timeout=10).metrics
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None
    finally:
        ch.close()


def test_book_query_through_the_services_survives_kill_9(service_process, root_policy, tmp_path):
    from headwater.pipeline import setup_pipeline

    ingestion = service_process("ingestion", "--data-dir", str(tmp_path / "ing"))
    sink = service_process("sink", "--data-dir", str(tmp_path / "sink"))
    env = {"HEADWATER_PROCESSING_INGESTION_ADDRESS": ingestion.address,
           "HEADWATER_PROCESSING_SINK_ADDRESS": sink.address,
           "HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": "0.3"}
    processing = service_process("processing", "--data-dir", str(tmp_path / "proc"), env=env)
    endpoints = {"ingestion": ingestion.address, "sink": sink.address, "processing": processing.address}
    # One partition: an idle partition would hold the watermark back by the
    # late-arrival tolerance, as in Stream Analytics.
    asyncio.run(setup_pipeline(endpoints, hub="trips", partitions=1, dataset="counts", sink_kind="memory",
                               query=QUERY, sink_config={}))

    # Event time: 60 s of trips, 50 per second, from the next window boundary
    # on (ahead of arrival by less than the 5-minute early-arrival limit, so
    # neither late nor early).
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now + timedelta(seconds=20 - now.second % 10)
    sent = list(trips(3000, start=t0, rate_per_s=50))
    expected = collections.Counter()
    for t in sent:
        ts = datetime.fromisoformat(t["createdAt"].replace("Z", "+00:00"))
        end = t0 + timedelta(seconds=10 * ((ts - t0).total_seconds() // 10 + 1))
        if ts == end - timedelta(seconds=10):
            end -= timedelta(seconds=10)  # end-inclusive windows
        expected[(end, t["startLocation"])] += 1

    asyncio.run(publish(ingestion.address, root_policy, "trips", sent[:1500]))
    # Mid-stream: some of them read and a checkpoint taken since, then kill -9.
    read = wait_until(lambda: job_metrics(processing.address, root_policy, "jobs/counts"),
                      lambda m: m.input_events > 0, what="events read").last_checkpoint_id
    wait_until(lambda: job_metrics(processing.address, root_policy, "jobs/counts"),
               lambda m: m.last_checkpoint_id > read, what="a checkpoint after reading")
    processing.kill()  # kill -9 mid-stream
    processing = service_process("processing", "--data-dir", str(tmp_path / "proc"), env=env)
    asyncio.run(publish(ingestion.address, root_policy, "trips", sent[1500:]))
    # A last event far ahead closes every window of the minute.
    closer_time = (t0 + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    late = dict(sent[-1], createdAt=closer_time, startLocation="Closer")
    asyncio.run(publish(ingestion.address, root_policy, "trips", [late]))

    def counts() -> collections.Counter:
        got: collections.Counter = collections.Counter()
        for r in asyncio.run(read_table(sink.address, root_policy, "counts")):
            end = r["WindowEnd"]
            end = end if isinstance(end, datetime) else datetime.fromisoformat(str(end).replace("Z", "+00:00"))
            got[(end.astimezone(UTC), r["startLocation"])] += r["trips"]
        return got

    got = wait_until(counts, lambda got: sum(got.values()) >= len(sent), timeout=30, every=0.5, fail=False)
    assert got == expected
