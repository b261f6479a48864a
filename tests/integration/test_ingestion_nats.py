"""The NATS JetStream log backend against the local NATS server (127.0.0.1:4222)."""

from __future__ import annotations

import time
import uuid

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData
from headwater.eventhub._wire import PublishEventsRequestPacked
from headwater.eventhub.aio import EventHubProducerClient
from headwater.services.ingestion.log.nats import stream_name
from headwater.services.ingestion.retention import sweep
from headwater.v1 import event_pb2, ingestion_pb2
from tests.integration.ingestion_support import (
    ONE_TRY,
    admin,
    conn_str,
    create_hub,
    ingestion,
    read_all,
)

NATS = {"log_backend": "nats", "nats_url": "nats://127.0.0.1:4222"}


@pytest.fixture
def hub_id():
    return f"nats-test-{uuid.uuid4().hex[:8]}"


async def test_publish_read_restart_and_idempotence_on_jetstream(tmp_path, root_policy, hub_id):
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
            await js.stream_info(stream_name(hub_id, "1")[0])


async def test_batches_over_the_nats_payload_limit_are_refused(tmp_path, root_policy, hub_id):
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
