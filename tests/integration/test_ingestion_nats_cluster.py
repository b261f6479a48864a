"""Replication: two ingestion processes on a 3-node NATS JetStream cluster (streams and
buckets with 3 replicas) lose nothing when one NATS node and one ingestion process are
killed with SIGKILL during a publish run."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubProducerClient
from headwater.nats_cluster import NatsCluster, find_nats_server
from headwater.retry import RetryPolicy
from tests.integration.ingestion_support import conn_str, create_hub, read_all

PATIENT = RetryPolicy(max_attempts=60, max_delay_s=45, initial_backoff_s=0.05, max_backoff_s=0.5)

try:
    find_nats_server()
    _HAVE_NATS = True
except FileNotFoundError:
    _HAVE_NATS = False


@pytest.fixture
def cluster(tmp_path):
    with NatsCluster(tmp_path / "nats", size=3) as c:
        yield c


@pytest.mark.skipif(not _HAVE_NATS, reason="no nats-server binary")
async def test_killing_a_nats_node_and_an_instance_mid_run_loses_nothing(cluster, service_process, tmp_path,
                                                                         root_policy):
    env = {"HEADWATER_INGESTION_LOG_BACKEND": "nats", "HEADWATER_INGESTION_NATS_URL": cluster.url,
           "HEADWATER_INGESTION_NATS_REPLICAS": "3", "HEADWATER_INGESTION_NATS_PREFIX": f"T{uuid.uuid4().hex[:8]}"}
    a = await asyncio.to_thread(service_process, "ingestion", "--data-dir", str(tmp_path / "a"), env=env)
    b = await asyncio.to_thread(service_process, "ingestion", "--data-dir", str(tmp_path / "b"), env=env)
    both = f"{a.address},{b.address}"
    await create_hub(a.address, root_policy, "r3", 2)
    acked: list[str] = []
    killed = asyncio.Event()

    async def producer(n: int) -> None:
        async with EventHubProducerClient.from_connection_string(
                conn_str(both, root_policy, "r3"), enable_idempotent_partitions=True, retry_policy=PATIENT) as p:
            for i in range(30):
                batch = await p.create_batch(partition_id=str(n % 2))
                for j in range(10):
                    batch.add(EventData(f"{n}-{i}-{j}"))
                await p.send_batch(batch)
                acked.extend(f"{n}-{i}-{j}" for j in range(10))
                if n == 0 and i == 8:
                    killed.set()

    async def chaos() -> None:
        await killed.wait()
        await asyncio.to_thread(cluster.kill, 0)
        await asyncio.to_thread(b.kill)

    await asyncio.wait_for(asyncio.gather(chaos(), *(producer(n) for n in range(4))), 120)
    assert len(acked) == 1200
    stored = []
    for pid in ("0", "1"):
        events = await read_all(a.address, root_policy, "r3", pid, expect=600, wait=2.0)
        assert [e.sequence_number for e in events] == list(range(len(events))), "gapless"
        stored += [e.body_as_str() for e in events]
    assert sorted(stored) == sorted(acked), "every acknowledged event, exactly once"
    import nats

    nc = await nats.connect(cluster.urls[1:])
    try:
        prefix = env["HEADWATER_INGESTION_NATS_PREFIX"]
        for stream in (f"{prefix}_r3_0", f"{prefix}_r3_1", f"KV_{prefix}_hubs", f"KV_{prefix}_ckpt"):
            for _ in range(30):  # the JetStream API answers once the meta leader is re-elected
                try:
                    info = await nc.jetstream(timeout=1).stream_info(stream)
                    break
                except nats.errors.TimeoutError:
                    continue
            assert info.config.num_replicas == 3, stream
    finally:
        await nc.close()
