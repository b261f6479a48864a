"""``headwater perf sink``: rows per second into one output, through the sink service.

Starts a sink service process on a free port (temporary data folder and
HEADWATER_HOME) unless ``--sink`` names a running one, creates a sink of the
chosen output, and writes ``--rows`` generated trip rows as ``WriteRows`` calls
of ``--batch`` rows (Arrow IPC, encoded before the clock starts), each with
the writer's checkpoint id, committing (flush) every ``--commit-every``
batches. ``--direct`` measures the plugin alone, in this process, without gRPC.

Outputs: ``memory``, ``postgres`` (COPY inserts), ``postgres-upsert``
(compatibility level 1.2, half of the rows update existing ids), ``parquet`` and
``jsonl`` (files sink), ``delta``. With ``--json`` the last line is one JSON
object: ``events_per_s`` (rows/s), ``mb_per_s`` (Arrow bytes), ``p50_ms`` /
``p99_ms`` (per batch), ``peak_rss_mb`` (the sink service's peak RSS, or this
process's with ``--direct``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["OUTPUTS", "add_perf_commands", "run"]

OUTPUTS = ("memory", "postgres", "postgres-upsert", "parquet", "delta", "jsonl")
DEFAULT_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
CITIES = ["San Francisco", "San José", "Los Ángeles", "Oakland", "Sacramento", "Fresno", "Berkeley", "Palo Alto"]


def _batches(rows: int, batch: int, upsert: bool) -> list[Any]:
    import pyarrow as pa

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    distinct = max(1, rows // 2) if upsert else rows
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        idx = range(start, start + n)
        out.append(pa.table({
            "tripId": [f"trip-{i % distinct:09d}" for i in idx],
            "createdAt": pa.array([t0 + timedelta(milliseconds=i) for i in idx], pa.timestamp("us", tz="UTC")),
            "startLocation": [CITIES[i % 8] for i in idx],
            "endLocation": [CITIES[(i * 7) % 8] for i in idx],
            "distance": [10 + i % 990 for i in idx],
            "fare": [100.0 + (i % 900) for i in idx],
        }))
    return out


def _sink_def(output: str, tmp: str, dsn: str, table: str) -> tuple[str, dict[str, Any], str, list[str]]:
    """(kind, config, output mode, key columns)."""
    if output == "memory":
        return "memory", {}, "append", []
    if output == "postgres":
        return "postgres", {"dsn": dsn, "table": table}, "append", []
    if output == "postgres-upsert":
        return "postgres", {"dsn": dsn, "table": table, "id_field": "tripId"}, "update", ["tripId"]
    if output in ("parquet", "jsonl"):
        return "files", {"path": os.path.join(tmp, "files"), "format": output}, "append", []
    return "delta", {"path": os.path.join(tmp, "delta")}, "append", []


@contextlib.contextmanager
def _service(args: argparse.Namespace, home: str) -> Iterator[tuple[str, Any]]:
    """(address, process or None)."""
    if args.sink:
        yield args.sink, None
        return
    from headwater.procs import ServiceProcess, headwater_cmd

    proc = ServiceProcess("sink", [*headwater_cmd(), "serve", "sink", "--port", "0", "--metrics-port", "-1",
                                   "--data-dir", os.path.join(home, "sink")],
                          env={"HEADWATER_HOME": home, "HEADWATER_SINK_DASHBOARD_PORT": "-1",
                               "HEADWATER_SINK_ALLOWED_PATHS": home,  # the files/delta outputs' folder
                               "HEADWATER_LOG_LEVEL": "WARNING"})
    proc.start()
    try:
        yield proc.address, proc
    finally:
        proc.terminate()


def _peak_rss_mb(pid: int | None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stats(rows: int, nbytes: int, elapsed: float, lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {"events_per_s": rows / elapsed, "mb_per_s": nbytes / elapsed / 1e6,
            "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "seconds": elapsed}


def _direct(args: argparse.Namespace, batches: list[Any], kind_name: str, config: dict[str, Any], mode: str,
            keys: list[str], tmp: str) -> dict[str, float]:
    from headwater.errors import HeadwaterError, Reason
    from headwater.pluginmanager import get_plugin_manager
    from headwater.sinks import Checkpoint, OutputMode, SinkSpec

    kind = get_plugin_manager().collect().sinks.get(kind_name)
    if kind is None:
        raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no sink kind {kind_name!r} is installed")
    spec = SinkSpec("perf", config, OutputMode(mode), tuple(keys), __import__("pathlib").Path(tmp) / "state")
    spec = SinkSpec("perf", kind.validate(config, spec), spec.output_mode, spec.key_columns, spec.data_dir)
    sink = kind.create(spec)
    sink.open()
    lat = []
    t_start = time.perf_counter()
    for i, b in enumerate(batches):
        t0 = time.perf_counter()
        sink.write_batch(b, Checkpoint(1 + i // args.commit_every, i % args.commit_every, "perf"))
        if (i + 1) % args.commit_every == 0 or i == len(batches) - 1:
            sink.flush()
        lat.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - t_start
    sink.close()
    return _stats(sum(b.num_rows for b in batches), sum(b.nbytes for b in batches), elapsed, lat)


def _via_service(args: argparse.Namespace, batches: list[Any], kind_name: str, config: dict[str, Any], mode: str,
                 keys: list[str], home: str) -> tuple[dict[str, float], float]:
    import grpc

    from headwater.auth import ConnectionString, PolicyStore
    from headwater.channel import sync_channel
    from headwater.errors import HeadwaterError
    from headwater.sink_settings import set_settings
    from headwater.sinks import batch_to_proto
    from headwater.v1 import sink_pb2 as spb
    from headwater.v1 import sink_pb2_grpc

    encoded = [batch_to_proto(b) for b in batches]
    with _service(args, home) as (address, proc):
        if args.connection_string:
            conn = ConnectionString.parse(args.connection_string)
        else:
            from headwater.config import local_root_policy

            # Our own service's key, or the running services' (never a new one).
            root = PolicyStore(os.path.join(home, "auth.json")).ensure().root() if not args.sink \
                else local_root_policy()
            conn = ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=root.name,
                                    shared_access_key=root.key)
        name = f"perf-{uuid.uuid4().hex[:8]}"
        with sync_channel(conn) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            try:
                sink = spb.Sink(output_mode=f"OUTPUT_MODE_{mode.upper()}", key_columns=keys)
                stub.CreateSink(spb.CreateSinkRequest(sink_id=name, sink=set_settings(sink, kind_name, config)),
                                timeout=30)
                lat = []
                t_start = time.perf_counter()
                for i, rb in enumerate(encoded):
                    t0 = time.perf_counter()
                    stub.WriteRows(spb.WriteRowsRequest(
                        sink=f"sinks/{name}", batch=rb, writer="perf", checkpoint_id=1 + i // args.commit_every,
                        batch_id=i % args.commit_every,
                        commit=(i + 1) % args.commit_every == 0 or i == len(encoded) - 1), timeout=60)
                    lat.append(time.perf_counter() - t0)
                elapsed = time.perf_counter() - t_start
                stub.DeleteSink(spb.DeleteSinkRequest(name=f"sinks/{name}"), timeout=30)
            except grpc.RpcError as exc:
                raise HeadwaterError.from_rpc_error(exc) from None
        peak = _peak_rss_mb(proc.pid if proc is not None else None) if proc is not None else 0.0
    return _stats(sum(b.num_rows for b in batches), sum(len(e.data) for e in encoded), elapsed, lat), peak


def run(args: argparse.Namespace) -> int:
    if args.rows <= 0 or args.batch <= 0 or args.commit_every <= 0:
        print("headwater perf sink: --rows, --batch and --commit-every must be > 0")
        return 2
    tmp = tempfile.mkdtemp(prefix="hw-perf-sink-")
    table = f"perf_{uuid.uuid4().hex[:10]}"
    kind, config, mode, keys = _sink_def(args.output, tmp, args.dsn, table)
    batches = _batches(args.rows, args.batch, args.output == "postgres-upsert")
    try:
        if args.direct:
            stats = _direct(args, batches, kind, config, mode, keys, tmp)
            peak = _peak_rss_mb(None)
        else:
            stats, peak = _via_service(args, batches, kind, config, mode, keys, tmp)
    finally:
        if kind == "postgres":
            with contextlib.suppress(Exception):
                import psycopg

                with psycopg.connect(args.dsn, autocommit=True) as conn:
                    conn.execute(f'DROP TABLE IF EXISTS public."{table}"')
                    conn.execute("DELETE FROM public.headwater_sink_checkpoints WHERE sink LIKE %s",
                                 (f"%:public.{table}",))
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"output": args.output, "rows": args.rows, "batch": args.batch,
              "path": "plugin (direct)" if args.direct else "gRPC WriteRows -> sink service process",
              **{k: round(v, 3) for k, v in stats.items()}, "peak_rss_mb": round(peak, 1)}
    print(f"perf sink --output {args.output}: {args.rows} rows in batches of {args.batch} "
          f"({result['path']})")
    print(f"  {stats['events_per_s']:,.0f} rows/s, {stats['mb_per_s']:.1f} MB/s (Arrow), "
          f"per batch p50 {stats['p50_ms']:.2f} ms p99 {stats['p99_ms']:.2f} ms, peak RSS {peak:.0f} MB")
    if args.json:
        print(json.dumps(result))
    return 0


def add_perf_commands(perf_sub: argparse._SubParsersAction[Any]) -> None:
    p = perf_sub.add_parser("sink", help="rows/s into one output (memory, PostgreSQL, files, Delta)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", choices=OUTPUTS, default="memory", help="default memory")
    p.add_argument("--rows", type=int, default=100_000, help="rows to write (default 100000)")
    p.add_argument("--batch", type=int, default=1000, help="rows per WriteRows call (default 1000)")
    p.add_argument("--commit-every", type=int, default=10, help="batches per checkpoint (default 10)")
    p.add_argument("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL (default {DEFAULT_DSN!r})")
    p.add_argument("--direct", action="store_true", help="call the plugin in this process, no gRPC")
    p.add_argument("--sink", metavar="HOST:PORT", help="use a running sink service")
    p.add_argument("--connection-string", help="key for --sink (default the local root key)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


if __name__ == "__main__":  # pragma: no cover - python -m headwater.perf.sink
    import sys

    parser = argparse.ArgumentParser(prog="headwater perf")
    add_perf_commands(parser.add_subparsers(dest="perf", required=True))
    ns = parser.parse_args(sys.argv[1:])
    sys.exit(ns.func(ns))
