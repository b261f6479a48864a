"""The sink service as a real process: sinks, WriteRows, ReadTable, SubscribeRows, restarts."""

from __future__ import annotations

import asyncio
import uuid

import pyarrow as pa
import pytest
from google.protobuf import struct_pb2

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.sink_settings import set_settings
from headwater.sinks import batch_from_proto, batch_to_proto
from headwater.v1 import event_pb2, sink_pb2_grpc
from headwater.v1 import sink_pb2 as spb
from tests.conftest import conn_for

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


def start_sink(service_process, tmp_path):
    # Files and Delta sinks of these tests write under tmp_path (allowed_paths; default the data dir).
    return service_process("sink", "--data-dir", str(tmp_path / "sinkdata"),
                           env={"HEADWATER_SINK_DASHBOARD_PORT": "-1", "HEADWATER_SINK_ALLOWED_PATHS": str(tmp_path)})


async def rpc(coro):
    try:
        return await coro
    except Exception as exc:  # grpc.aio.AioRpcError
        if hasattr(exc, "code"):
            raise await HeadwaterError.from_aio_call(exc) from None
        raise


def cfg(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def create(stub, sid, kind="memory", mode=spb.OUTPUT_MODE_APPEND, keys=(), policy=spb.ERROR_POLICY_RETRY,
                 **config):
    # The built-in kinds' settings go typed (Sink.memory, .postgres, ...) when they fit, else as a Struct.
    sink = set_settings(spb.Sink(output_mode=mode, key_columns=list(keys), error_policy=policy), kind, config)
    return (await rpc(stub.CreateSink(spb.CreateSinkRequest(
        sink_id=sid, request_id=uuid.uuid4().hex, sink=sink)))).sink


async def write(stub, sid, table, ckpt=0, batch=0, writer="jobs/j/outputs/o", commit=True, fmt=None):
    return await rpc(stub.WriteRows(spb.WriteRowsRequest(
        sink=f"sinks/{sid}", batch=batch_to_proto(table, fmt or 0), writer=writer, checkpoint_id=ckpt,
        batch_id=batch, commit=commit)))


async def read_all(stub, sid, **kw):
    rows, token = [], ""
    while True:
        resp = await rpc(stub.ReadTable(spb.ReadTableRequest(name=f"sinks/{sid}", page_token=token, **kw)))
        rows += batch_from_proto(resp.batch).to_pylist()
        token = resp.next_page_token
        if not token:
            return rows


async def test_memory_table_write_read_filter_order_paginate(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        sink = await create(stub, "trips")
        assert sink.name == "sinks/trips" and sink.delivery_guarantee == spb.DELIVERY_GUARANTEE_EXACTLY_ONCE
        cities = ["Oslo", "Lima", "Pune", "Kyiv"] * 25
        await write(stub, "trips", pa.table({"city": cities, "n": list(range(100))}), ckpt=1)
        # JSON lines are accepted too, for clients without Arrow.
        jl = event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_JSON_LINES,
                                   data=b'{"city": "Rome", "n": 100}\n{"city": "Oslo", "n": 101}\n')
        resp = await rpc(stub.WriteRows(spb.WriteRowsRequest(sink="sinks/trips", batch=jl)))
        assert resp.rows_written == 2
        rows = await read_all(stub, "trips", page_size=7)
        assert len(rows) == 102 and rows[0] == {"city": "Oslo", "n": 0} and rows[-1]["n"] == 101
        oslo = await read_all(stub, "trips", filter="city = 'Oslo' AND n > 50", order_by="n DESC", limit=3,
                              page_size=2)
        assert [r["n"] for r in oslo] == [101, 96, 92]
        with pytest.raises(HeadwaterError) as info:
            await read_all(stub, "trips", filter="no_such_column > 3")
        assert info.value.reason is Reason.INVALID_ARGUMENT and "no_such_column" in info.value.message


async def test_replayed_write_is_acknowledged_as_duplicate(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "t")
        batch = pa.table({"v": [1, 2, 3]})
        first = await write(stub, "t", batch, ckpt=4, batch=0, commit=False)
        second = await write(stub, "t", batch, ckpt=4, batch=1, commit=True)
        again = await write(stub, "t", batch, ckpt=4, batch=0)
        assert (first.rows_written, second.rows_written, again.duplicate, again.rows_written) == (3, 3, True, 0)
        assert len(await read_all(stub, "t")) == 6
        got = (await rpc(stub.GetSink(spb.GetSinkRequest(name="sinks/t")))).sink
        assert got.stats.rows_written == 6 and got.stats.duplicate_writes == 1


async def test_committed_rows_survive_kill_9_and_replays_do_not_duplicate(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "counts", mode=spb.OUTPUT_MODE_UPDATE, keys=["k"])
        await write(stub, "counts", pa.table({"k": ["a", "b"], "n": [1, 1]}), ckpt=1, commit=True)
        await write(stub, "counts", pa.table({"k": ["a"], "n": [2]}), ckpt=2, commit=True)
    proc.kill()
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        assert sorted((r["k"], r["n"]) for r in await read_all(stub, "counts")) == [("a", 2), ("b", 1)]
        replay = await write(stub, "counts", pa.table({"k": ["a"], "n": [2]}), ckpt=2, commit=True)
        assert replay.duplicate
        listed = await rpc(stub.ListSinks(spb.ListSinksRequest()))
        assert [s.name for s in listed.sinks] == ["sinks/counts"]


async def test_subscribe_streams_snapshot_then_live_writes(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "live", mode=spb.OUTPUT_MODE_COMPLETE)
        await write(stub, "live", pa.table({"k": ["old"], "n": [0]}), ckpt=1)
        stream = stub.SubscribeRows(spb.SubscribeRowsRequest(name="sinks/live", include_snapshot=True))
        snap = await asyncio.wait_for(stream.read(), 10)
        assert snap.snapshot and snap.replace and batch_from_proto(snap.batch).to_pylist() == [{"k": "old", "n": 0}]
        await write(stub, "live", pa.table({"k": ["a", "b"], "n": [1, 2]}), ckpt=2, batch=0, commit=False)
        await write(stub, "live", pa.table({"k": ["c", "old"], "n": [3, 4]}), ckpt=2, batch=1)
        one = await asyncio.wait_for(stream.read(), 10)
        two = await asyncio.wait_for(stream.read(), 10)
        # Complete mode keeps every group: the rows replace the rows with the same key (k, the default).
        assert (one.replace, one.checkpoint_id, one.output_mode, list(one.key_columns)) == (
            False, 2, spb.OUTPUT_MODE_COMPLETE, ["k"])
        assert not two.replace and batch_from_proto(two.batch).to_pylist() == [{"k": "c", "n": 3}, {"k": "old", "n": 4}]
        stream.cancel()
        assert sorted((r["k"], r["n"]) for r in await read_all(stub, "live")) == [
            ("a", 1), ("b", 2), ("c", 3), ("old", 4)]


async def test_errors_name_what_is_wrong(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        with pytest.raises(HeadwaterError, match="unknown sink kind 'nosuch'.*memory") as info:
            await create(stub, "x", kind="nosuch")
        assert info.value.reason is Reason.INVALID_ARGUMENT
        with pytest.raises(HeadwaterError, match="setting 'table' is required"):
            await create(stub, "x", kind="postgres", dsn=PG_DSN)
        with pytest.raises(HeadwaterError, match="does not support output mode update"):
            await create(stub, "x", kind="files", mode=spb.OUTPUT_MODE_UPDATE, path=str(tmp_path))
        with pytest.raises(HeadwaterError) as info:
            await write(stub, "missing", pa.table({"v": [1]}))
        assert info.value.reason is Reason.RESOURCE_NOT_FOUND
        await create(stub, "x")
        with pytest.raises(HeadwaterError) as info:
            await create(stub, "x")
        assert info.value.reason is Reason.RESOURCE_ALREADY_EXISTS
        bad = event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC, data=b"not arrow")
        with pytest.raises(HeadwaterError, match="not an Arrow IPC stream"):
            await rpc(stub.WriteRows(spb.WriteRowsRequest(sink="sinks/x", batch=bad)))
        with pytest.raises(HeadwaterError, match="'a b' is not a valid sink name"):
            await rpc(stub.GetSink(spb.GetSinkRequest(name="sinks/a b")))
        await rpc(stub.DeleteSink(spb.DeleteSinkRequest(name="sinks/x")))
        with pytest.raises(HeadwaterError) as info:
            await read_all(stub, "x")
        assert info.value.reason is Reason.RESOURCE_NOT_FOUND
        await rpc(stub.DeleteSink(spb.DeleteSinkRequest(name="sinks/x", allow_missing=True)))
        kinds = await rpc(stub.ListSinkKinds(spb.ListSinkKindsRequest()))
        by_name = {k.name: k for k in kinds.kinds}
        assert {"memory", "dashboard", "postgres", "files", "delta", "webhook"} <= set(by_name)
        assert by_name["webhook"].delivery_guarantee == spb.DELIVERY_GUARANTEE_AT_LEAST_ONCE
        assert by_name["postgres"].plugin == "headwater.plugins.sinks"


async def test_typed_settings_keep_their_types_and_name_the_kind(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        # Kind left empty: the typed field names it; max_rows is an int64 all the way to the plugin.
        created = (await rpc(stub.CreateSink(spb.CreateSinkRequest(
            sink_id="typed", sink=spb.Sink(memory=spb.MemorySettings(max_rows=3, title="T")))))).sink
        assert created.kind == "memory" and created.WhichOneof("settings") == "memory"
        assert created.memory.max_rows == 3 and created.memory.title == "T"
        assert dict(created.config)["max_rows"] == 3  # responses carry the Struct too
        await write(stub, "typed", pa.table({"v": list(range(10))}), ckpt=1)
        assert [r["v"] for r in await read_all(stub, "typed")] == [7, 8, 9]
        # An unset optional takes the plugin's default (dashboard: 10000), not the type's zero.
        dash = (await rpc(stub.CreateSink(spb.CreateSinkRequest(
            sink_id="dash", sink=spb.Sink(kind="dashboard", dashboard=spb.MemorySettings(key="k")))))).sink
        assert dash.dashboard.max_rows == 10_000 and dash.dashboard.key == "k"
        fs = (await rpc(stub.CreateSink(spb.CreateSinkRequest(sink_id="fs", sink=spb.Sink(
            files=spb.FilesSettings(path=str(tmp_path / "out"), roll_size_mb=0.5)))))).sink
        assert fs.files.format == "jsonl" and fs.files.roll_size_mb == 0.5
        with pytest.raises(HeadwaterError, match="sink.postgres holds the settings of a 'postgres' sink, "
                                                 "but kind is 'memory'") as info:
            await rpc(stub.CreateSink(spb.CreateSinkRequest(sink_id="bad", sink=spb.Sink(
                kind="memory", postgres=spb.PostgresSettings(dsn=PG_DSN, table="t")))))
        assert info.value.reason is Reason.INVALID_ARGUMENT and info.value.metadata["field"] == "sink.postgres"
        with pytest.raises(HeadwaterError, match="set sink.memory or sink.config, not both"):
            await rpc(stub.CreateSink(spb.CreateSinkRequest(sink_id="bad", sink=spb.Sink(
                memory=spb.MemorySettings(max_rows=1), config=cfg(max_rows=2)))))
        # The typed settings are validated by the kind's plugin like a Struct's.
        with pytest.raises(HeadwaterError, match="setting 'table' is required"):
            await rpc(stub.CreateSink(spb.CreateSinkRequest(sink_id="bad", sink=spb.Sink(
                postgres=spb.PostgresSettings(dsn=PG_DSN)))))
        # A Struct is still accepted for a built-in kind, and is the only form of a third-party kind's.
        old = (await rpc(stub.CreateSink(spb.CreateSinkRequest(sink_id="old", sink=spb.Sink(
            kind="memory", config=cfg(max_rows=2)))))).sink
        assert old.memory.max_rows == 2


async def test_list_sinks_paginates(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        for i in range(5):
            await create(stub, f"s{i}")
        names, token = [], ""
        while True:
            page = await rpc(stub.ListSinks(spb.ListSinksRequest(page_size=2, page_token=token)))
            names += [s.name for s in page.sinks]
            token = page.next_page_token
            if not token:
                break
        assert names == [f"sinks/s{i}" for i in range(5)]


async def test_postgres_upsert_error_policies_through_the_service(service_process, root_policy, tmp_path):
    psycopg = pytest.importorskip("psycopg")
    table = f"t_{uuid.uuid4().hex[:12]}"
    proc = start_sink(service_process, tmp_path)
    try:
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "strict", kind="postgres", dsn=PG_DSN, table=table, id_field="id")
            await create(stub, "lenient", kind="postgres", dsn=PG_DSN, table=table, id_field="id",
                         policy=spb.ERROR_POLICY_DROP)
            rows = pa.table({"id": ["1", None, "3"], "v": [1, 2, 3]})
            with pytest.raises(HeadwaterError) as info:
                await write(stub, "strict", rows)
            msg = info.value.message
            assert "strict" in msg and "row 1" in msg and "document id field 'id' is missing" in msg
            assert not info.value.is_transient
            resp = await write(stub, "lenient", rows, ckpt=1)
            assert (resp.rows_written, resp.rows_dropped) == (2, 1) and "row 1" in resp.drop_reason
            assert list(resp.dropped_rows) == [1]  # which rows: the writer dead-letters them
            await write(stub, "lenient", pa.table({"id": ["3"], "v": [30]}), ckpt=2)
            with psycopg.connect(PG_DSN) as conn:
                got = conn.execute(f'SELECT id, v FROM "{table}" ORDER BY id').fetchall()
            assert got == [("1", 1), ("3", 30)]
            sink = (await rpc(stub.GetSink(spb.GetSinkRequest(name="sinks/lenient")))).sink
            assert sink.stats.rows_dropped == 1
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


async def test_metrics_per_output_on_the_metrics_endpoint(root_policy, tmp_path):
    import urllib.request

    from headwater.config import load_config
    from headwater.server import serve_in_process
    from headwater.services.sink.config import SinkConfig
    from headwater.services.sink.server import SinkService

    cfg = load_config(SinkConfig, "sink", env={}, grpc_port=0, metrics_port=0, dashboard_port=-1,
                      data_dir=str(tmp_path / "d"))
    async with serve_in_process(SinkService(cfg)) as running:
        async with aio_channel(conn_for(running.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "metered", mode=spb.OUTPUT_MODE_UPDATE, keys=["k"], policy=spb.ERROR_POLICY_DROP)
            await write(stub, "metered", pa.table({"k": ["a", None, "b"][:2] + ["b"], "n": [1, 2, 3]}), ckpt=1)
            await write(stub, "metered", pa.table({"n": [4]}), ckpt=2)  # no key column: dropped
            await write(stub, "metered", pa.table({"k": ["a"], "n": [5]}), ckpt=2)  # replay: duplicate
        url = f"http://127.0.0.1:{running.metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    labels = '{kind="memory",sink="metered"}'
    assert f"headwater_sink_rows_written_total{labels} 3.0" in text
    assert f"headwater_sink_rows_dropped_total{labels} 1.0" in text
    assert f"headwater_sink_duplicate_writes_total{labels} 1.0" in text
    assert f"headwater_sink_write_latency_seconds_count{labels}" in text
    assert f"headwater_sink_bytes_written_total{labels}" in text


async def test_sigterm_flushes_uncommitted_rows(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "t")
        await write(stub, "t", pa.table({"v": [1, 2]}), ckpt=1, commit=False)
    assert proc.terminate() == 0
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        assert await read_all(stub, "t") == [{"v": 1}, {"v": 2}]


async def test_rights_send_listen_manage(service_process, root_policy, tmp_path):
    from headwater.auth import Policy, PolicyStore, Right, new_key

    proc = start_sink(service_process, tmp_path)
    store = PolicyStore(tmp_path / "hwhome" / "auth.json").ensure()  # the isolated HEADWATER_HOME
    store.put(Policy("writer", new_key(), frozenset({Right.SEND})))
    store.put(Policy("reader", new_key(), frozenset({Right.LISTEN})))
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        await create(sink_pb2_grpc.SinkServiceStub(ch), "t")
    async with aio_channel(conn_for(proc.address, store.get("writer"))) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        assert (await write(stub, "t", pa.table({"v": [1]}))).rows_written == 1
        with pytest.raises(HeadwaterError) as info:
            await read_all(stub, "t")
        assert info.value.reason is Reason.PERMISSION_DENIED
        with pytest.raises(HeadwaterError) as info:
            await create(stub, "u")
        assert info.value.reason is Reason.PERMISSION_DENIED
    async with aio_channel(conn_for(proc.address, store.get("reader"))) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        assert await read_all(stub, "t") == [{"v": 1}]
        with pytest.raises(HeadwaterError) as info:
            await write(stub, "t", pa.table({"v": [2]}))
        assert info.value.reason is Reason.PERMISSION_DENIED


async def test_an_empty_trigger_changes_nothing_in_a_complete_table(service_process, root_policy, tmp_path):
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "c", mode=spb.OUTPUT_MODE_COMPLETE)
        await write(stub, "c", pa.table({"k": ["a"], "n": [1]}), ckpt=1)
        await write(stub, "c", pa.table({"k": pa.array([], pa.string()), "n": pa.array([], pa.int64())}), ckpt=2)
        assert await read_all(stub, "c") == [{"k": "a", "n": 1}]


async def test_complete_mode_book_example_keeps_every_window(service_process, root_policy, tmp_path):
    """The book's TripsTumblingQuery (window, startLocation, count) in a memory sink and a
    PostgreSQL table in complete mode: 150 trips over 3 one-minute windows, each trigger
    writing only the window it closed (as a Stream Analytics job emits), leave all 15
    groups summing to 150, across a restart of the service."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cities = ["Delhi", "Mumbai", "Pune", "Chennai", "Kolkata"]
    table = f"complete_book_{uuid.uuid4().hex[:8]}"
    proc = start_sink(service_process, tmp_path)
    try:
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "TripsTumblingQuery", mode=spb.OUTPUT_MODE_COMPLETE)
            await create(stub, "trips-pg", kind="postgres", mode=spb.OUTPUT_MODE_COMPLETE, dsn=PG_DSN, table=table)
            for m in range(3):
                end = t0 + timedelta(minutes=m + 1)
                rows = pa.table({"window_end": [end] * 5, "startLocation": cities, "count": [8, 9, 10, 11, 12]})
                for sid in ("TripsTumblingQuery", "trips-pg"):
                    await write(stub, sid, rows, ckpt=m + 1)
            # A late correction of the first window replaces that group only.
            fix = pa.table({"window_end": [t0 + timedelta(minutes=1)], "startLocation": ["Delhi"], "count": [8]})
            await write(stub, "TripsTumblingQuery", fix, ckpt=4)
        assert proc.terminate() == 0
        proc = start_sink(service_process, tmp_path)
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            rows = await read_all(stub, "TripsTumblingQuery")
            assert len(rows) == 15 and sum(r["count"] for r in rows) == 150
        with psycopg.connect(PG_DSN) as conn:
            got = conn.execute(f'SELECT count(*), sum("count") FROM {table}').fetchone()
        assert got == (15, 150)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_sigterm_ends_live_subscriptions_at_once(service_process, root_policy):
    """A SIGTERM drain does not wait the grace period for open SubscribeRows streams."""
    import threading
    import time

    import grpc

    from headwater.channel import sync_channel
    from headwater.v1 import sink_pb2, sink_pb2_grpc
    from tests.conftest import conn_for

    proc = service_process("sink")
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        stub.CreateSink(sink_pb2.CreateSinkRequest(sink_id="live", sink=sink_pb2.Sink(kind="memory")), timeout=10)
        ended, subscribed = threading.Event(), threading.Event()

        def listen():
            try:  # the snapshot comes first, once the subscription is registered
                for _ in stub.SubscribeRows(sink_pb2.SubscribeRowsRequest(name="sinks/live", include_snapshot=True)):
                    subscribed.set()
            except grpc.RpcError:
                pass
            ended.set()

        threading.Thread(target=listen, daemon=True).start()
        assert subscribed.wait(10), "no snapshot: the subscription did not open"
        t0 = time.monotonic()
        assert proc.terminate(timeout=30) == 0
        assert time.monotonic() - t0 < 5, "shutdown waited for the open subscription"
        assert ended.wait(5)
