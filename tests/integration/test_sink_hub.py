"""The ``hub`` sink kind: rows published to a hub of a real ingestion service, exactly once."""

from __future__ import annotations

import io
import json
import shutil

import fastavro
import pyarrow as pa
import pytest

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.plugins.sinks.hub import HubKind
from headwater.routing import partition_for_key
from headwater.sinks import Checkpoint, SinkSpec
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.integration.ingestion_support import create_hub, read_all
from tests.integration.test_sink_service import create, write

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Rome"]


def start_stack(service_process, tmp_path, registry: bool = False):
    ing = service_process("ingestion", "--data-dir", str(tmp_path / "ing"))
    env = {"HEADWATER_SINK_DASHBOARD_PORT": "-1", "HEADWATER_SINK_INGESTION_ADDRESS": ing.address}
    reg = None
    if registry:
        reg = service_process("registry", "--data-dir", str(tmp_path / "reg"))
        env["HEADWATER_SINK_REGISTRY_ADDRESS"] = reg.address
    sink = service_process("sink", "--data-dir", str(tmp_path / "sinkdata"), env=env)
    return ing, reg, sink


async def events_of(address, policy, hub, partitions, expect):
    """Every event of the hub, read until ``expect`` are there (then one more wait for extras)."""
    out = {}
    for pid in partitions:
        out[pid] = await read_all(address, policy, hub, pid, expect=None, wait=0.3)
    total = sum(len(v) for v in out.values())
    assert total == expect, f"{total} events in the hub, expected {expect}"
    return out


def rows(start: int, n: int) -> pa.Table:
    return pa.table({"city": [CITIES[i % 5] for i in range(start, start + n)],
                     "n": list(range(start, start + n)),
                     "fare": [i * 1.5 for i in range(start, start + n)]})


