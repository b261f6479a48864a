"""``headwater perf produce`` and ``headwater perf consume``, after Kafka's perf-test tools.

``produce`` publishes ``--events`` events of ``--event-size`` bytes in batches of
``--batch-size`` from ``--producers`` concurrent producer clients in this one
process into a ``--partitions`` hub, and prints events/s, MB/s and send latency
percentiles. ``consume`` reads the same number of events back from every
partition at once: ``events_per_s`` counts events as the SDK's packed read path
sees them (no Python object per event), ``sdk_events_per_s`` through
``receive_batch`` with one EventData per event.

Both start their own ingestion process (temporary data folder and policies,
default settings: fsync_policy interval; ``--backend nats`` puts its log and
metadata on JetStream at ``--nats-url``) unless ``--address`` /
``--connection-string`` name a running one, and, with ``--compare nats`` (the
default), run NATS JetStream's Python client (file storage) on
``--nats-url`` in the same run and print the ratio. With ``--json`` the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.eventhub import EventData
    from headwater.eventhub.aio import EventHubProducerClient, PartitionContext

__all__ = ["add_perf_commands", "consume", "produce"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[str]:
    """A connection string: the given one, or one for a service started here."""
    from headwater.auth import ConnectionString, PolicyStore

    text = args.connection_string or os.environ.get("HEADWATER_PERF_CONNECTION_STRING", "")
    if text:
        yield text
        return
    if args.address:
        from headwater.config import local_root_policy

        policy = local_root_policy()  # the running services' key, never a new one
        yield str(ConnectionString(endpoint=f"headwater://{args.address}/", shared_access_key_name=policy.name,
                                   shared_access_key=policy.key))
        return
    from headwater.procs import ServiceProcess, headwater_cmd

    tmp = tempfile.mkdtemp(prefix="headwater-perf-")
    env = {"HEADWATER_HOME": tmp, "HEADWATER_LOG_LEVEL": "WARNING", "HEADWATER_INGESTION_HTTP_PORT": "-1"}
    if args.fsync_policy:
        env["HEADWATER_INGESTION_FSYNC_POLICY"] = args.fsync_policy
    prefix = ""
    if args.backend == "nats":  # the service's log and metadata on JetStream, under names of this run only
        prefix = f"PERF{uuid.uuid4().hex[:8]}"
        env.update(HEADWATER_INGESTION_LOG_BACKEND="nats", HEADWATER_INGESTION_NATS_URL=args.nats_url,
                   HEADWATER_INGESTION_NATS_PREFIX=prefix)
    proc = ServiceProcess("ingestion", [*headwater_cmd(), "serve", "ingestion", "--port", "0", "--metrics-port", "-1",
                                        "--data-dir", os.path.join(tmp, "data")], env=env)
    try:
        proc.start()
        args.service_process = proc  # --protocol kafka reads the Kafka port it printed
        policy = PolicyStore(os.path.join(tmp, "auth.json")).ensure().root()
        yield str(ConnectionString(endpoint=f"headwater://{proc.address}/", shared_access_key_name=policy.name,
                                   shared_access_key=policy.key))
    finally:
        proc.terminate(10)
        shutil.rmtree(tmp, ignore_errors=True)
        if prefix:
            from headwater.services.ingestion.log.nats import delete_prefix

            asyncio.run(delete_prefix(args.nats_url, prefix))


async def _delete_hub(conn: str, name: str) -> None:
    from headwater.channel import aio_channel
    from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

    ch = aio_channel(conn)
    try:
        await ingestion_pb2_grpc.IngestionServiceStub(ch).DeleteHub(ingestion_pb2.DeleteHubRequest(name=f"hubs/{name}"))
    finally:
        await ch.close()


async def _create_hub(conn: str, name: str, partitions: int) -> None:
    from headwater.channel import aio_channel
    from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

    ch = aio_channel(conn)
    try:
        await ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(ingestion_pb2.CreateHubRequest(
            hub_id=name, hub=ingestion_pb2.Hub(partition_count=partitions)))
    finally:
        await ch.close()


def _bodies(size: int, count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(size)) for _ in range(count)]


async def _produce(conn: str, hub: str, args: argparse.Namespace) -> dict[str, Any]:
    from headwater.eventhub._common import EventDataBatch
    from headwater.eventhub.aio import EventHubProducerClient
    from headwater.v1 import event_pb2

    bodies = _bodies(args.event_size, 64)
    pool = []
    for b in range(8):  # a few distinct pre-encoded batches, as Kafka's perf tool reuses payloads
        encoded = [event_pb2.EventData(body=bodies[(b * 7 + i) % 64]).SerializeToString()
                   for i in range(args.batch_size)]
        pool.append(encoded)
    total_batches = max(1, args.events // args.batch_size)
    latencies: list[float] = []
    clients = [EventHubProducerClient.from_connection_string(conn, eventhub_name=hub) for _ in range(args.producers)]

    async def run(client: EventHubProducerClient) -> None:
        for i in counter:
            batch = EventDataBatch._from_encoded(pool[i % len(pool)])
            t0 = time.perf_counter()
            await client.send_batch(batch)
            latencies.append(time.perf_counter() - t0)

    counter = iter(range(min(5, total_batches)))
    await asyncio.gather(*(run(c) for c in clients))  # warm up every channel
    latencies.clear()
    counter = iter(range(total_batches))
    t0 = time.perf_counter()
    if args.mode == "stream":
        await asyncio.gather(*(_stream_producer(conn, hub, pool, counter, latencies, args.window)
                               for _ in range(args.producers)))
    else:
        await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - t0
    for c in clients:
        await c.close()
    events = total_batches * args.batch_size
    return {"events": events, "seconds": elapsed, "events_per_s": events / elapsed,
            "mb_per_s": events * args.event_size / elapsed / 1e6,
            "p50_ms": _pct(latencies, 0.5) * 1000, "p99_ms": _pct(latencies, 0.99) * 1000}


async def _stream_producer(conn: str, hub: str, pool: list[Any], counter: Iterator[int], latencies: list[Any],
                           window: int) -> None:
    """One PublishEventsStream with up to ``window`` batches awaiting their acknowledgement."""
    from headwater.channel import aio_channel
    from headwater.eventhub.wire import PublishEventsRequestPacked, method
    from headwater.v1 import ingestion_pb2

    ch = aio_channel(conn)
    call = ch.stream_stream(method("PublishEventsStream"),
                            request_serializer=PublishEventsRequestPacked.SerializeToString,
                            response_deserializer=ingestion_pb2.PublishEventsResponse.FromString)()
    sent: list[float] = []
    slots = asyncio.Semaphore(window)

    async def writer() -> None:
        for i in counter:
            await slots.acquire()
            sent.append(time.perf_counter())
            await call.write(PublishEventsRequestPacked(hub=hub, events=pool[i % len(pool)]))
        await call.done_writing()

    async def reader() -> None:
        n = 0
        async for _ in call:
            latencies.append(time.perf_counter() - sent[n])
            n += 1
            slots.release()

    try:
        await asyncio.gather(writer(), reader())
    finally:
        await ch.close()


async def _consume(conn: str, hub: str, partitions: int, expected: int) -> dict[str, Any]:
    from headwater.channel import aio_channel
    from headwater.eventhub.wire import ReadEventsResponsePacked, method
    from headwater.v1 import event_pb2, ingestion_pb2

    ch = aio_channel(conn)
    read = ch.unary_stream(method("ReadEvents"), request_serializer=ingestion_pb2.ReadEventsRequest.SerializeToString,
                           response_deserializer=ReadEventsResponsePacked.FromString)
    counts = [0] * partitions
    nbytes = [0] * partitions

    async def one(pid: int) -> None:
        call = read(ingestion_pb2.ReadEventsRequest(
            hub=hub, partition_id=str(pid), event_position=event_pb2.EventPosition(earliest=True),
            max_batch_size=5000, max_wait={"nanos": 200_000_000}))
        try:
            async for resp in call:
                n = len(resp.events)
                if not n:
                    return
                counts[pid] += n
                nbytes[pid] += resp.ByteSize()
        finally:
            call.cancel()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in range(partitions)))
    elapsed = time.perf_counter() - t0 - 0.2  # the final empty long-poll waits max_wait
    await ch.close()
    total = sum(counts)
    return {"events": total, "seconds": elapsed, "events_per_s": total / elapsed,
            "mb_per_s": sum(nbytes) / elapsed / 1e6}


async def _consume_sdk(conn: str, hub: str, partitions: int) -> dict[str, Any]:
    from headwater.eventhub.aio import EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(conn, "$Default", eventhub_name=hub)
    done: set[str] = set()
    total = 0

    async def on_batch(ctx: PartitionContext, events: list[EventData]) -> None:
        nonlocal total
        if not events:
            done.add(ctx.partition_id)
            if len(done) == partitions:
                await client.close()
            return
        total += len(events)

    t0 = time.perf_counter()
    await client.receive_batch(on_batch, max_batch_size=5000, starting_position="-1", max_wait_time=0.2)
    elapsed = time.perf_counter() - t0 - 0.2
    return {"events": total, "events_per_s": total / elapsed}


# -- NATS JetStream peer -------------------------------------------------------------------------


async def _nats_produce(url: str, events: int, size: int, window: int) -> dict[str, Any]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

    async def _quiet(_exc: Exception) -> None:  # nats-py logs a traceback per failed attempt
        return None

    # One attempt: an unreachable peer is skipped with one line (nats-py itself would retry
    # the first connect forever, a traceback each time).
    parsed = urllib.parse.urlparse(url)
    _r, w = await asyncio.wait_for(asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), 2)
    w.close()
    nc = await asyncio.wait_for(nats.connect(url, connect_timeout=2, allow_reconnect=False,
                                             max_reconnect_attempts=0, error_cb=_quiet), 5)
    js = nc.jetstream()
    stream = f"HWPERF{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE))
    body = _bodies(size, 1)[0]
    try:
        t0 = time.perf_counter()
        sent = 0
        while sent < events:  # `window` publishes in flight, each awaiting its ack
            n = min(window, events - sent)
            await asyncio.gather(*(js.publish(f"{stream}.{(sent + i) % 4}", body) for i in range(n)))
            sent += n
        elapsed = time.perf_counter() - t0
        result = {"events": sent, "seconds": elapsed, "events_per_s": sent / elapsed}
        # Read them back with a pull consumer, in batches.
        # No acks, as the Headwater reader does none either.
        sub = await js.pull_subscribe(f"{stream}.>", durable=f"perf{uuid.uuid4().hex[:6]}",
                                      config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        got = 0
        t0 = time.perf_counter()
        while got < sent:
            msgs = await sub.fetch(min(1000, sent - got), timeout=5)
            got += len(msgs)
        read_s = time.perf_counter() - t0
        result["read_events_per_s"] = got / read_s
        return result
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()


async def _nats_peer(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.compare != "nats":
        return None
    try:
        return await _nats_produce(args.nats_url, args.nats_events, args.event_size, 1000)
    except Exception as exc:  # noqa: BLE001 - the peer is optional; say why it is missing
        print(f"NATS peer skipped: {args.nats_url} unreachable ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


# -- commands ---------------------------------------------------------------------------------


def produce(args: argparse.Namespace) -> int:
    if args.protocol == "kafka":
        from headwater.perf import kafka

        return kafka.produce(args)
    if min(args.events, args.event_size, args.batch_size, args.producers, args.partitions) <= 0:
        print("headwater perf produce: --events, --event-size, --batch-size, --producers, --partitions must be > 0")
        return 2
    with _service(args) as conn:
        hub = args.hub or f"perf-{uuid.uuid4().hex[:8]}"

        async def main() -> tuple[dict[str, Any], dict[str, Any] | None]:
            if not args.hub:
                await _create_hub(conn, hub, args.partitions)
            try:
                ours = await _produce(conn, hub, args)
            finally:
                if not args.hub:  # leave a running service as it was
                    await _delete_hub(conn, hub)
            peer = await _nats_peer(args)
            return ours, peer

        ours, peer = asyncio.run(main())
    result = {"command": "produce", **{k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()},
              "event_size": args.event_size, "batch_size": args.batch_size, "producers": args.producers,
              "mode": args.mode, "partitions": args.partitions, "fsync_policy": args.fsync_policy or "interval",
              "backend": args.backend,
              "peak_rss_mb": round(_peak_rss_mb(), 1)}
    summary = (f"produce: {ours['events']:,} events of {args.event_size} B in batches of {args.batch_size} "
               f"from {args.producers} producer(s) into {args.partitions} partitions: "
               f"{ours['events_per_s']:,.0f} events/s, {ours['mb_per_s']:.1f} MB/s, "
               f"send latency p50 {ours['p50_ms']:.2f} ms p99 {ours['p99_ms']:.2f} ms")
    if peer:
        result["nats_events_per_s"] = round(peer["events_per_s"], 1)
        result["ratio_vs_nats"] = round(ours["events_per_s"] / peer["events_per_s"], 2)
        summary += (f"\nNATS JetStream (Python client, file storage, {peer['events']:,} events, 1000 in flight): "
                    f"{peer['events_per_s']:,.0f} events/s -> Headwater is {result['ratio_vs_nats']}x")
    print(summary)
    if args.json:
        import json

        print(json.dumps(result))
    return 0


def consume(args: argparse.Namespace) -> int:
    if args.protocol == "kafka":
        from headwater.perf import kafka

        return kafka.consume(args)
    if min(args.events, args.event_size, args.partitions) <= 0:
        print("headwater perf consume: --events, --event-size, --partitions must be > 0")
        return 2
    with _service(args) as conn:
        hub = args.hub or f"perf-{uuid.uuid4().hex[:8]}"

        async def main() -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
            if not args.hub:
                await _create_hub(conn, hub, args.partitions)
            try:
                if not args.hub:
                    await _produce(conn, hub, args)
                raw = await _consume(conn, hub, args.partitions, args.events)
                sdk = await _consume_sdk(conn, hub, args.partitions) if args.sdk else None
            finally:
                if not args.hub:
                    await _delete_hub(conn, hub)
            peer = await _nats_peer(args)
            return raw, sdk, peer

        raw, sdk, peer = asyncio.run(main())
    result = {"command": "consume", "events": raw["events"], "events_per_s": round(raw["events_per_s"], 1),
              "mb_per_s": round(raw["mb_per_s"], 2), "partitions": args.partitions, "backend": args.backend,
              "peak_rss_mb": round(_peak_rss_mb(), 1)}
    summary = (f"consume: {raw['events']:,} events from {args.partitions} partitions at once: "
               f"{raw['events_per_s']:,.0f} events/s, {raw['mb_per_s']:.1f} MB/s (packed read path)")
    if sdk:
        result["sdk_events_per_s"] = round(sdk["events_per_s"], 1)
        summary += f"\n  through receive_batch (one EventData per event): {sdk['events_per_s']:,.0f} events/s"
    if peer:
        result["nats_events_per_s"] = round(peer["read_events_per_s"], 1)
        result["ratio_vs_nats"] = round(raw["events_per_s"] / peer["read_events_per_s"], 2)
        summary += (f"\nNATS JetStream pull consumer (Python client, batches of 1000): "
                    f"{peer['read_events_per_s']:,.0f} events/s -> Headwater is {result['ratio_vs_nats']}x")
    print(summary)
    if args.json:
        import json

        print(json.dumps(result))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=1_000_000, help="events to send (default 1,000,000)")
    p.add_argument("--event-size", type=int, default=250, help="body bytes per event (default 250)")
    p.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000)")
    p.add_argument("--producers", type=int, default=2, help="concurrent producers (streams or clients; default 2)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the perf hub (default 4)")
    p.add_argument("--hub", help="use this existing hub instead of creating one")
    p.add_argument("--mode", choices=("stream", "unary"), default="stream",
                   help="PublishEventsStream with --window batches in flight per producer (default), or "
                        "send_batch calls")
    p.add_argument("--window", type=int, default=4, help="batches in flight per stream (default 4)")
    p.add_argument("--address", help="a running ingestion service (host:port, local root policy)")
    p.add_argument("--connection-string", help="a running ingestion service")
    p.add_argument("--fsync-policy", choices=("every_batch", "interval", "never"),
                   help="for the service started here (default: the service default, interval)")
    p.add_argument("--backend", choices=("embedded", "nats"), default="embedded",
                   help="log backend of the service started here (nats: JetStream at --nats-url)")
    p.add_argument("--compare", choices=("nats", "grpc", "none"), default="nats",
                   help="peer in the same run (default nats; with --protocol kafka the peer is gRPC)")
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    p.add_argument("--nats-events", type=int, default=50_000, help="events for the NATS peer (default 50,000)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    from headwater.perf.kafka import add_arguments

    add_arguments(p)


def add_perf_commands(perf_subparsers: argparse._SubParsersAction[Any]) -> None:
    p = perf_subparsers.add_parser("produce", help="publish events/s into the ingestion service",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.set_defaults(func=produce)
    p = perf_subparsers.add_parser("consume", help="read events/s from the ingestion service",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--sdk", action="store_true", help="also read through receive_batch (EventData objects)")
    p.set_defaults(func=consume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headwater.perf.ingestion")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_perf_commands(sub)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
