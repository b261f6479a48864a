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


async def _leader_of(cluster: NatsCluster, stream: str) -> int:
    import nats

    nc = await nats.connect(cluster.urls)
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
    finally:
        await nc.close()
    return int(info.cluster.leader.rsplit("-n", 1)[1])


@pytest.mark.skipif(not _HAVE_NATS, reason="no nats-server binary")
async def test_an_instance_starts_and_serves_while_a_nats_node_is_dead(cluster, service_process, tmp_path,
                                                                      root_policy):
    """The node that leads the hubs bucket dies; a new instance still starts (it waits for
    the new leader instead of failing on the first timeout), lists claims (no consumer
    is created for a listing) and reads events published through the first instance."""
    from headwater.v1 import ingestion_pb2 as ipb
    from tests.integration.ingestion_support import admin

    prefix = f"T{uuid.uuid4().hex[:8]}"
    env = {"HEADWATER_INGESTION_LOG_BACKEND": "nats", "HEADWATER_INGESTION_NATS_URL": cluster.url,
           "HEADWATER_INGESTION_NATS_REPLICAS": "3", "HEADWATER_INGESTION_NATS_PREFIX": prefix}
    a = await asyncio.to_thread(service_process, "ingestion", "--data-dir", str(tmp_path / "a"), env=env)
    await create_hub(a.address, root_policy, "h", 4)
    async with EventHubProducerClient.from_connection_string(conn_str(a.address, root_policy, "h"),
                                                             retry_policy=PATIENT) as p:
        for i in range(8):
            await p.send_batch([EventData(f"{i}-{j}") for j in range(10)], partition_id=str(i % 4))
    dead = await _leader_of(cluster, f"KV_{prefix}_hubs")
    await asyncio.to_thread(cluster.kill, dead)
    a.kill()  # it may have been connected to the dead node: B alone now
    env["HEADWATER_INGESTION_NATS_URL"] = ",".join(u for i, u in enumerate(cluster.urls) if i != dead)
    b = await asyncio.to_thread(service_process, "ingestion", "--data-dir", str(tmp_path / "b"), env=env)
    async with admin(b.address, root_policy) as stub:
        claimed = await stub.ClaimOwnership(ipb.ClaimOwnershipRequest(ownerships=[
            ipb.Ownership(hub="h", consumer_group="$Default", partition_id=p, owner_id="b") for p in "0123"]))
        assert len(claimed.ownerships) == 4
        listed = await stub.ListOwnerships(ipb.ListOwnershipsRequest(hub="h", consumer_group="$Default"))
        assert sorted((o.partition_id, o.owner_id) for o in listed.ownerships) == [(p, "b") for p in "0123"]
    got = [e.body_as_str() for pid in "0123" for e in await read_all(b.address, root_policy, "h", pid, expect=20)]
    assert sorted(got) == sorted(f"{i}-{j}" for i in range(8) for j in range(10))
