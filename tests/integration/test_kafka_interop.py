"""Kafka clients and the Headwater SDK on the same hub: what one writes the other reads, with keys,
headers/properties, offsets = sequence numbers and timestamps = enqueued times; and one consumer
group's checkpoints are the other's committed offsets."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubConsumerClient, EventHubProducerClient, ServiceCheckpointStore
from tests.integration.ingestion_support import conn_str
from tests.integration.kafka_support import confluent_conf, create_hub, kafka_port


@pytest.fixture
def svc(service_process, tmp_path):
    return service_process("ingestion", "--data-dir", str(tmp_path / "data"))


def _produce(port, svc, policy, topic: str, n: int, partition: int = 0) -> list:
    delivered = []
    producer = Producer(confluent_conf(port, svc, policy, **{"enable.idempotence": True}))
    for i in range(n):
        producer.produce(topic, f"k-{i}".encode(), f"key-{i % 3}".encode(), partition=partition,
                         headers=[("color", b"red"), ("i", str(i).encode())],
                         on_delivery=lambda err, msg: delivered.append((err, msg.offset(), msg.timestamp())))
    assert producer.flush(30) == 0
    assert all(err is None for err, _, _ in delivered)
    return delivered


async def _sdk_read(svc, policy, hub: str, group: str, expect: int, checkpoint_store=None, checkpoint_at=None):
    got = []
    client = EventHubConsumerClient.from_connection_string(conn_str(svc.address, policy), group, eventhub_name=hub,
                                                           checkpoint_store=checkpoint_store)

    async def on_event(ctx, event):
        got.append(event)
        if checkpoint_at is not None and event.sequence_number == checkpoint_at:
            await ctx.update_checkpoint(event)
        if len(got) >= expect:
            await client.close()

    await asyncio.wait_for(client.receive(on_event, partition_id="0", starting_position="-1"), 30)
    return got


async def test_sdk_consumer_reads_what_a_kafka_producer_wrote(svc, root_policy):
    port = kafka_port(svc)
    create_hub(svc, root_policy, "k2s", 2)
    delivered = _produce(port, svc, root_policy, "k2s", 20)
    events = await _sdk_read(svc, root_policy, "k2s", "$Default", 20)
    assert [e.body_as_str() for e in events] == [f"k-{i}" for i in range(20)]
    assert [e.partition_key for e in events] == [f"key-{i % 3}" for i in range(20)]
    assert [e.properties for e in events] == [{"color": "red", "i": str(i)} for i in range(20)]
    # Kafka offsets are sequence numbers; the Kafka timestamp is the enqueued time.
    assert [e.sequence_number for e in events] == [off for _, off, _ in delivered]
    assert [int(e.enqueued_time.timestamp() * 1000) for e in events] == [ts for _, _, (_, ts) in delivered]


async def test_kafka_consumer_reads_what_the_sdk_wrote(svc, root_policy):
    port = kafka_port(svc)
    create_hub(svc, root_policy, "s2k", 2)
    async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "s2k")) as p:
        batch = []
        for i in range(10):
            ev = EventData(f"sdk-{i}")
            ev.properties = {"origin": "sdk", "i": str(i)}
            batch.append(ev)
        stored = await p.send_batch(batch, partition_key="car-7")
    consumer = Consumer(confluent_conf(port, svc, root_policy, **{"group.id": "s2k-reader",
                                                                  "enable.auto.commit": False}))
    consumer.assign([TopicPartition("s2k", int(stored.partition_id), 0)])
    msgs = []
    while len(msgs) < 10:
        msgs += [m for m in consumer.consume(10, 5) if not m.error()]
    consumer.close()
    assert [m.value() for m in msgs] == [f"sdk-{i}".encode() for i in range(10)]
    assert {m.key() for m in msgs} == {b"car-7"}
    assert [dict(m.headers()) for m in msgs] == [{"origin": b"sdk", "i": str(i).encode()} for i in range(10)]
    assert [m.offset() for m in msgs] == list(range(stored.first_sequence_number, stored.last_sequence_number + 1))
    assert msgs[0].timestamp()[1] == stored.enqueued_time.ToMilliseconds()


async def test_kafka_group_and_sdk_processor_share_checkpoints(svc, root_policy):
    port = kafka_port(svc)
    create_hub(svc, root_policy, "shared", 1)
    _produce(port, svc, root_policy, "shared", 60)
    # A Kafka consumer in group "readers" processes 30 records and commits.
    consumer = Consumer(confluent_conf(port, svc, root_policy, **{"group.id": "readers",
                                                                  "enable.auto.commit": False}))
    consumer.assign([TopicPartition("shared", 0, 0)])
    seen = []
    while len(seen) < 30:
        seen += [m for m in consumer.consume(30 - len(seen), 5) if not m.error()]
    consumer.commit(offsets=[TopicPartition("shared", 0, 30)], asynchronous=False)
    # An SDK processor in the same group resumes after the Kafka commit, and checkpoints at 44.
    store = ServiceCheckpointStore.from_connection_string(conn_str(svc.address, root_policy))
    events = await _sdk_read(svc, root_policy, "shared", "readers", 15, checkpoint_store=store, checkpoint_at=44)
    assert [e.sequence_number for e in events] == list(range(30, 45))
    checkpoints = await store.list_checkpoints("ns", "shared", "readers")
    await store.close()
    assert [(c["partition_id"], c["sequence_number"]) for c in checkpoints] == [("0", 44)]
    # The Kafka consumer sees the SDK's checkpoint as its committed offset.
    committed = consumer.committed([TopicPartition("shared", 0)], timeout=10)
    consumer.close()
    assert committed[0].offset == 45


async def test_kafka_members_claim_their_partitions_in_the_ownership_table(svc, root_policy):
    port = kafka_port(svc)
    create_hub(svc, root_policy, "owned", 2)
    consumer = Consumer(confluent_conf(port, svc, root_policy, **{"group.id": "owners"}))
    consumer.subscribe(["owned"])
    while not consumer.assignment():
        consumer.consume(1, 0.2)
    member = consumer.memberid()
    store = ServiceCheckpointStore.from_connection_string(conn_str(svc.address, root_policy))
    owners = {o["partition_id"]: o["owner_id"] for o in await store.list_ownership("ns", "owned", "owners")}
    assert owners == {"0": member, "1": member}
    consumer.close()  # LeaveGroup releases the claims
    owners = {o["partition_id"]: o["owner_id"] for o in await store.list_ownership("ns", "owned", "owners")}
    await store.close()
    assert owners == {"0": "", "1": ""}
