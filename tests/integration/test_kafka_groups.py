"""Kafka consumer groups in the metadata store that gRPC consumer groups use, on the embedded
store and on NATS: a group's members, generation and assignment, and its committed offsets,
survive an ingestion restart (a consumer carries on with its member id, as after a Kafka
coordinator failover); DescribeGroups/ListGroups show Kafka and gRPC groups; Fetch long-polls."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from headwater.config import load_config
from headwater.procs import free_port
from headwater.server import serve_in_process
from headwater.services.ingestion.config import IngestionConfig
from headwater.services.ingestion.server import IngestionService
from tests.integration.ingestion_support import NATS_URL, admin, conn_str, create_hub
from tests.integration.kafka_support import confluent_conf

#: (backend settings) the groups are checked on: the embedded store and NATS KV.
BACKENDS = ["embedded", "nats"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "embedded":
        yield {}
        return
    from headwater.services.ingestion.log.nats import delete_prefix

    prefix = f"T{uuid.uuid4().hex[:10]}"
    yield {"log_backend": "nats", "nats_url": NATS_URL, "nats_prefix": prefix}
    asyncio.run(delete_prefix(NATS_URL, prefix))


@contextlib.asynccontextmanager
async def _service(data_dir, grpc_port: int, kafka_port: int, **settings):
    """The ingestion service in this loop on fixed ports (so clients find it again after a restart)."""
    cfg = load_config(IngestionConfig, "ingestion", None, env={}, grpc_port=grpc_port, metrics_port=-1,
                      http_port=-1, kafka_port=kafka_port, data_dir=str(data_dir), **settings)
    async with serve_in_process(IngestionService(cfg)) as running:
        yield running


class _Proc:
    """What kafka_support's settings helpers need of a service: its address."""

    def __init__(self, address: str) -> None:
        self.address = address


