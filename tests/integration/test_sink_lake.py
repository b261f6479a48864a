"""Delta and files outputs through a real sink process, with kill -9 and a replaying writer:
every committed row once, schema evolution on Delta, no half-visible file."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from headwater.channel import aio_channel
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.integration.test_sink_service import create, start_sink, write


def trips(start: int, n: int, extra: bool = False) -> pa.Table:
    cols = {"tripId": [f"t{i}" for i in range(start, start + n)], "fare": list(range(start, start + n))}
    if extra:
        cols["tip"] = [0.5] * n
    return pa.table(cols)


async def replaying_writer(stub, sid, first: int, last: int, extra_from: int = 99):
    """Checkpoints first..last, two batches each; returns how many writes were duplicates."""
    dups = 0
    for ckpt in range(first, last + 1):
        for b in range(2):
            start = (ckpt - 1) * 20 + b * 10
            resp = await write(stub, sid, trips(start, 10, extra=ckpt >= extra_from), ckpt=ckpt, batch=b,
                               commit=b == 1)
            dups += resp.duplicate
    return dups


async def test_delta_exactly_once_and_merge_schema_across_kill_9(service_process, root_policy, tmp_path):
    path = tmp_path / "lake" / "trips"
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "delta", kind="delta", path=str(path), commit_interval_s=60)
        await replaying_writer(stub, "delta", 1, 3)
        # checkpoint 4 is in flight (first batch written, not committed) when the service dies
        await write(stub, "delta", trips(60, 10), ckpt=4, batch=0, commit=False)
    proc.kill()
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        # the writer restarts from its last checkpoint (3) and replays, then goes on with a new field
        dups = await replaying_writer(stub, "delta", 1, 5, extra_from=5)
        assert dups == 6  # checkpoints 1..3, two batches each
    table = DeltaTable(str(path)).to_pyarrow_table()
    fares = sorted(table.column("fare").to_pylist())
    assert fares == list(range(100))  # every row once
    assert "tip" in table.column_names
    assert sorted(t for t in table.column("tip").to_pylist() if t is not None) == [0.5] * 20


async def test_files_parquet_exactly_once_across_kill_9(service_process, root_policy, tmp_path):
    root = tmp_path / "files"
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "pq", kind="files", path=str(root), format="parquet", path_pattern="fare={fare}",
                     roll_size_mb=64)
        await replaying_writer(stub, "pq", 1, 2)
        await write(stub, "pq", trips(40, 10), ckpt=3, batch=0, commit=False)
        hidden = [p for p in root.rglob("*") if p.name.endswith(".inprogress")]
        assert hidden  # checkpoint 3 is being written, invisible
    proc.kill()
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        assert await replaying_writer(stub, "pq", 1, 4) == 4
    files = [p for p in root.rglob("*.parquet")]
    assert not [p for p in root.rglob("*") if p.name.endswith(".inprogress")]
    fares = sorted(v for p in files for v in pq.read_table(p).column("fare").to_pylist())
    assert fares == list(range(80))
    manifest = json.loads((root / "_headwater" / "pq.json").read_text())
    assert manifest["last"]["jobs/j/outputs/o"] == [4, 1]


async def test_postgres_exactly_once_across_kill_9(service_process, root_policy, tmp_path):
    import uuid

    import psycopg

    from tests.integration.test_sink_service import PG_DSN

    table = f"t_{uuid.uuid4().hex[:12]}"
    try:
        proc = start_sink(service_process, tmp_path)
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "pg", kind="postgres", dsn=PG_DSN, table=table)
            await replaying_writer(stub, "pg", 1, 3)
        proc.kill()
        proc = start_sink(service_process, tmp_path)
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            # the writer did not see the acknowledgement of checkpoint 3 and replays from 2
            assert await replaying_writer(stub, "pg", 2, 5, extra_from=5) == 4
        with psycopg.connect(PG_DSN) as conn:
            fares = [r[0] for r in conn.execute(f'SELECT fare FROM "{table}" ORDER BY fare').fetchall()]
            tips = conn.execute(f'SELECT count(tip) FROM "{table}"').fetchone()[0]
        assert fares == list(range(100)) and tips == 20
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.execute("DELETE FROM headwater_sink_checkpoints WHERE sink LIKE %s", (f"%:public.{table}",))
