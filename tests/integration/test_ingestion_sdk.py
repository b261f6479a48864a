"""The async SDK against a real in-process ingestion service: publish, read, positions, limits."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData, EventDataBatch
from headwater.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from headwater.eventhub.wire import PublishEventsRequestPacked
from headwater.v1 import event_pb2, ingestion_pb2
from tests.integration.ingestion_support import (
    ONE_TRY,
    admin,
    conn_str,
    create_hub,
    ingestion,
    ingestion_backend,  # noqa: F401 - the fixture parametrizing every test by backend
    read_all,
)

pytestmark = pytest.mark.usefixtures("ingestion_backend")


async def test_publish_and_read_back_with_stamps(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "trips", 2)
        producer = EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "trips"))
        async with producer:
            batch = await producer.create_batch(partition_id="1")
            for i in range(10):
                ev = EventData(f'{{"n": {i}}}')
                ev.properties = {"kind": "trip", "n": i}
                ev.content_type = "application/json"
                batch.add(ev)
            resp = await producer.send_batch(batch)
            assert (resp.partition_id, resp.first_sequence_number, resp.last_sequence_number) == ("1", 0, 9)
            props = await producer.get_partition_properties("1")
            assert props["last_enqueued_sequence_number"] == 9 and not props["is_empty"]
            assert (await producer.get_partition_properties("0"))["is_empty"]
            assert (await producer.get_eventhub_properties())["partition_ids"] == ["0", "1"]
        events = await read_all(svc.address, root_policy, "trips", "1")
        assert [e.sequence_number for e in events] == list(range(10))
        assert [e.body_as_json()["n"] for e in events] == list(range(10))
        assert events[3].properties == {"kind": "trip", "n": "3"}
        assert events[0].partition_id == "1" and events[0].content_type == "application/json"
        assert events[0].enqueued_time.tzinfo is not None
        offsets = [int(e.offset) for e in events]
        assert offsets == sorted(offsets) and len(set(offsets)) == 10
        assert props["last_enqueued_offset"] == events[-1].offset


async def test_positions_offset_sequence_time_latest(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            await p.send_batch([EventData(f"a{i}") for i in range(5)])
            await asyncio.sleep(0.02)
            middle = dt.datetime.now(dt.UTC)
            await asyncio.sleep(0.02)
            await p.send_batch([EventData(f"b{i}") for i in range(5)])
        every = await read_all(svc.address, root_policy, "h", "0")
        assert [e.body_as_str() for e in every] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
        third = every[3]
        exclusive = await read_all(svc.address, root_policy, "h", "0", third.offset)
        assert exclusive[0].sequence_number == 4
        inclusive = await read_all(svc.address, root_policy, "h", "0", third.offset, inclusive=True)
        assert inclusive[0].sequence_number == 3
        by_seq = await read_all(svc.address, root_policy, "h", "0", 6)
        assert by_seq[0].sequence_number == 7
        by_seq_incl = await read_all(svc.address, root_policy, "h", "0", 6, inclusive=True)
        assert by_seq_incl[0].sequence_number == 6
        by_time = await read_all(svc.address, root_policy, "h", "0", middle)
        assert [e.body_as_str() for e in by_time] == [f"b{i}" for i in range(5)]
        assert await read_all(svc.address, root_policy, "h", "0", "@latest") == []


async def test_long_poll_delivers_new_events_and_heartbeats(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        consumer = EventHubConsumerClient.from_connection_string(conn_str(svc.address, root_policy, "h"), "$Default")
        seen: list = []

        async def on_event(ctx, event):
            seen.append(event)
            if event is not None:
                await consumer.close()

        task = asyncio.create_task(consumer.receive(on_event, partition_id="0", starting_position="@latest",
                                                    max_wait_time=0.2))
        await asyncio.sleep(0.7)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            await p.send_event(EventData("late"))
        await asyncio.wait_for(task, 10)
        assert None in seen, "max_wait_time gives on_event(None) heartbeats"
        assert seen[-1].body_as_str() == "late"


async def test_partition_key_is_stable_and_balanced_spreads(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 4)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            keyed = {(await p.send_batch([EventData("x")], partition_key="car-42")).partition_id for _ in range(5)}
            assert len(keyed) == 1
            spread = {(await p.send_batch([EventData("x")])).partition_id for _ in range(8)}
            assert spread == {"0", "1", "2", "3"}
    # Same key, same partition after a restart.
    async with ingestion(tmp_path / "data") as svc:
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            assert (await p.send_batch([EventData("x")], partition_key="car-42")).partition_id == keyed.pop()


async def test_size_limits_refuse_the_whole_batch(tmp_path, root_policy):
    async with ingestion(tmp_path / "data", max_message_bytes=4096) as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=ONE_TRY) as p:
            batch = await p.create_batch(max_size_in_bytes=1000)
            batch.add(EventData(b"x" * 500))
            with pytest.raises(ValueError, match="size limit"):
                batch.add(EventData(b"x" * 500))
            assert len(batch) == 1
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData(b"y" * 100), EventData(b"z" * 5000)])
            assert err.value.reason is Reason.MESSAGE_SIZE_EXCEEDED and not err.value.is_transient
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData(b"y" * 1000) for _ in range(5)])
            assert err.value.reason is Reason.MESSAGE_SIZE_EXCEEDED
            assert (await p.get_partition_properties("0"))["is_empty"]


async def test_idempotent_retry_is_stored_once(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        async with admin(svc.address, root_policy) as stub:
            req = PublishEventsRequestPacked(hub="h", partition_id="1", producer_id="p1", producer_sequence=0,
                                             events=[event_pb2.EventData(body=b"%d" % i).SerializeToString()
                                                     for i in range(3)])
            full = ingestion_pb2.PublishEventsRequest.FromString(req.SerializeToString())
            first = await stub.PublishEvents(full)
            again = await stub.PublishEvents(full)
            assert not first.duplicate and again.duplicate
            assert again.first_sequence_number == first.first_sequence_number == 0
            full.producer_sequence = 3
            nxt = await stub.PublishEvents(full)
            assert nxt.first_sequence_number == 3 and not nxt.duplicate
            full.producer_sequence = 10
            with pytest.raises(Exception) as gap:
                await stub.PublishEvents(full)
            assert "next expected is 6" in str(gap.value)
        async with EventHubProducerClient.from_connection_string(
                conn_str(svc.address, root_policy, "h"), enable_idempotent_partitions=True) as p:
            b = await p.create_batch(partition_id="0")
            b.add(EventData("once"))
            await p.send_batch(b)
            with pytest.raises(ValueError, match="partition"):
                await p.send_batch([EventData("no partition")])
    async with ingestion(tmp_path / "data") as svc:  # producer state survives a restart
        async with admin(svc.address, root_policy) as stub:
            full.producer_sequence = 3
            again = await stub.PublishEvents(full)
            assert again.duplicate and again.first_sequence_number == 3


async def test_bad_requests_name_what_is_wrong(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "nohub"),
                                                                 retry_policy=ONE_TRY) as p:
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData("x")])
            assert err.value.reason is Reason.RESOURCE_NOT_FOUND and "nohub" in err.value.message
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=ONE_TRY) as p:
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData("x")], partition_id="7")
            assert err.value.reason is Reason.RESOURCE_NOT_FOUND and "0..1" in err.value.message
        with pytest.raises(ValueError):
            EventDataBatch(partition_id="0", partition_key="k")


async def test_every_batch_fsync_policy_acknowledges_after_sync(tmp_path, root_policy):
    async with ingestion(tmp_path / "data", fsync_policy="every_batch") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            results = await asyncio.gather(*(p.send_batch([EventData(f"{i}-{j}") for j in range(10)])
                                             for i in range(20)))
        firsts = sorted(r.first_sequence_number for r in results)
        assert firsts == list(range(0, 200, 10))
        part = (await svc.service.hubs.lookup("h")).partitions[0]
        # fsync_policy is the embedded log's; on NATS the acknowledgement follows JetStream's store.
        assert all(not seg.dirty for seg in getattr(part, "segments", ())), "acknowledged bytes were synced"


async def test_publish_stream_with_the_generated_stub(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        async with admin(svc.address, root_policy) as stub:
            requests = [ingestion_pb2.PublishEventsStreamRequest(
                hub="hubs/h", partition_id=str(i % 2), request_id=f"r{i}",
                events=[event_pb2.EventData(body=b"s%d-%d" % (i, j)) for j in range(3)]) for i in range(4)]

            async def gen():
                for r in requests:
                    yield r

            responses = [r async for r in stub.PublishEventsStream(gen())]
        assert [r.request_id for r in responses] == ["r0", "r1", "r2", "r3"]
        assert [(r.partition_id, r.first_sequence_number) for r in responses] == [("0", 0), ("1", 0), ("0", 3), ("1", 3)]


async def test_publish_stream_errors_name_the_request_and_continue_on_error_goes_on(tmp_path, root_policy):
    from google.rpc import error_details_pb2

    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        ev = [event_pb2.EventData(body=b"x")]

        def req(hub, rid, go_on=False):
            return ingestion_pb2.PublishEventsStreamRequest(hub=hub, request_id=rid, events=ev,
                                                            continue_on_error=go_on)

        async def gen(requests):
            for r in requests:
                yield r

        async with admin(svc.address, root_policy) as stub:
            # continue_on_error: the failed request's response carries its error; the stream goes on.
            responses = [r async for r in stub.PublishEventsStream(gen(
                [req("hubs/h", "a"), req("hubs/nope", "b", go_on=True), req("hubs/h", "c")]))]
            assert [r.request_id for r in responses] == ["a", "b", "c"]
            assert [r.HasField("error") for r in responses] == [False, True, False]
            assert responses[2].first_sequence_number == 1
            err = responses[1].error
            assert err.code == 5 and err.message == "request 1 (request_id 'b'): hub 'nope' does not exist"
            info = error_details_pb2.ErrorInfo()
            assert err.details[0].Unpack(info) and info.reason == "RESOURCE_NOT_FOUND"
            assert dict(info.metadata) == {"resource": "hubs/nope", "service": "ingestion",
                                           "request_index": "1", "request_id": "b"}
            # Without it the stream ends at the failed request, and its error names it.
            got = []
            with pytest.raises(Exception) as ended:
                async for r in stub.PublishEventsStream(gen([req("hubs/h", "d"), req("hubs/h", ""),
                                                             ingestion_pb2.PublishEventsStreamRequest(hub="hubs/h")])):
                    got.append(r.request_id)
            assert got == ["d", ""]
        err = await HeadwaterError.from_aio_call(ended.value)
        assert err.reason is Reason.INVALID_ARGUMENT and err.message == "request 2: the batch has no events"
        assert err.metadata["request_index"] == "2" and "request_id" not in err.metadata


async def test_a_batch_partition_key_is_stored_in_its_events(tmp_path, root_policy):
    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        async with admin(svc.address, root_policy) as stub:
            # A client in another language sets the key on the request only, as Event Hubs' batches do.
            resp = await stub.PublishEvents(ingestion_pb2.PublishEventsRequest(
                hub="hubs/h", partition_key="tokyo",
                events=[event_pb2.EventData(body=b"a"), event_pb2.EventData(body=b"b", message_id="m")]))
        got = await read_all(svc.address, root_policy, "h", resp.partition_id, expect=2)
        assert [(e.body_as_str(), e.partition_key, e.message_id) for e in got] == [("a", "tokyo", None),
                                                                                  ("b", "tokyo", "m")]


async def test_azure_style_constructors_with_a_credential(tmp_path, root_policy):
    from collections import namedtuple

    class NamedKey:  # the shape of azure.core's AzureNamedKeyCredential
        def __init__(self, name, key):
            self.named_key = namedtuple("AzureNamedKey", "name key")(name, key)

    async with ingestion(tmp_path / "data") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        producer = EventHubProducerClient(fully_qualified_namespace=svc.address, eventhub_name="h",
                                          credential=NamedKey(root_policy.name, root_policy.key))
        async with producer:
            await producer.send_batch([EventData("hello")])
        consumer = EventHubConsumerClient(svc.address, "h", "$Default", NamedKey(root_policy.name, root_policy.key))
        assert (await consumer.get_partition_properties("0"))["last_enqueued_sequence_number"] == 0
        await consumer.close()
        with pytest.raises(TypeError, match="shared access key"):
            EventHubProducerClient(svc.address, "h", credential=object())
