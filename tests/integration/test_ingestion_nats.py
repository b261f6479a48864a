"""The NATS JetStream backend against the local NATS server (127.0.0.1:4222): the log,
several instances on one partition, a start without a scan; and the embedded data
folder's lock against a second process."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from headwater.eventhub.wire import PublishEventsRequestPacked
from headwater.services.ingestion.log.nats import delete_prefix, stream_name
from headwater.services.ingestion.retention import sweep
from headwater.v1 import event_pb2, ingestion_pb2
from tests.integration.ingestion_support import (
    NATS_URL,
    ONE_TRY,
    admin,
    conn_str,
    create_hub,
    ingestion,
    read_all,
)


@pytest.fixture
def prefix():
    name = f"T{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(delete_prefix(NATS_URL, name))


@pytest.fixture
def NATS(prefix):  # noqa: N802 - reads as the settings it is
    return {"log_backend": "nats", "nats_url": NATS_URL, "nats_prefix": prefix}


@pytest.fixture
def hub_id():
    return f"nats-test-{uuid.uuid4().hex[:8]}"


async def test_publish_read_restart_and_idempotence_on_jetstream(tmp_path, root_policy, hub_id, NATS, prefix):
    data = tmp_path / "d"
    async with ingestion(data, **NATS) as svc:
        await create_hub(svc.address, root_policy, hub_id, 2)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, hub_id)) as p:
            first = await p.send_batch([EventData(f"a{i}") for i in range(5)], partition_id="1")
            await p.send_batch([EventData(f"b{i}") for i in range(5)], partition_id="1")
            assert (first.first_sequence_number, first.last_sequence_number) == (0, 4)
            props = await p.get_partition_properties("1")
            assert props["last_enqueued_sequence_number"] == 9 and not props["is_empty"]
        events = await read_all(svc.address, root_policy, hub_id, "1")
        assert [e.body_as_str() for e in events] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
        assert props["last_enqueued_offset"] == events[-1].offset
        third = events[7]
        after = await read_all(svc.address, root_policy, hub_id, "1", third.offset)
        assert after[0].sequence_number == 8
        async with admin(svc.address, root_policy) as stub:
            req = ingestion_pb2.PublishEventsRequest.FromString(PublishEventsRequestPacked(
                hub=hub_id, partition_id="0", producer_id="p", producer_sequence=0,
                events=[event_pb2.EventData(body=b"x").SerializeToString()]).SerializeToString())
            assert not (await stub.PublishEvents(req)).duplicate
            assert (await stub.PublishEvents(req)).duplicate
    async with ingestion(data, **NATS) as svc:  # the index and producers come back from the stream
        async with admin(svc.address, root_policy) as stub:
            again = await stub.PublishEvents(req)
            assert again.duplicate and again.first_sequence_number == 0
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, hub_id)) as p:
            nxt = await p.send_batch([EventData("c0")], partition_id="1")
            assert nxt.first_sequence_number == 10
        events = await read_all(svc.address, root_policy, hub_id, "1", 9, inclusive=True)
        assert [e.body_as_str() for e in events] == ["b4", "c0"]
        # Retention: everything expires, numbering continues.
        await sweep(svc.service.hubs, now_ns=time.time_ns() + 8 * 86400 * 10**9)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, hub_id)) as p:
            props = await p.get_partition_properties("1")
            assert props["is_empty"] and props["beginning_sequence_number"] == 11
            assert (await p.send_batch([EventData("d0")], partition_id="1")).first_sequence_number == 11
        events = await read_all(svc.address, root_policy, hub_id, "1", "-1")
        assert [e.body_as_str() for e in events] == ["d0"]
        async with admin(svc.address, root_policy) as stub:
            await stub.DeleteHub(ingestion_pb2.DeleteHubRequest(name=f"hubs/{hub_id}"))
        from nats.js.errors import NotFoundError

        js = svc.service.hubs.js
        with pytest.raises(NotFoundError):
            await js.stream_info(stream_name(hub_id, "1", prefix)[0])


async def test_batches_over_the_nats_payload_limit_are_refused(tmp_path, root_policy, hub_id, NATS):
    async with ingestion(tmp_path / "d", max_message_bytes=4 << 20, **NATS) as svc:
        await create_hub(svc.address, root_policy, hub_id, 1)
        try:
            async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, hub_id),
                                                                     retry_policy=ONE_TRY) as p:
                batch = await p.create_batch(max_size_in_bytes=4 << 20)
                for _ in range(4):
                    batch.add(EventData(b"x" * 400_000))
                with pytest.raises(HeadwaterError) as err:
                    await p.send_batch(batch)
                assert err.value.reason is Reason.MESSAGE_SIZE_EXCEEDED and "max_payload" in err.value.message
                assert (await p.get_partition_properties("0"))["is_empty"]
        finally:
            async with admin(svc.address, root_policy) as stub:
                await stub.DeleteHub(ingestion_pb2.DeleteHubRequest(name=f"hubs/{hub_id}"))


async def test_instances_share_one_partition_in_one_order_and_exactly_once(tmp_path, root_policy, NATS):
    """Producers on two instances write one partition at once: every batch succeeds, numbers are
    gapless and each batch contiguous; an idempotent retry through the other instance is a duplicate."""
    async with ingestion(tmp_path / "a", **NATS) as a, ingestion(tmp_path / "b", **NATS) as b:
        await create_hub(a.address, root_policy, "shared", 1)
        producers = [EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "shared"),
                                                                   retry_policy=ONE_TRY) for svc in (a, b)]
        try:
            results = await asyncio.gather(*(
                producers[i % 2].send_batch([EventData(f"{i}-{j}") for j in range(5)], partition_id="0")
                for i in range(60)))
        finally:
            for p in producers:
                await p.close()
        firsts = sorted(r.first_sequence_number for r in results)
        assert firsts == list(range(0, 300, 5)), "one order, no gaps, no SERVICE_BUSY"
        events = await read_all(b.address, root_policy, "shared", "0", expect=300)
        assert [e.sequence_number for e in events] == list(range(300))
        assert sorted(e.body_as_str() for e in events) == sorted(f"{i}-{j}" for i in range(60) for j in range(5))
        by_seq = {r.first_sequence_number: i for i, r in enumerate(results)}
        for first, i in by_seq.items():
            assert [e.body_as_str() for e in events[first:first + 5]] == [f"{i}-{j}" for j in range(5)]
        # An idempotent producer's retry lands on the other instance: stored once.
        req = ingestion_pb2.PublishEventsRequest.FromString(PublishEventsRequestPacked(
            hub="shared", partition_id="0", producer_id="p", producer_sequence=0,
            events=[event_pb2.EventData(body=b"once").SerializeToString()]).SerializeToString())
        async with admin(a.address, root_policy) as sa, admin(b.address, root_policy) as sb:
            first = await sa.PublishEvents(req)
            again = await sb.PublishEvents(req)
            assert not first.duplicate and again.duplicate
            assert again.first_sequence_number == first.first_sequence_number == 300
            req.producer_sequence = 1
            assert (await sb.PublishEvents(req)).first_sequence_number == 301
            req.producer_sequence = 5  # a gap is refused on either instance
            for stub in (sa, sb):
                with pytest.raises(Exception, match="next expected is 2"):
                    await stub.PublishEvents(req)


async def test_a_live_reader_on_one_instance_sees_events_published_through_another(tmp_path, root_policy, NATS):
    async with ingestion(tmp_path / "a", **NATS) as a, ingestion(tmp_path / "b", **NATS) as b:
        await create_hub(a.address, root_policy, "live", 2)
        got: list = []
        done = asyncio.Event()
        consumer = EventHubConsumerClient.from_connection_string(conn_str(b.address, root_policy), "$Default",
                                                                 eventhub_name="live")

        async def on_event(ctx, event):
            if event is not None:
                got.append(event.body_as_str())
                if len(got) == 100:
                    done.set()

        task = asyncio.create_task(consumer.receive(on_event, partition_id="1", starting_position="@latest",
                                                    max_wait_time=30))
        try:
            async with EventHubProducerClient.from_connection_string(conn_str(a.address, root_policy, "live")) as p:
                for _ in range(100):  # the reader is waiting once its instance's partition has a follower
                    if b.service.servicer.readers:
                        break
                    await asyncio.sleep(0.05)
                for i in range(10):
                    await p.send_batch([EventData(f"{i}-{j}") for j in range(10)], partition_id="1")
            await asyncio.wait_for(done.wait(), 15)
        finally:
            await consumer.close()
            await asyncio.wait_for(task, 5)
        assert got == [f"{i}-{j}" for i in range(10) for j in range(10)]


async def test_a_new_instance_starts_without_reading_the_log(tmp_path, root_policy, NATS):
    """Opening a partition reads its first and last message only; positions are found by
    binary search over message sequences."""
    async with ingestion(tmp_path / "a", **NATS) as a:
        await create_hub(a.address, root_policy, "big", 1)
        async with EventHubProducerClient.from_connection_string(conn_str(a.address, root_policy, "big")) as p:
            for i in range(200):
                await p.send_batch([EventData(f"{i}-{j}") for j in range(10)])
        middle = (await read_all(a.address, root_policy, "big", "0", 1234, inclusive=True, expect=1))[0]
    t0 = time.perf_counter()
    async with ingestion(tmp_path / "b", **NATS) as b:
        started = time.perf_counter() - t0
        part = b.service.hubs.get("big").partitions[0]
        assert len(part._data) <= 2, "only the first and last message were read"
        assert part.next_sequence == 2000 and part.beginning_sequence == 0
        assert await part.locate_offset(int(middle.offset), True) == 1234
        assert len(part._data) <= 2 + 9, "an offset is found by binary search (log2 200 probes), not a scan"
        events = await read_all(b.address, root_policy, "big", "0", middle.offset, inclusive=True, expect=3)
        assert [e.sequence_number for e in events[:3]] == [1234, 1235, 1236]
    assert started < 10, f"start took {started:.1f}s"


def test_a_second_process_on_one_embedded_data_folder_is_refused(service_process, tmp_path):
    data = tmp_path / "data"
    first = service_process("ingestion", "--data-dir", str(data))
    with pytest.raises(RuntimeError) as err:
        service_process("ingestion", "--data-dir", str(data))
    text = str(err.value)
    assert str(data) in text and f"pid {first.pid}" in text and "in use" in text, text
    first.kill()  # kill -9: the kernel drops the lock with the process
    first.proc.wait(10)
    again = service_process("ingestion", "--data-dir", str(data))
    assert again.alive()


async def test_reading_old_batches_does_not_push_the_tail_out_of_the_cache(tmp_path, prefix):
    """A scan from the start misses the cache for the oldest batches; those are not kept
    when the cache is full, so the newer batches (the tail) stay and are read from memory."""
    from headwater.services.ingestion.log.nats import NatsHubStore, NatsPartitionLog

    store = NatsHubStore(tmp_path / "s", nats_url=NATS_URL, nats_prefix=prefix, nats_cache_mb=1)
    await store.open_async()
    try:
        log = await NatsPartitionLog(store.conn, "h", "0").open()
        for _ in range(40):  # 40 batches of 100 KB: 4 MB over a 1 MB cache
            await log.publish([b"x" * 1000] * 100)
        tail = set(log._data)
        assert tail and min(tail) > log.first_msg_seq, "the oldest batches left the cache"
        gets = []
        real_get = log.js.get_msg

        async def counted(*args, **kwargs):
            gets.append(kwargs.get("seq"))
            return await real_get(*args, **kwargs)

        log.js.get_msg = counted
        seq, got = 0, 0
        while seq < log.next_sequence:
            _, n, seq = await log.fetch(seq, 1000)
            got += n
        assert got == 4000
        # Only the batches not in memory came from NATS (before: every one, each old batch
        # read pushing out a newer one that the scan then read from NATS too).
        assert sorted(gets) == [q for q in range(log.first_msg_seq, log.last_msg_seq + 1) if q not in tail]
        assert set(log._data) == tail, "the scan kept old batches in place of the tail"
        assert store.conn.cached <= store.conn.cache_bytes + 200_000
        log.close()
    finally:
        await store.close_async()


async def test_a_tail_learnt_ahead_of_the_follower_keeps_every_producer_batch(tmp_path, prefix):
    """Instance B stores two batches (producer P's second, then another producer's) while A's
    header follower is behind; A learns the new tail from the stream's state (as after a
    refused append). P's third batch through A must be accepted: A reads the batches it has
    not seen, P's second among them, instead of taking the tail as the last one seen (a kill
    -9 of an instance mid-run refused a producer that way: "the next expected is ...")."""
    from headwater.services.ingestion.log.nats import NatsHubStore, NatsPartitionLog

    stores = [NatsHubStore(tmp_path / n, nats_url=NATS_URL, nats_prefix=prefix) for n in "ab"]
    for st in stores:
        await st.open_async()
    try:
        a = await NatsPartitionLog(stores[0].conn, "h", "0").open()
        b = await NatsPartitionLog(stores[1].conn, "h", "0").open()
        assert (await a.publish([b"p0"], "P", 0)).first_sequence == 0
        a._following.cancel()  # A's follower stops: what B stores now, A learns otherwise
        await a._follower.unsubscribe()
        await b.refresh()
        await b._catch_up_producers()
        assert (await b.publish([b"p1"], "P", 1)).first_sequence == 1
        assert (await b.publish([b"q0"], "Q", 0)).first_sequence == 2
        await a.refresh()  # the tail (Q's batch) from the stream's state
        assert a.next_sequence == 3
        stored = await a.publish([b"p2"], "P", 2)
        assert (stored.first_sequence, stored.duplicate) == (3, False)
        again = await a.publish([b"p1"], "P", 1)  # P's retry of the batch B stored: the same numbers
        assert (again.first_sequence, again.duplicate) == (1, True)
        with pytest.raises(HeadwaterError) as err:
            await a.publish([b"p9"], "P", 9)
        assert err.value.reason is Reason.PRECONDITION_FAILED and "next expected is 3" in err.value.message
        a.close()
        b.close()
    finally:
        for st in stores:
            await st.close_async()