async def _consume(consumer: Consumer, want: set[bytes], seen: set[bytes], deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while not want <= seen and time.monotonic() < deadline:
        msgs = await asyncio.to_thread(consumer.consume, 100, 0.2)
        seen.update(m.value() for m in msgs if not m.error())
    assert want <= seen, sorted(want - seen)[:5]


async def _produce(conf: dict, topic: str, values: list[bytes]) -> None:
    producer = Producer(conf)
    for i, v in enumerate(values):
        producer.produce(topic, v, f"k{i}".encode())
    assert await asyncio.to_thread(producer.flush, 30) == 0


async def test_group_membership_and_offsets_survive_an_ingestion_restart(tmp_path, root_policy, backend):
    grpc_port, kafka_port = free_port(), free_port()
    data = tmp_path / "data"
    proc = _Proc(f"127.0.0.1:{grpc_port}")
    conf = confluent_conf(kafka_port, proc, root_policy)
    revoked = []
    async with _service(data, grpc_port, kafka_port, **backend) as svc:
        await create_hub(svc.address, root_policy, "g", 2)
        await _produce(conf, "g", [f"a{i}".encode() for i in range(20)])
        consumer = Consumer({**conf, "group.id": "survivors", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False, "session.timeout.ms": 30000,
                             "heartbeat.interval.ms": 300})
        consumer.subscribe(["g"], on_revoke=lambda c, parts: revoked.append(parts))
        seen: set[bytes] = set()
        await _consume(consumer, {f"a{i}".encode() for i in range(20)}, seen)
        await asyncio.to_thread(consumer.commit, asynchronous=False)
        member = consumer.memberid()
        assignment = sorted(tp.partition for tp in consumer.assignment())
        assert assignment == [0, 1]
    # The service is down; the consumer keeps its member id and assignment through the restart.
    async with _service(data, grpc_port, kafka_port, **backend) as svc:
        await _produce(conf, "g", [f"b{i}".encode() for i in range(20)])
        await _consume(consumer, {f"b{i}".encode() for i in range(20)}, seen)
        await asyncio.to_thread(consumer.commit, asynchronous=False)
        assert consumer.memberid() == member  # no rejoin: the coordinator took the group back from the store
        assert not revoked  # and no rebalance
        committed = await asyncio.to_thread(consumer.committed, [TopicPartition("g", 0), TopicPartition("g", 1)],
                                            10)
        # The committed offsets are the group's checkpoints (sequence number + 1), seen over gRPC.
        from headwater.v1 import ingestion_pb2

        async with admin(svc.address, root_policy) as stub:
            cps = (await stub.ListCheckpoints(ingestion_pb2.ListCheckpointsRequest(
                hub="g", consumer_group="survivors"))).checkpoints
            owners = (await stub.ListOwnerships(ingestion_pb2.ListOwnershipsRequest(
                hub="g", consumer_group="survivors"))).ownerships
        assert sorted((c.partition_id, c.sequence_number + 1) for c in cps) == \
            sorted((str(tp.partition), tp.offset) for tp in committed)
        assert sum(tp.offset for tp in committed) == 40
        assert {o.owner_id for o in owners} == {member}
        await asyncio.to_thread(consumer.close)
        # Leaving empties the group: it is no longer kept in the store.
        hub = svc.service.hubs.get("g")
        for _ in range(100):
            if "kafka" not in hub.meta.consumer_groups["survivors"]:
                break
            await asyncio.sleep(0.05)
            hub = await svc.service.hubs.lookup("g", fresh=True)
        assert "kafka" not in hub.meta.consumer_groups["survivors"]


async def test_describe_and_list_groups_show_kafka_and_grpc_groups(tmp_path, root_policy):
    grpc_port, kafka_port = free_port(), free_port()
    async with _service(tmp_path / "data", grpc_port, kafka_port) as svc:
        conf = confluent_conf(kafka_port, _Proc(svc.address), root_policy)
        await create_hub(svc.address, root_policy, "d", 2)
        from headwater.v1 import ingestion_pb2

        async with admin(svc.address, root_policy) as stub:
            await stub.CreateConsumerGroup(ingestion_pb2.CreateConsumerGroupRequest(
                parent="hubs/d", consumer_group_id="sdk-readers"))
        consumer = Consumer({**conf, "group.id": "kafka-readers", "client.id": "reader-1"})
        consumer.subscribe(["d"])
        while not consumer.assignment():
            await asyncio.to_thread(consumer.consume, 1, 0.2)
        admin_client = AdminClient(conf)
        listed = (await asyncio.to_thread(admin_client.list_consumer_groups(request_timeout=10).result)).valid
        states = {g.group_id: g.state.name for g in listed}
        assert states["kafka-readers"] == "STABLE"
        assert states["sdk-readers"] == "EMPTY"
        described = await asyncio.to_thread(
            admin_client.describe_consumer_groups(["kafka-readers", "sdk-readers"], request_timeout=10)[
                "kafka-readers"].result)
        assert described.state.name == "STABLE"
        assert [m.member_id for m in described.members] == [consumer.memberid()]
        assert described.members[0].client_id == "reader-1"
        assert sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == [0, 1]
        await asyncio.to_thread(consumer.close)


def test_fetch_long_polls_until_data_or_max_wait(service_process, tmp_path, root_policy):
    """Fetch waits up to max wait for min bytes, and answers as soon as a record arrives."""
    import threading

    from kafka.protocol.consumer import FetchRequest, FetchResponse
    from kafka.protocol.sasl import (
        SaslAuthenticateRequest,
        SaslAuthenticateResponse,
        SaslHandshakeRequest,
        SaslHandshakeResponse,
    )

    from tests.integration.kafka_support import Raw, kafka_port
    from tests.integration.kafka_support import create_hub as create_hub_sync

    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    create_hub_sync(proc, root_policy, "lp", 1)
    port = kafka_port(proc)
    raw = Raw(port)
    raw.sock.settimeout(30)
    raw.call(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse, 1)
    token = b"\x00$ConnectionString\x00" + conn_str(proc.address, root_policy).encode()
    assert raw.call(SaslAuthenticateRequest(auth_bytes=token), SaslAuthenticateResponse, 2).error_code == 0

    def fetch(max_wait_ms: int):
        req = FetchRequest(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                           isolation_level=0, session_id=0, session_epoch=-1, topics=[
                               FetchRequest.FetchTopic(topic="lp", partitions=[FetchRequest.FetchTopic.FetchPartition(
                                   partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                                   partition_max_bytes=1 << 20)])], forgotten_topics_data=[], rack_id="")
        started = time.monotonic()
        resp = raw.call(req, FetchResponse, 12)
        return time.monotonic() - started, resp.responses[0].partitions[0]

    # Nothing to read: the answer comes after max wait, empty.
    waited, part = fetch(800)
    assert part.error_code == 0 and not part.records and part.high_watermark == 0
    assert waited >= 0.7
    # A long poll is answered by the record that arrives while it waits, long before its max wait.
    sent = threading.Event()

    def produce_later() -> None:
        # The record must arrive while the fetch is parked (no fact says it is): elapsed time is
        # what this test measures, so a delay here is the scenario, not a synchronisation.
        time.sleep(0.5)
        p = Producer(confluent_conf(port, proc, root_policy))
        p.produce("lp", b"arrived", partition=0)
        assert p.flush(20) == 0
        sent.set()

    threading.Thread(target=produce_later).start()
    waited, part = fetch(25_000)
    assert sent.wait(20)
    assert part.error_code == 0 and b"arrived" in bytes(part.records) and part.high_watermark == 1
    assert waited < 20
    raw.close()
