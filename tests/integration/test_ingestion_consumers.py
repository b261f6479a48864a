"""Checkpoints, ownership with etags, load balancing over consumers, exclusive readers."""

from __future__ import annotations

import asyncio

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData
from headwater.eventhub.aio import (
    EventHubConsumerClient,
    EventHubProducerClient,
    ServiceCheckpointStore,
)
from headwater.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from headwater.v1 import ingestion_pb2
from tests.integration.ingestion_support import (
    admin,
    conn_str,
    create_hub,
    ingestion,
    ingestion_backend,  # noqa: F401 - parametrizes by backend
)

pytestmark = pytest.mark.usefixtures("ingestion_backend")


async def test_ownership_claims_need_the_current_etag(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        store = ServiceCheckpointStore.from_connection_string(conn_str(svc.address, root_policy))
        claim = {"fully_qualified_namespace": "ns", "eventhub_name": "h", "consumer_group": "$Default",
                 "partition_id": "0", "owner_id": "a", "etag": ""}
        [first] = await store.claim_ownership([claim])
        assert first["owner_id"] == "a" and first["etag"]
        assert await store.claim_ownership([dict(claim, owner_id="b")]) == [], "stale (empty) etag loses"
        [second] = await store.claim_ownership([dict(claim, owner_id="b", etag=first["etag"])])
        assert second["owner_id"] == "b" and second["etag"] != first["etag"]
        assert await store.claim_ownership([dict(claim, owner_id="a", etag=first["etag"])]) == []
        listed = await store.list_ownership("ns", "h", "$Default")
        assert [(o["partition_id"], o["owner_id"]) for o in listed] == [("0", "b")]
        await store.update_checkpoint({"eventhub_name": "h", "consumer_group": "$Default", "partition_id": "1",
                                       "offset": "120", "sequence_number": 3})
        [cp] = await store.list_checkpoints("ns", "h", "$Default")
        assert (cp["partition_id"], cp["sequence_number"], cp["offset"]) == ("1", 3, "120")
        await store.close()
    async with ingestion(tmp_path / "d") as svc:  # both survive a restart
        store = ServiceCheckpointStore.from_connection_string(conn_str(svc.address, root_policy))
        assert [c["sequence_number"] for c in await store.list_checkpoints("ns", "h", "$Default")] == [3]
        assert [o["owner_id"] for o in await store.list_ownership("ns", "h", "$Default")] == ["b"]
        await store.close()


async def _publish(address, policy, hub, partitions, per_partition, tag):
    async with EventHubProducerClient.from_connection_string(conn_str(address, policy, hub)) as p:
        for pid in range(partitions):
            await p.send_batch([EventData(f"{tag}-{pid}-{i}") for i in range(per_partition)],
                               partition_id=str(pid))


async def test_consumers_split_partitions_and_take_over_from_checkpoint(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 4)
        seen: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}

        def consumer(name: str):
            store = BlobCheckpointStore.from_connection_string(conn_str(svc.address, root_policy), "container")
            client = EventHubConsumerClient.from_connection_string(
                conn_str(svc.address, root_policy), "$Default", eventhub_name="h", checkpoint_store=store,
                # Ownership kept 10 s without renewal: a loop stalled on a loaded machine keeps
                # its partitions (1 s let the other consumer steal one mid-read under -n 4).
                load_balancing_interval=0.2, partition_ownership_expiration_interval=10.0)

            async def on_event(ctx, event):
                seen[name].append((ctx.partition_id, event.body_as_str()))
                await ctx.update_checkpoint(event)

            task = asyncio.create_task(client.receive(on_event, starting_position="-1"))
            return client, task

        a, ta = consumer("a")
        b, tb = consumer("b")
        watcher = ServiceCheckpointStore.from_connection_string(conn_str(svc.address, root_policy))
        for _ in range(100):  # the two settle on two partitions each
            await asyncio.sleep(0.1)
            owners = [o["owner_id"] for o in await watcher.list_ownership("ns", "h", "$Default")]
            if len(owners) == 4 and sorted(owners.count(o) for o in set(owners)) == [2, 2]:
                break
        else:
            raise AssertionError(f"ownership did not balance: {owners}")
        await _publish(svc.address, root_policy, "h", 4, 5, "first")
        for _ in range(100):
            await asyncio.sleep(0.1)
            if len(seen["a"]) + len(seen["b"]) >= 20:
                break
        for _ in range(100):  # each partition's last checkpoint is stored (on_event counts an event first)
            cps = await watcher.list_checkpoints("ns", "h", "$Default")
            if len(cps) == 4 and all(c["sequence_number"] == 4 for c in cps):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"checkpoints not stored: {cps}")
        await watcher.close()
        parts_a = {p for p, _ in seen["a"]}
        parts_b = {p for p, _ in seen["b"]}
        assert len(parts_a) == 2 and len(parts_b) == 2 and not parts_a & parts_b, (parts_a, parts_b)
        assert sorted(x for _, x in seen["a"] + seen["b"]) == sorted(
            f"first-{p}-{i}" for p in range(4) for i in range(5))
        # b goes away; a takes its partitions over and resumes from b's checkpoints.
        await b.close()
        await asyncio.wait_for(tb, 5)
        await _publish(svc.address, root_policy, "h", 4, 3, "second")
        for _ in range(100):
            await asyncio.sleep(0.1)
            if sum(1 for _, x in seen["a"] if x.startswith("second")) >= 12:
                break
        second = sorted(x for _, x in seen["a"] if x.startswith("second"))
        assert second == sorted(f"second-{p}-{i}" for p in range(4) for i in range(3))
        assert not any(x.startswith("first") for p, x in seen["a"] if p in parts_b), "resumed after checkpoint"
        await a.close()
        await asyncio.wait_for(ta, 5)


