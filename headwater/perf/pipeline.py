"""``headwater perf pipeline``: publish to sink, end to end.

Starts ingestion, sink and processing as processes (temporary folder), creates a
hub (4 partitions), a memory sink and a job, publishes generated trips for
``--seconds`` (event time = send time) and subscribes to the sink's rows.
``--rate N`` sends N events/s; ``--rate max`` sends as fast as the producers can
(several requests in flight) and so measures the stack's throughput.

- ``--query passthrough`` (default): ``SELECT tripId, createdAt ... INTO`` every
  event; latency per row = when the row reached the subscriber minus when the
  event was sent.
- ``--query book``: the book's 10-second tumbling count; latency per row = when
  the row arrived minus its window end (the earliest moment it could exist).

The generator builds each request once per batch from serialized templates (the
send time is written into the bytes), and sizes requests under the 1 MiB message
limit whatever the rate. The stream keeps flowing after the measured
``--seconds`` until every measured event has arrived (a stopped stream holds its
last events back by the late-arrival tolerance, as Stream Analytics does).
Prints delivered events/s (measured events over the time from the first send to
the last of them delivered; for the book, the events counted in the windows that
closed by the end of sending, over the time from the first send to the last of those
windows delivered), p50/p99 latency in ms; the CPU seconds each process used while
the measured events went through (``cpu_s``: a service with its job workers, and
this driver) and their sum per event (``cpu_us_per_event``, far less dependent on
the other work on the machine than events/s); the load average; ``service_peak_rss_mb``:
each service's peak resident memory and the largest of its child processes' (``processing
worker``: the job's worker process, where the query runs); ``peak_rss_mb`` is this driver's. With ``--json`` one JSON object is
the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["TripRequests", "add_perf_commands", "events_per_request", "run_pipeline"]

QUERIES: dict[str, str | None] = {
    "passthrough": "SELECT tripId, createdAt INTO [Dashboard] FROM [Trips] TIMESTAMP BY createdAt",
    "book": None,  # headwater.pipeline.BOOK_QUERY
}

#: Requests stay under this many bytes (the services' limit is 1 MiB).
MAX_REQUEST_BYTES = 900_000
#: Requests in flight with --rate max.
MAX_RATE_SENDERS = 4
_PLACEHOLDER = b"0000-00-00T00:00:00.000Z"  # as wide as headwater.trips' times


class TripRequests:
    """Serialized PublishEvents requests of generated trips, sized under the limit.

    A few templates are built once; each request is a template with the send time
    written in (one ``bytes.replace`` per request, no object per event)."""

    def __init__(self, hub: str, per_request: int, templates: int = 8, seed: int = 7) -> None:
        import orjson

        from headwater.eventhub.wire import PublishEventsRequestPacked
        from headwater.trips import trip
        from headwater.v1 import event_pb2

        rng = random.Random(seed)
        fixed = datetime(2000, 1, 1, tzinfo=UTC)
        stamp = b"2000-01-01T00:00:00.000Z"

        def event() -> bytes:
            body = orjson.dumps(trip(rng, fixed)).replace(stamp, _PLACEHOLDER)
            return event_pb2.EventData(body=body, content_type="application/json").SerializeToString()

        sample = [event() for _ in range(64)]
        size = max(map(len, sample)) + 8
        self.per_request = max(1, min(per_request, MAX_REQUEST_BYTES // size))
        self.templates: list[bytes] = [
            PublishEventsRequestPacked(hub=f"hubs/{hub}", events=[event() for _ in range(self.per_request)])
            .SerializeToString() for _ in range(templates)]
        self._i = 0

    def next(self) -> bytes:
        """The next request, stamped with the current time."""
        now = datetime.now(UTC)
        stamp = (now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z").encode()
        self._i += 1
        return self.templates[self._i % len(self.templates)].replace(_PLACEHOLDER, stamp)


def events_per_request(rate: float | None) -> int:
    """Events asked per request: 50 requests a second at ``rate``, 1,000 with --rate max
    (TripRequests then caps it so a request stays under MAX_REQUEST_BYTES)."""
    return 1000 if rate is None else max(1, int(rate / 50))


async def send(address: str, hub: str, rate: float | None, duration_s: float | None,
               counter: list[int] | None = None, home: str | None = None) -> int:
    """Send trips at ``rate`` events/s (None: as fast as possible) for ``duration_s``
    (None: until cancelled); returns how many were sent (also kept in ``counter[0]``)."""
    from headwater.channel import aio_channel
    from headwater.eventhub.wire import method
    from headwater.pipeline import local_connection
    from headwater.v1 import ingestion_pb2

    counter = counter if counter is not None else [0]
    reqs = TripRequests(hub, events_per_request(rate))
    start = time.monotonic()
    async with aio_channel(local_connection(address, home)) as ch:
        publish = ch.unary_unary(method("PublishEvents"), request_serializer=lambda b: b,
                                 response_deserializer=ingestion_pb2.PublishEventsResponse.FromString)

        async def sender() -> None:
            while duration_s is None or time.monotonic() - start < duration_s:
                await publish(reqs.next())
                counter[0] += reqs.per_request
                if rate is not None:
                    await asyncio.sleep(max(0.0, start + counter[0] / rate - time.monotonic()))

        await asyncio.gather(*(sender() for _ in range(MAX_RATE_SENDERS if rate is None else 1)))
    return counter[0]


def _times_us(column: Any) -> Any:  # pyarrow and numpy are untyped
    """A column of times (ISO text or timestamps) as int64 microseconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))
    return pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)


