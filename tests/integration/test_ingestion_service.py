"""Hub and consumer group management, fault injection, throughput units, HTTP ingest,
Capture and metrics on a real in-process ingestion service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import fastavro
import pytest
from google.protobuf import field_mask_pb2

from headwater.auth import Right, generate_sas_token
from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubProducerClient
from headwater.v1 import errors_pb2, ingestion_pb2
from tests.integration.ingestion_support import (
    FAST_RETRY,
    ONE_TRY,
    add_policy,
    admin,
    conn_str,
    create_hub,
    fault_rules_everywhere,
    ingestion,
    ingestion_backend,  # noqa: F401 - the fixture parametrizing every test by backend
    read_all,
)

pytestmark = pytest.mark.usefixtures("ingestion_backend")


async def _err(coro) -> HeadwaterError:
    try:
        await coro
    except Exception as exc:  # noqa: BLE001
        return HeadwaterError.from_rpc_error(exc) if not isinstance(exc, HeadwaterError) else exc
    raise AssertionError("the call succeeded")


async def test_hub_and_consumer_group_lifecycle(tmp_path, root_policy):
    async with ingestion(tmp_path / "d", max_consumer_groups=3) as svc, admin(svc.address, root_policy) as stub:
        for name in ("a", "b", "c"):
            await stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id=name, hub=ingestion_pb2.Hub(partition_count=2)))
        hub = (await stub.GetHub(ingestion_pb2.GetHubRequest(name="hubs/a"))).hub
        assert hub.partition_ids == ["0", "1"] and hub.message_retention.seconds == 7 * 24 * 3600
        page1 = await stub.ListHubs(ingestion_pb2.ListHubsRequest(page_size=2))
        page2 = await stub.ListHubs(ingestion_pb2.ListHubsRequest(page_size=2, page_token=page1.next_page_token))
        assert [h.name for h in [*page1.hubs, *page2.hubs]] == ["hubs/a", "hubs/b", "hubs/c"]
        assert not page2.next_page_token
        err = await _err(stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="a", hub=ingestion_pb2.Hub(partition_count=2))))
        assert err.reason is Reason.RESOURCE_ALREADY_EXISTS
        again = await stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="r", request_id="q1"))
        retried = await stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="r", request_id="q1"))
        assert again.hub == retried.hub
        err = await _err(stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="big", hub=ingestion_pb2.Hub(partition_count=33))))
        assert err.reason is Reason.INVALID_ARGUMENT and "1 to 32" in err.message
        err = await _err(stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="bad/name")))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata["field"] == "hub_id"
        await stub.CreateConsumerGroup(ingestion_pb2.CreateConsumerGroupRequest(parent="hubs/a", consumer_group_id="asa"))
        await stub.CreateConsumerGroup(ingestion_pb2.CreateConsumerGroupRequest(parent="hubs/a", consumer_group_id="spark"))
        err = await _err(stub.CreateConsumerGroup(ingestion_pb2.CreateConsumerGroupRequest(parent="hubs/a", consumer_group_id="x")))
        assert "limit" in err.message
        groups = await stub.ListConsumerGroups(ingestion_pb2.ListConsumerGroupsRequest(parent="hubs/a"))
        assert [g.name for g in groups.consumer_groups] == ["hubs/a/consumerGroups/$Default",
                                                           "hubs/a/consumerGroups/asa", "hubs/a/consumerGroups/spark"]
        err = await _err(stub.DeleteConsumerGroup(ingestion_pb2.DeleteConsumerGroupRequest(name="hubs/a/consumerGroups/$Default")))
        assert err.reason is Reason.INVALID_ARGUMENT
        await stub.DeleteConsumerGroup(ingestion_pb2.DeleteConsumerGroupRequest(name="hubs/a/consumerGroups/asa"))
        updated = await stub.UpdateHub(ingestion_pb2.UpdateHubRequest(
            hub=ingestion_pb2.Hub(name="hubs/a", message_retention={"seconds": 3600}),
            update_mask=field_mask_pb2.FieldMask(paths=["message_retention"])))
        assert updated.hub.message_retention.seconds == 3600
        await stub.DeleteHub(ingestion_pb2.DeleteHubRequest(name="hubs/a"))
        err = await _err(stub.GetHub(ingestion_pb2.GetHubRequest(name="hubs/a")))
        assert err.reason is Reason.RESOURCE_NOT_FOUND
    async with ingestion(tmp_path / "d") as svc, admin(svc.address, root_policy) as stub:
        names = [h.name for h in (await stub.ListHubs(ingestion_pb2.ListHubsRequest())).hubs]
        assert names == ["hubs/b", "hubs/c", "hubs/r"]
        assert (await stub.GetHub(ingestion_pb2.GetHubRequest(name="r"))).hub.partition_count == 4


async def test_responses_name_resources_one_way_and_requests_take_names_or_ids(tmp_path, root_policy):
    ipb = ingestion_pb2
    async with ingestion(tmp_path / "d") as svc, admin(svc.address, root_policy) as stub:
        await stub.CreateHub(ipb.CreateHubRequest(hub_id="h", hub=ipb.Hub(partition_count=2)))
        await stub.CreateHub(ipb.CreateHubRequest(hub_id="other", hub=ipb.Hub(partition_count=1)))
        group = "hubs/h/consumerGroups/$Default"
        # Bare ids in, resource names out (AIP-122).
        cp = (await stub.UpdateCheckpoint(ipb.UpdateCheckpointRequest(checkpoint=ipb.Checkpoint(
            hub="h", consumer_group="$Default", partition_id="1", offset=0, sequence_number=4)))).checkpoint
        assert (cp.hub, cp.consumer_group) == ("hubs/h", group)
        # Resource names in (the form a response gave), the same out.
        listed = (await stub.ListCheckpoints(ipb.ListCheckpointsRequest(hub=cp.hub, consumer_group=cp.consumer_group)))
        assert [(c.hub, c.consumer_group, c.sequence_number) for c in listed.checkpoints] == [("hubs/h", group, 4)]
        claimed = (await stub.ClaimOwnership(ipb.ClaimOwnershipRequest(ownerships=[ipb.Ownership(
            hub="h", partition_id="0", owner_id="me")]))).ownerships
        assert [(o.hub, o.consumer_group) for o in claimed] == [("hubs/h", group)]
        again = (await stub.ClaimOwnership(ipb.ClaimOwnershipRequest(ownerships=claimed))).ownerships
        assert [o.owner_id for o in again] == ["me"]
        props = (await stub.GetPartitionProperties(ipb.GetPartitionPropertiesRequest(name="hubs/h/partitions/0")))
        assert props.partition.hub == "hubs/h"
        rule = (await stub.SetFaultRule(ipb.SetFaultRuleRequest(rule=ipb.FaultRule(
            hub="h", reason=errors_pb2.SERVICE_BUSY, count=1, operation=ipb.FAULT_OPERATION_READ)))).rule
        assert rule.hub == "hubs/h"
        assert [r.hub for r in (await stub.ListFaultRules(ipb.ListFaultRulesRequest(hub=rule.hub))).rules] == ["hubs/h"]
        await stub.ClearFaultRules(ipb.ClearFaultRulesRequest(hub="hubs/h"))
        # A consumer group of another hub is refused, naming the field.
        err = await _err(stub.ListCheckpoints(ipb.ListCheckpointsRequest(
            hub="hubs/other", consumer_group=group)))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata["field"] == "consumer_group"
        assert "a consumer group of hub 'h', not of 'other'" in err.message


async def test_fault_rules_are_retried_by_the_sdk_or_surface_typed(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc, admin(svc.address, root_policy) as stub:
        await create_hub(svc.address, root_policy, "h", 2)
        await stub.SetFaultRule(ingestion_pb2.SetFaultRuleRequest(rule=ingestion_pb2.FaultRule(
            rule_id="busy", hub="h", operation=ingestion_pb2.FAULT_OPERATION_PUBLISH,
            reason=errors_pb2.SERVICE_BUSY, count=3)))
        await fault_rules_everywhere(svc, "busy")
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=FAST_RETRY) as p:
            resp = await p.send_batch([EventData("survives")], partition_id="0")
            assert resp.first_sequence_number == 0
        rules = (await stub.ListFaultRules(ingestion_pb2.ListFaultRulesRequest(hub="h"))).rules
        assert rules[0].injected == 3 and rules[0].remaining == 0
        await stub.SetFaultRule(ingestion_pb2.SetFaultRuleRequest(rule=ingestion_pb2.FaultRule(
            rule_id="gone", hub="h", reason=errors_pb2.CONSUMER_DISCONNECTED, probability=1.0)))
        await fault_rules_everywhere(svc, "gone")
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=FAST_RETRY) as p:
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData("x")])
            assert err.value.reason is Reason.CONSUMER_DISCONNECTED and not err.value.is_transient
        cleared = await stub.ClearFaultRules(ingestion_pb2.ClearFaultRulesRequest(hub="h"))
        assert cleared.removed == 2
        err = await _err(stub.SetFaultRule(ingestion_pb2.SetFaultRuleRequest(rule=ingestion_pb2.FaultRule(
            hub="h", probability=1.0))))
        assert err.reason is Reason.INVALID_ARGUMENT and "reason" in err.message


async def test_throughput_units_throttle_and_the_sdk_backs_off(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 1, throughput=ingestion_pb2.ThroughputSettings(units=1))
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=ONE_TRY) as p:
            await p.send_batch([EventData("x") for _ in range(900)])
            with pytest.raises(HeadwaterError) as err:
                await p.send_batch([EventData("x") for _ in range(900)])
            assert err.value.reason is Reason.QUOTA_EXCEEDED and err.value.is_transient and err.value.retry_after
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h"),
                                                                 retry_policy=FAST_RETRY) as p:
            resp = await p.send_batch([EventData("x") for _ in range(900)])
            assert resp.last_sequence_number == 1799
        await create_hub(svc.address, root_policy, "auto", 1, throughput=ingestion_pb2.ThroughputSettings(
            units=1, auto_inflate=True, maximum_units=4))
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "auto"),
                                                                 retry_policy=ONE_TRY) as p:
            for _ in range(3):
                await p.send_batch([EventData("x") for _ in range(900)])
        async with admin(svc.address, root_policy) as stub:
            hub = (await stub.GetHub(ingestion_pb2.GetHubRequest(name="auto"))).hub
            assert hub.throughput.units == 3


async def test_http_ingest_json_event_and_array(tmp_path, root_policy, _isolated_home):
    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "h", 2)
        port = svc.service.http_port
        base = f"http://127.0.0.1:{port}"
        token = generate_sas_token(f"headwater://{svc.address}/", root_policy.name, root_policy.key)
        listen = add_policy(_isolated_home, "l", Right.LISTEN)
        listen_token = generate_sas_token(f"headwater://{svc.address}/", listen.name, listen.key)
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{base}/h/messages", json={"tripId": "1"}, headers={"Authorization": token})
            assert r.status == 201, await r.text()
            one = await r.json()
            r = await http.post(f"{base}/h/partitions/1/messages", json=[{"a": 1}, {"a": 2}],
                                headers={"Authorization": token})
            assert (await r.json())["lastSequenceNumber"] - (await r.json())["firstSequenceNumber"] == 1
            r = await http.post(f"{base}/h/messages", data=b'[{"Body": "hi", "UserProperties": {"k": "v"}, '
                                b'"BrokerProperties": {"PartitionKey": "car"}}]',
                                headers={"Authorization": token,
                                         "Content-Type": "application/vnd.microsoft.servicebus.json"})
            assert r.status == 201
            r = await http.post(f"{base}/h/messages", json={"x": 1})
            assert r.status == 401 and (await r.json())["error"]["reason"] == "UNAUTHORIZED"
            r = await http.post(f"{base}/h/messages", json={"x": 1}, headers={"Authorization": listen_token})
            assert r.status == 403
            r = await http.post(f"{base}/h/messages", data=b"{not json", headers={"Authorization": token})
            assert r.status == 400 and "not JSON" in (await r.json())["error"]["message"]
            r = await http.post(f"{base}/h/messages", json={"big": "x" * 1_100_000}, headers={"Authorization": token})
            assert r.status == 413
            r = await http.post(f"{base}/nohub/messages", json={}, headers={"Authorization": token})
            assert r.status == 404
        from headwater.eventhub.aio import EventHubConsumerClient

        consumer = EventHubConsumerClient.from_connection_string(conn_str(svc.address, root_policy, "h"), "$Default")
        got = []

        async def on_event(ctx, event):
            if event is None:
                await consumer.close()
            else:
                got.append(event)

        await asyncio.wait_for(consumer.receive(on_event, partition_id=one["partitionId"], starting_position="-1",
                                                max_wait_time=0.3), 10)
        assert got[0].body_as_json() == {"tripId": "1"} and got[0].content_type == "application/json"


async def test_capture_writes_event_hubs_avro_files(tmp_path, root_policy):
    async with ingestion(tmp_path / "d") as svc:
        dest = tmp_path / "d" / "captured"  # under allowed_paths (default the data folder)
        await create_hub(svc.address, root_policy, "h", 1, capture=ingestion_pb2.CaptureDescription(
            enabled=True, interval={"seconds": 60}, destination=str(dest)))
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            ev = EventData('{"tripId": "t1"}')
            ev.properties = {"src": "test"}
            await p.send_batch([ev, EventData("two")])
        await svc.service.capture.flush_due_async(svc.service.hubs, force=True)
        files = list(Path(dest).rglob("*.avro"))
        assert len(files) == 1 and files[0].relative_to(dest).parts[1:3] == ("h", "0")
        with open(files[0], "rb") as fh:
            records = list(fastavro.reader(fh))
        assert [r["SequenceNumber"] for r in records] == [0, 1]
        assert records[0]["Body"] == b'{"tripId": "t1"}' and records[0]["Properties"] == {"src": "test"}
        assert set(records[0]) == {"SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties", "Body"}
        assert await svc.service.capture.flush_due_async(svc.service.hubs, force=True) == 0, "nothing captured twice"


async def test_metrics_count_per_hub_and_partition(tmp_path, root_policy):
    from prometheus_client import REGISTRY

    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "metrics-hub", 2)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "metrics-hub")) as p:
            labels = {"hub": "metrics-hub", "partition": "1"}
            before = REGISTRY.get_sample_value("headwater_ingestion_incoming_messages_total", labels) or 0
            await p.send_batch([EventData("x") for _ in range(7)], partition_id="1")
        value = REGISTRY.get_sample_value("headwater_ingestion_incoming_messages_total", labels)
        assert value - before == 7  # the registry is this process's: earlier tests counted too


async def test_retention_sweeps_old_segments_and_reads_start_at_the_beginning(tmp_path, root_policy):
    async with ingestion(tmp_path / "d", retention_check_s=0.1) as svc:
        await create_hub(svc.address, root_policy, "h", 1, message_retention={"nanos": 300_000_000})
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "h")) as p:
            await p.send_batch([EventData("old") for _ in range(5)])
            for _ in range(50):
                await asyncio.sleep(0.1)
                props = await p.get_partition_properties("0")
                if props["is_empty"]:
                    break
            assert props["is_empty"] and props["beginning_sequence_number"] == 5
            await p.send_batch([EventData("new")])
        events = await read_all(svc.address, root_policy, "h", "0", 0, inclusive=True)
        assert [(e.sequence_number, e.body_as_str()) for e in events] == [(5, "new")]


async def test_reads_over_the_outgoing_quota_are_slowed_not_failed(tmp_path, root_policy):
    from prometheus_client import REGISTRY

    async with ingestion(tmp_path / "d") as svc:
        await create_hub(svc.address, root_policy, "egress", 1)
        async with EventHubProducerClient.from_connection_string(conn_str(svc.address, root_policy, "egress")) as p:
            for _ in range(6):
                await p.send_batch([EventData("x" * 10) for _ in range(1000)])
        async with admin(svc.address, root_policy) as stub:
            await stub.UpdateHub(ingestion_pb2.UpdateHubRequest(
                hub=ingestion_pb2.Hub(name="hubs/egress", throughput=ingestion_pb2.ThroughputSettings(units=1)),
                update_mask=field_mask_pb2.FieldMask(paths=["throughput"])))
        before = REGISTRY.get_sample_value("headwater_ingestion_throttled_requests_total", {"hub": "egress"}) or 0
        events = await read_all(svc.address, root_policy, "egress", "0", expect=6000)
        assert [e.sequence_number for e in events] == list(range(6000)), "every event arrives, in order"
        after = REGISTRY.get_sample_value("headwater_ingestion_throttled_requests_total", {"hub": "egress"})
        assert after > before, "the reader was held back by the 4096 events/s egress quota"