async def test_receive_batch_and_last_enqueued_properties(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        await _publish(svc.address, root_policy, "h", 1, 25, "x")
        client = EventHubConsumerClient.from_connection_string(conn_str(svc.address, root_policy, "h"), "$Default")
        batches = []

        async def on_batch(ctx, events):
            batches.append((len(events), ctx.last_enqueued_event_properties))
            if sum(n for n, _ in batches) >= 25:
                await client.close()

        await asyncio.wait_for(client.receive_batch(on_batch, max_batch_size=10, partition_id="0",
                                                    starting_position="-1",
                                                    track_last_enqueued_event_properties=True), 10)
        assert [n for n, _ in batches] == [10, 10, 5]
        assert batches[0][1]["sequence_number"] == 24


async def test_higher_owner_level_disconnects_the_lower_reader(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 1)
        errors = []
        low = EventHubConsumerClient.from_connection_string(conn_str(svc.address, root_policy, "h"), "$Default")

        async def on_error(ctx, err):
            errors.append(err)

        async def nothing(ctx, event):
            pass

        t_low = asyncio.create_task(low.receive(nothing, partition_id="0", owner_level=1, on_error=on_error))
        await asyncio.sleep(0.3)
        high = EventHubConsumerClient.from_connection_string(conn_str(svc.address, root_policy, "h"), "$Default")
        t_high = asyncio.create_task(high.receive(nothing, partition_id="0", owner_level=2))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if errors:
                break
        assert errors and errors[0].reason is Reason.CONSUMER_DISCONNECTED
        await low.close()
        await high.close()
        await asyncio.wait_for(asyncio.gather(t_low, t_high), 5)


async def test_checkpoint_for_unknown_group_or_partition_is_refused(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        async with admin(svc.address, root_policy) as stub:
            with pytest.raises(Exception) as err:
                await stub.UpdateCheckpoint(ingestion_pb2.UpdateCheckpointRequest(checkpoint=ingestion_pb2.Checkpoint(
                    hub="h", consumer_group="nope", partition_id="0", sequence_number=1)))
            assert "consumer group 'nope'" in str(err.value)
            with pytest.raises(Exception) as err:
                await stub.UpdateCheckpoint(ingestion_pb2.UpdateCheckpointRequest(checkpoint=ingestion_pb2.Checkpoint(
                    hub="h", consumer_group="$Default", partition_id="9", sequence_number=1)))
            assert "no partition '9'" in str(err.value)
        with pytest.raises(HeadwaterError):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "sanity")