async def test_rows_become_events_keyed_with_properties_and_replays_are_stored_once(
        service_process, root_policy, tmp_path):
    ing, _, sink = start_stack(service_process, tmp_path)
    await create_hub(ing.address, root_policy, "out", partitions=3)
    async with aio_channel(conn_for(sink.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        created = await create(stub, "tohub", kind="hub", hub="out", partition_key_column="city",
                               property_columns=["city"])
        assert created.kind == "hub"
        await write(stub, "tohub", rows(0, 100), ckpt=1)
        again = await write(stub, "tohub", rows(0, 100), ckpt=1)  # the writer replays checkpoint 1
        assert again.duplicate
        await write(stub, "tohub", rows(100, 50), ckpt=2)
    got = await events_of(ing.address, root_policy, "out", ["0", "1", "2"], expect=150)
    seen = []
    for pid, events in got.items():
        for e in events:
            body = json.loads(e.body_as_str())
            seen.append(body["n"])
            # One key, one partition (ingestion's routing), the key and the property on the event.
            assert pid == str(partition_for_key(body["city"], 3))
            assert e.partition_key == body["city"]
            assert e.properties["city"] == body["city"]
            assert e.content_type == "application/json"
        ns = [json.loads(e.body_as_str())["n"] for e in events]
        assert ns == sorted(ns), "rows of one partition keep their order"
    assert sorted(seen) == list(range(150))


async def test_a_write_in_doubt_after_a_crash_is_recognised_by_the_hub(service_process, root_policy, tmp_path):
    """The crash window: the events were published but the sink's state file was not yet
    written. The replay re-sends them with the same producer sequence: stored once."""
    ing, _, _ = start_stack(service_process, tmp_path)
    await create_hub(ing.address, root_policy, "chain", partitions=2)
    ns = str(conn_for(ing.address, root_policy))
    kind = HubKind()
    base = SinkSpec(name="s", config={"hub": "chain"}, data_dir=tmp_path / "state", namespace=ns)
    spec = SinkSpec(name="s", config=kind.validate({"hub": "chain"}, base), data_dir=base.data_dir, namespace=ns)

    first = kind.create(spec)
    await first.open()
    await first.write_batch(rows(0, 40), Checkpoint(1, 0, "jobs/a"))
    before = (tmp_path / "state" / "hub-state.json").read_bytes()
    await first.write_batch(rows(40, 40), Checkpoint(2, 0, "jobs/a"))
    await first.close()
    (tmp_path / "state" / "hub-state.json").write_bytes(before)  # as if killed before saving

    second = kind.create(spec)
    await second.open()
    assert second.last_checkpoint("jobs/a") == Checkpoint(1, 0, "jobs/a")
    await second.write_batch(rows(40, 40), Checkpoint(2, 0, "jobs/a"))  # the replay
    await second.write_batch(rows(80, 10), Checkpoint(3, 0, "jobs/a"))
    await second.close()
    got = await events_of(ing.address, root_policy, "chain", ["0", "1"], expect=90)
    assert sorted(json.loads(e.body_as_str())["n"] for v in got.values() for e in v) == list(range(90))

    # A lost state folder is a new producer: the sink says so by starting over, not by failing.
    shutil.rmtree(tmp_path / "state")
    third = kind.create(spec)
    await third.open()
    assert third.last_checkpoint("jobs/a") is None
    await third.close()


async def test_csv_and_avro_with_the_registry_schema_id(service_process, root_policy, tmp_path):
    ing, reg, sink = start_stack(service_process, tmp_path, registry=True)
    await create_hub(ing.address, root_policy, "csvout", partitions=1)
    await create_hub(ing.address, root_policy, "avroout", partitions=1)
    async with aio_channel(conn_for(sink.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "c", kind="hub", hub="csvout", format="csv")
        await create(stub, "a", kind="hub", hub="avroout", format="avro", schema_group="trips")
        await write(stub, "c", rows(0, 3), ckpt=1)
        await write(stub, "a", rows(0, 3), ckpt=1)
    csv_events = (await events_of(ing.address, root_policy, "csvout", ["0"], expect=3))["0"]
    assert [e.body_as_str() for e in csv_events] == ["Oslo,0,0.0", "Lima,1,1.5", "Pune,2,3.0"]
    assert csv_events[0].content_type == "text/csv"

    avro_events = (await events_of(ing.address, root_policy, "avroout", ["0"], expect=3))["0"]
    ctype = avro_events[0].content_type
    assert ctype.startswith("avro/binary+")
    from tests.integration.registry_support import client

    with client(reg.address, root_policy) as registry:  # the SDK's blocking client
        schema = registry.get_schema(ctype.split("+", 1)[1])
    parsed = fastavro.parse_schema(json.loads(schema.definition))
    decoded = [fastavro.schemaless_reader(io.BytesIO(e.body), parsed) for e in avro_events]
    assert decoded == [{"city": "Oslo", "n": 0, "fare": 0.0}, {"city": "Lima", "n": 1, "fare": 1.5},
                       {"city": "Pune", "n": 2, "fare": 3.0}]


async def test_bad_settings_are_refused_naming_the_setting(service_process, root_policy, tmp_path):
    _, _, sink = start_stack(service_process, tmp_path)
    async with aio_channel(conn_for(sink.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        for settings, field in [({"format": "json"}, "hub"),
                                ({"hub": "x", "format": "xml"}, "format"),
                                ({"hub": "x", "partition_key_column": "a", "partition_id_column": "b"},
                                 "partition_id_column"),
                                ({"hub": "x", "colour": "red"}, "colour")]:
            with pytest.raises(HeadwaterError) as err:
                await create(stub, "bad", kind="hub", **settings)
            assert err.value.reason == Reason.INVALID_ARGUMENT and field in str(err.value), settings
        # A hub that does not exist: refused when the sink is created, naming the hub.
        with pytest.raises(HeadwaterError) as err:
            await create(stub, "nohub", kind="hub", hub="missing")
        assert err.value.reason == Reason.RESOURCE_NOT_FOUND and "'missing'" in str(err.value)


async def test_a_write_retried_after_one_partition_failed_is_stored_once(service_process, root_policy, tmp_path):
    """One write spans two partitions; the hub refuses the second one's publish once
    (SERVICE_BUSY, injected): the writer retries the write (the sink service answers the
    failure at once), the first partition's chunk is re-sent with its sequence numbers and
    recognised, nothing is stored twice."""
    from headwater.retry import retry_async
    from headwater.v1 import errors_pb2
    from headwater.v1 import ingestion_pb2 as ipb
    from tests.integration.ingestion_support import admin

    ing, _, sink = start_stack(service_process, tmp_path)
    await create_hub(ing.address, root_policy, "busy", partitions=2)
    table = rows(0, 60)
    first_pid = str(partition_for_key(table.column("city")[0].as_py(), 2))
    other = "1" if first_pid == "0" else "0"
    async with admin(ing.address, root_policy) as ingestion:
        await ingestion.SetFaultRule(ipb.SetFaultRuleRequest(rule=ipb.FaultRule(
            rule_id="once", hub="busy", operation=ipb.FAULT_OPERATION_PUBLISH,
            reason=errors_pb2.SERVICE_BUSY, count=1, partition_id=other)))
        async with aio_channel(conn_for(sink.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "b", kind="hub", hub="busy", partition_key_column="city")
            await retry_async(lambda: write(stub, "b", table, ckpt=1))
        rules = (await ingestion.ListFaultRules(ipb.ListFaultRulesRequest(hub="busy"))).rules
    assert rules[0].injected == 1, "the fault was not injected: the test proves nothing"
    got = await events_of(ing.address, root_policy, "busy", ["0", "1"], expect=60)
    assert sorted(json.loads(e.body_as_str())["n"] for v in got.values() for e in v) == list(range(60))


async def test_a_hub_sinks_connection_string_is_never_returned(service_process, root_policy, tmp_path):
    """The key in another namespace's connection string is a secret: Get and List show ***."""
    from headwater.v1 import sink_pb2 as spb

    ing, _, sink = start_stack(service_process, tmp_path)
    await create_hub(ing.address, root_policy, "other", partitions=1)
    conn = str(conn_for(ing.address, root_policy))
    async with aio_channel(conn_for(sink.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        created = await create(stub, "far", kind="hub", hub="other", connection_string=conn)
        got = (await stub.GetSink(spb.GetSinkRequest(name="sinks/far"))).sink
        listed = (await stub.ListSinks(spb.ListSinksRequest())).sinks
        await write(stub, "far", rows(0, 2), ckpt=1)  # the stored (unmasked) string is what it uses
    for shown in (created, got, *[s for s in listed if s.name == "sinks/far"]):
        assert shown.config["connection_string"] == "***", shown
        assert root_policy.key not in str(shown)
    assert len((await events_of(ing.address, root_policy, "other", ["0"], expect=2))["0"]) == 2