async def _run(endpoints: dict[str, str], query: str, rate: float | None, seconds: float, book: bool,
               home: str, pids: dict[str, int]) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa

    from headwater.channel import aio_channel
    from headwater.perf.common import tree_cpu_s, tree_peak_rss_mb
    from headwater.pipeline import local_connection, setup_pipeline
    from headwater.v1 import sink_pb2 as spb
    from headwater.v1 import sink_pb2_grpc

    await setup_pipeline(endpoints, hub="perf", partitions=4, sink_kind="memory", dataset="perf", query=query,
                         sink_config=None, home=home)
    #: per received batch: (event or window times us, arrival us, counts)
    got: list[tuple[Any, ...]] = []
    last_arrival = [0.0]

    async def subscribe() -> None:
        async with aio_channel(local_connection(endpoints["sink"], home)) as ch:
            stream = sink_pb2_grpc.SinkServiceStub(ch).SubscribeRows(spb.SubscribeRowsRequest(name="sinks/perf"))
            async for resp in stream:
                now = time.time()
                if resp.snapshot or not resp.batch.data:
                    continue
                table = pa.ipc.open_stream(resp.batch.data).read_all()
                times = _times_us(table.column("WindowEnd" if book else "createdAt"))
                counts = (table.column("trips").to_numpy(zero_copy_only=False).astype(np.int64) if book
                          else np.ones(len(times), np.int64))
                got.append((times, int(now * 1e6), counts))
                last_arrival[0] = now

    sub = asyncio.create_task(subscribe())
    await asyncio.sleep(0.5)
    cpu0 = {name: tree_cpu_s(pid) for name, pid in pids.items()}
    driver0 = _own_cpu_s()
    t0 = time.monotonic()
    w0 = time.time()
    sent = await send(endpoints["ingestion"], "perf", rate, seconds, home=home)
    boundary = int(time.time() * 1e6)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(0.01)  # event times are kept to the millisecond: keep the run-out after the boundary
    # Keep the stream going while the measured events drain: a stream that stops
    # holds its last events back by the late-arrival tolerance (every partition's
    # watermark must pass them), which is the stream's end, not its steady state.
    runout_sent = [0]
    runout = asyncio.create_task(send(endpoints["ingestion"], "perf", rate or 2000.0, None, runout_sent, home=home))

    def measured() -> tuple[Any, ...]:
        if not got:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        times = np.concatenate([g[0] for g in got])
        arrivals = np.concatenate([np.full(len(g[0]), g[1], np.int64) for g in got])
        counts = np.concatenate([g[2] for g in got])
        keep = times <= boundary
        return times[keep], arrivals[keep], counts[keep]

    deadline = time.monotonic() + 60 + (12 if book else 0)
    seen, done_measured, past_window = 0, 0, False
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        new, seen = got[seen:], len(got)  # only the batches since the last look
        done_measured += sum(int((g[0] <= boundary).sum()) for g in new)
        past_window = past_window or any((g[0] > boundary + 10_000_000).any() for g in new)
        if not book and done_measured >= sent:
            break
        if book and past_window:
            break
    cpu = {name: tree_cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
    rss: dict[str, float] = {}
    for name, pid in pids.items():
        own, worker = tree_peak_rss_mb(pid)
        rss[name] = round(own, 1)
        if worker:
            rss[f"{name} worker"] = round(worker, 1)
    handled = sent + runout_sent[0]  # the CPU went to every event sent until now
    cpu["driver"] = _own_cpu_s() - driver0
    runout.cancel()
    sub.cancel()
    await asyncio.gather(runout, sub, return_exceptions=True)
    times, arrivals, counts = measured()
    received = int(counts.sum()) if book else len(times)
    lat_ms = np.sort((arrivals - times) / 1000.0)
    if rate is None:  # throughput: measured events over first send to last delivery
        done = (arrivals.max() / 1e6 - w0) if len(arrivals) else elapsed
        # The book counts the events of the windows that closed by the end of sending,
        # sent over the first (window end - w0) seconds only, not the whole send.
        per_s = received / (done if book else max(done, elapsed))
    else:
        per_s = received / elapsed

    def pct(p: float) -> float:
        return round(float(lat_ms[min(len(lat_ms) - 1, int(p * len(lat_ms)))]), 1) if len(lat_ms) else 0.0

    total_cpu = sum(cpu.values())
    return {"sent": sent, "delivered": received, "events_per_s": round(per_s), "send_events_per_s":
            round(sent / elapsed), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "rows": len(lat_ms),
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "cpu_us_per_event": round(total_cpu * 1e6 / max(1, handled), 2), "service_peak_rss_mb": rss,
            "load_average": round(os.getloadavg()[0], 1)}


def _own_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_pipeline(rate: float | None, seconds: float, query: str = "passthrough",
                 checkpoint_interval_s: float = 0.1) -> dict[str, Any]:
    """``rate`` None: as fast as the producers can."""
    from headwater.pipeline import BOOK_QUERY
    from headwater.procs import start_local_services, stop_local_services

    book = query == "book"
    text = BOOK_QUERY if book else QUERIES[query]
    if text is None:
        raise ValueError(f"no query {query!r}")
    with tempfile.TemporaryDirectory(prefix="headwater-perf-") as home:
        procs = start_local_services(
            ["ingestion", "sink", "processing"], home,
            env={"HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": str(checkpoint_interval_s)})
        try:
            endpoints = {n: p.address for n, p in procs.items()}
            return asyncio.run(_run(endpoints, text, rate, seconds, book, home, {n: p.pid for n, p in procs.items()}))
        finally:
            stop_local_services(procs)


def _rate(value: str) -> float | None:
    if value == "max":
        return None
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rate must be events per second or 'max', not {value!r}") from None
    if rate <= 0:
        raise argparse.ArgumentTypeError("--rate must be positive")
    return rate


def _cmd(args: argparse.Namespace) -> int:
    from headwater.perf.common import emit, peak_rss_mb

    r = run_pipeline(args.rate, args.seconds, args.query, args.checkpoint_interval)
    rate = "max" if args.rate is None else f"{args.rate:,.0f}/s"
    r.update(query=args.query, rate=args.rate if args.rate is not None else "max", peak_rss_mb=round(peak_rss_mb(), 1))
    emit(f"perf pipeline ({args.query}): sent {r['sent']:,} at {rate} ({r['send_events_per_s']:,}/s), delivered "
         f"{r['delivered']:,} ({r['events_per_s']:,}/s); latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms "
         f"(checkpoint interval {args.checkpoint_interval}s); CPU {r['cpu_us_per_event']} us per event over all "
         f"processes ({', '.join(f'{k} {v} s' for k, v in r['cpu_s'].items())}); peak RSS "
         f"{', '.join(f'{k} {v:.0f} MB' for k, v in r['service_peak_rss_mb'].items())}; load average {r['load_average']}",
         r, args.json)
    return 0 if r["delivered"] >= r["sent"] or args.query == "book" else 1


def add_perf_commands(perf_sub: argparse._SubParsersAction[Any]) -> None:
    p = perf_sub.add_parser("pipeline", help="publish -> processing -> sink, end-to-end throughput and latency",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=_rate, default=5000.0,
                   help="events per second, or 'max' to send as fast as possible (default 5000)")
    p.add_argument("--seconds", type=float, default=10, help="how long to send (default 10)")
    p.add_argument("--query", choices=tuple(QUERIES), default="passthrough")
    p.add_argument("--checkpoint-interval", type=float, default=0.1, help="job epoch in seconds (default 0.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd)
