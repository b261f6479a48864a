"""GetMetadataPropertyValue in a running job, every service a real process: the runtime
reads the events' properties (only for a query that calls the function) and the engine
hands them to the function (docs/query-engine.md)."""

from __future__ import annotations

import orjson

from tests.integration.processing_support import Pipeline


def test_user_properties_and_event_hub_metadata_in_a_job(service_process, root_policy, tmp_path):
    from headwater.v1 import event_pb2
    from headwater.v1 import ingestion_pb2 as ipb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("meta", partitions=2)
    pipe.create_sink("mem", "memory")
    pipe.create_job("meta", "SELECT i.v, GetMetadataPropertyValue(i, '[User].[color]') AS c, "
                    "GetMetadataPropertyValue(i, '[EventHub].[SequenceNumber]') AS s, "
                    "GetMetadataPropertyValue(i, '[EventHub].[Offset]') AS o, "
                    "GetMetadataPropertyValue(i, '[EventHub].[PartitionKey]') AS k, "
                    "GetMetadataPropertyValue(i, '[EventHub].[PartitionId]') AS p, "
                    "GetMetadataPropertyValue(i, 'User') AS u "
                    "INTO [Mem] FROM [In] i", {"In": "meta"}, {"Mem": "mem"})
    pipe.start_job("meta")
    published = {}
    for v, color, key in [(1, "red", "k1"), (2, "blue", "k1"), (3, None, "k2")]:
        props = {"color": color} if color else {}
        resp = pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
            hub="hubs/meta", partition_key=key,
            events=[event_pb2.EventData(body=orjson.dumps({"v": v}), content_type="application/json",
                                        properties=props, partition_key=key)]))
        published[v] = (resp.partition_id, resp.first_sequence_number)
    rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda r: len(r) >= 3)
    got = {r["v"]: r for r in rows}
    assert sorted(got) == [1, 2, 3], rows
    for v, color, key in [(1, "red", "k1"), (2, "blue", "k1"), (3, None, "k2")]:
        pid, seq = published[v]
        r = got[v]
        assert (r["c"], r["s"], r["k"], int(r["p"])) == (color, seq, key, int(pid)), r
        assert r["o"] is not None and int(r["o"]) >= 0, r
    assert got[1]["u"] in ({"color": "red"}, '{"color":"red"}', '{"color": "red"}'), got[1]
    offsets = {}
    for v in (1, 2, 3):
        offsets.setdefault(published[v][0], []).append(int(got[v]["o"]))
    assert all(o == sorted(set(o)) for o in offsets.values()), offsets  # distinct, in publish order
