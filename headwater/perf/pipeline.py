"""``headwater perf pipeline``: publish to sink, end to end, at a steady rate.

Starts ingestion, sink and processing as processes (temporary folder), creates a
hub, a memory sink and a job, publishes generated trips at ``--rate`` events/s
for ``--seconds`` (event time = send time) and subscribes to the sink's rows.

- ``--query passthrough`` (default): ``SELECT tripId, createdAt ... INTO`` every
  event; latency per row = when the row reached the subscriber minus when the
  event was sent.
- ``--query book``: the book's 10-second tumbling count; latency per row = when
  the row arrived minus its window end (the earliest moment it could exist).

The stream keeps flowing after the measured ``--seconds`` until every measured
event has arrived (a stopped stream holds its last events back by the
late-arrival tolerance, as Stream Analytics does). Prints the delivered events/s
of the measured window, p50/p99 latency in ms; ``peak_rss_mb`` is this driver's
(the services are other processes). With ``--json`` one JSON object is the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import datetime

__all__ = ["add_perf_commands", "run_pipeline"]

QUERIES = {
    "passthrough": "SELECT tripId, createdAt INTO [Dashboard] FROM [Trips] TIMESTAMP BY createdAt",
    "book": None,  # headwater.pipeline.BOOK_QUERY
}


def _parse_time(value) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


async def _run(endpoints: dict[str, str], query: str, rate: float, seconds: float, book: bool) -> dict:
    import pyarrow as pa

    from headwater.channel import aio_channel
    from headwater.pipeline import local_connection, send_trips, setup_pipeline
    from headwater.v1 import sink_pb2 as spb
    from headwater.v1 import sink_pb2_grpc

    await setup_pipeline(endpoints, hub="perf", partitions=4, sink_kind="memory", dataset="perf", query=query,
                         sink_config=None)
    latencies: list[float] = []
    #: (event or window time, latency ms, count) per row received
    stamps: list[tuple[float, float, int]] = []

    async def subscribe() -> None:
        async with aio_channel(local_connection(endpoints["sink"])) as ch:
            stream = sink_pb2_grpc.SinkServiceStub(ch).SubscribeRows(spb.SubscribeRowsRequest(name="sinks/perf"))
            async for resp in stream:
                now = time.time()
                if resp.snapshot or not resp.batch.data:
                    continue
                table = pa.ipc.open_stream(resp.batch.data).read_all()
                times = [_parse_time(v) for v in table.column("WindowEnd" if book else "createdAt").to_pylist()]
                counts = table.column("trips").to_pylist() if book else [1] * len(times)
                stamps.extend((t, (now - t) * 1000, c) for t, c in zip(times, counts))

    sub = asyncio.create_task(subscribe())
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    sent = await send_trips(endpoints["ingestion"], "perf", rate, seconds, batch_per_s=20)
    boundary = time.time()
    elapsed = time.monotonic() - t0
    await asyncio.sleep(0.01)  # event times are kept to the millisecond: keep the run-out after the boundary
    # Keep the stream going while the measured events drain: a stream that stops
    # holds its last events back by the late-arrival tolerance (every partition's
    # watermark must pass them), which is the stream's end, not its steady state.
    runout = asyncio.create_task(send_trips(endpoints["ingestion"], "perf", rate, None, batch_per_s=20))
    deadline = time.monotonic() + 30 + (12 if book else 0)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        measured = [x for x in stamps if x[0] <= boundary]
        if not book and len(measured) >= sent:
            break
        if book and any(x[0] > boundary + 10 for x in stamps):
            break
    runout.cancel()
    sub.cancel()
    measured = [x for x in stamps if x[0] <= boundary]
    received = len(measured) if not book else sum(x[2] for x in measured)
    latencies.extend(x[1] for x in measured)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else 0.0

    return {"sent": sent, "delivered": received, "events_per_s": round(received / elapsed),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "rows": len(latencies)}


def run_pipeline(rate: float, seconds: float, query: str = "passthrough", checkpoint_interval_s: float = 0.2) -> dict:
    from headwater.pipeline import BOOK_QUERY
    from headwater.procs import start_local_services, stop_local_services

    book = query == "book"
    text = BOOK_QUERY if book else QUERIES[query]
    with tempfile.TemporaryDirectory(prefix="headwater-perf-") as home:
        procs = start_local_services(
            ["ingestion", "sink", "processing"], home,
            env={"HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": str(checkpoint_interval_s)})
        try:
            endpoints = {n: p.address for n, p in procs.items()}
            import os

            old = os.environ.get("HEADWATER_HOME")
            os.environ["HEADWATER_HOME"] = home
            try:
                return asyncio.run(_run(endpoints, text, rate, seconds, book))
            finally:
                if old is None:
                    os.environ.pop("HEADWATER_HOME", None)
                else:
                    os.environ["HEADWATER_HOME"] = old
        finally:
            stop_local_services(procs)


def _cmd(args: argparse.Namespace) -> int:
    from headwater.cli.perf import emit, peak_rss_mb

    r = run_pipeline(args.rate, args.seconds, args.query, args.checkpoint_interval)
    r.update(query=args.query, rate=args.rate, peak_rss_mb=round(peak_rss_mb(), 1))
    emit(f"perf pipeline ({args.query}): sent {r['sent']:,} at {args.rate:,.0f}/s, delivered {r['delivered']:,} "
         f"({r['events_per_s']:,}/s); latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms "
         f"(checkpoint interval {args.checkpoint_interval}s)", r, args.json)
    return 0 if r["delivered"] >= r["sent"] or args.query == "book" else 1


def add_perf_commands(perf_sub: argparse._SubParsersAction) -> None:
    p = perf_sub.add_parser("pipeline", help="publish -> processing -> sink, end-to-end latency at a steady rate",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=5000, help="events per second (default 5000)")
    p.add_argument("--seconds", type=float, default=10, help="how long to send (default 10)")
    p.add_argument("--query", choices=tuple(QUERIES), default="passthrough")
    p.add_argument("--checkpoint-interval", type=float, default=0.2, help="job epoch in seconds (default 0.2)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd)
