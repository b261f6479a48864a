"""A job reading from two ingestion instances on NATS (one address, round robin) keeps its
output exact when one instance is killed with SIGKILL in the middle of the stream."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubProducerClient
from headwater.retry import RetryPolicy
from headwater.services.ingestion.log.nats import delete_prefix
from headwater.v1 import processing_pb2 as ppb
from tests.integration.ingestion_support import NATS_URL, conn_str
from tests.integration.processing_support import Pipeline

PATIENT = RetryPolicy(max_attempts=30, max_delay_s=25, initial_backoff_s=0.05, max_backoff_s=0.5)


class _Pair:
    def __init__(self, a, b) -> None:
        self.a, self.b = a, b
        self.address = f"{a.address},{b.address}"


def test_a_job_reading_two_instances_is_exact_when_one_is_killed(service_process, root_policy, tmp_path):
    prefix = f"T{uuid.uuid4().hex[:10]}"
    env = {"HEADWATER_INGESTION_LOG_BACKEND": "nats", "HEADWATER_INGESTION_NATS_URL": NATS_URL,
           "HEADWATER_INGESTION_NATS_PREFIX": prefix}
    try:
        pair = _Pair(*(service_process("ingestion", "--data-dir", str(tmp_path / f"ing{i}"), env=env)
                       for i in range(2)))
        pipe = Pipeline.__new__(Pipeline)  # the pipeline's helpers, on the pair instead of one instance
        pipe.sp, pipe.policy, pipe.tmp, pipe.ingestion = service_process, root_policy, tmp_path, pair
        pipe.sink_env = {"HEADWATER_SINK_INGESTION_ADDRESS": pair.address}
        pipe.sink = service_process("sink", "--data-dir", str(tmp_path / "sink"), env=pipe.sink_env)
        pipe.env = {"HEADWATER_PROCESSING_INGESTION_ADDRESS": pair.address,
                    "HEADWATER_PROCESSING_SINK_ADDRESS": pipe.sink.address,
                    "HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": "0.3"}
        pipe.start_processing()
        pipe.create_hub("trips", partitions=2)
        pipe.create_sink("mem", "memory")
        pipe.create_job("copy", "SELECT tripId INTO [Mem] FROM [Trips]", {"Trips": "trips"}, {"Mem": "mem"})
        pipe.start_job("copy")
        pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="running")

        async def publish(first: int, count: int) -> None:
            async with EventHubProducerClient.from_connection_string(
                    conn_str(pair.address, root_policy, "trips"), enable_idempotent_partitions=True,
                    retry_policy=PATIENT) as p:
                for i in range(first, first + count, 20):
                    batch = await p.create_batch(partition_id=str((i // 20) % 2))
                    for n in range(i, i + 20):
                        ev = EventData(orjson.dumps({"tripId": f"t{n:05d}"}))
                        ev.content_type = "application/json"
                        batch.add(ev)
                    await p.send_batch(batch)

        asyncio.run(publish(0, 200))
        rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda r: len(r) >= 200)
        assert len(rows) == 200, len(rows)
        pair.b.kill()  # kill -9 one instance: the job's reads and the producer move to the other
        asyncio.run(publish(200, 200))
        rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda r: len(r) >= 400, timeout=30)
        trips = [r["tripId"] for r in rows]
        assert sorted(trips) == [f"t{n:05d}" for n in range(400)], f"{len(trips)} rows, {len(set(trips))} distinct"
    finally:
        asyncio.run(delete_prefix(NATS_URL, prefix))
