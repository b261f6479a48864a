"""``headwater sink ...`` and ``headwater table show`` against a real sink process."""

from __future__ import annotations

import json

import pyarrow as pa

from headwater.channel import sync_channel
from headwater.sinks import batch_to_proto
from headwater.v1 import sink_pb2 as spb
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.integration.test_sink_service import start_sink
from tests.zygote import run_headwater


def cli(address, *args, check=True):
    proc = run_headwater([*args, "--sink", address], timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_sink_create_list_show_delete_and_table_show(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    out = cli(proc.address, "sink", "create", "Trips", "--kind", "memory", "--mode", "update", "--key", "city",
              "--set", "max_rows=100").stdout
    assert "created sinks/Trips  kind=memory  mode=update" in out and "key columns: city" in out
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        sink_pb2_grpc.SinkServiceStub(ch).WriteRows(spb.WriteRowsRequest(
            sink="sinks/Trips", batch=batch_to_proto(pa.table({"city": ["Oslo", "Lima", "Pune"],
                                                               "n": [3, 1, 2]}))), timeout=10)
    shown = cli(proc.address, "table", "show", "Trips", "--order-by", "n DESC", "--limit", "2").stdout
    lines = shown.splitlines()
    assert lines[1].split() == ["|", "city", "|", "n", "|"]
    assert lines[3].split() == ["|", "Oslo", "|", "3", "|"] and lines[4].split() == ["|", "Pune", "|", "2", "|"]
    assert "(2 of 3 rows)" in shown
    rows = [json.loads(x) for x in cli(proc.address, "table", "show", "Trips", "--filter", "n < 3",
                                       "--format", "json").stdout.splitlines()]
    assert rows == [{"city": "Lima", "n": 1}, {"city": "Pune", "n": 2}]
    listed = json.loads(cli(proc.address, "sink", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["sinks/Trips"] and listed[0]["stats"]["rows_written"] == "3"
    assert "rows written 3" in cli(proc.address, "sink", "show", "Trips").stdout
    assert "postgres" in cli(proc.address, "sink", "kinds").stdout
    cli(proc.address, "sink", "delete", "Trips")
    missing = cli(proc.address, "sink", "show", "Trips", check=False)
    assert missing.returncode == 1 and "RESOURCE_NOT_FOUND: sink 'Trips' does not exist" in missing.stderr
    bad = cli(proc.address, "sink", "create", "x", "--kind", "postgres", "--set", "dsn=host=nowhere", check=False)
    assert bad.returncode == 1 and "setting 'table' is required" in bad.stderr
