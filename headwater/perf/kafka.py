"""``headwater perf produce|consume --protocol kafka``: the Kafka endpoint measured with confluent-kafka.

produce: one librdkafka producer (``--kafka-linger-ms``, batches up to 1 MB,
``--kafka-compression``, acks=all, idempotent) sends, with ``produce_batch`` in
lists of 10,000, ``--events`` records of
``--event-size`` bytes with no key (sticky partitioning) into a ``--partitions``
hub; events/s and MB/s run from the first ``produce()`` to the end of
``flush()``. consume: the hub is filled through gRPC (the fast publish path),
then one librdkafka consumer assigned every partition from offset 0 reads the
records back; events/s runs from ``assign()`` to the last record. Both print the
gRPC figure of the same run beside it (``--compare grpc``, the default).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

__all__ = ["consume", "produce"]

_PRODUCE_CHUNK = 10_000
_QUEUE_LIMIT = 1_500_000
_WARM_UP_S = 2.0


def _kafka_port(args: argparse.Namespace) -> str:
    """host:port of the Kafka endpoint: --kafka-bootstrap, or the port the started service printed."""
    bootstrap: str = args.kafka_bootstrap
    if bootstrap:
        return bootstrap
    proc = getattr(args, "service_process", None)
    if proc is None:
        raise SystemExit("headwater perf --protocol kafka: give --kafka-bootstrap HOST:PORT for a running service")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines: list[str] = list(proc.lines)
        for line in lines:
            if "ingestion kafka on " in line:
                return "127.0.0.1:" + line.rsplit(":", 1)[1]
        time.sleep(0.05)
    raise SystemExit("the ingestion service started here printed no Kafka port")


def _conf(bootstrap: str, conn: str, **extra: Any) -> dict[str, Any]:
    from headwater.auth import ConnectionString

    tls = ConnectionString.parse(conn).use_tls
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString", "sasl.password": conn, **extra}


def _produce_kafka(bootstrap: str, conn: str, hub: str, args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka import Producer

    from headwater.perf.ingestion import _bodies

    errors: list[Any] = []
    producer = Producer(_conf(bootstrap, conn, **{
        "linger.ms": args.kafka_linger_ms, "batch.size": 1_000_000, "batch.num.messages": 100_000,
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_000_000,
        "compression.type": args.kafka_compression, "enable.idempotence": True,
        "delivery.report.only.error": True, "on_delivery": lambda err, msg: errors.append(err)}))
    bodies = _bodies(args.event_size, 64)
    # Warm-up, as Kafka's perf tools have: connect, authenticate, fetch metadata, get a producer id,
    # and let the service load its compiled record codec (it starts when a Kafka client connects).
    producer.produce_batch(hub, [{"value": bodies[i & 63]} for i in range(_PRODUCE_CHUNK)])
    producer.flush(30)
    time.sleep(min(_WARM_UP_S, args.events / 500_000))  # (a smoke run of a few thousand: no wait)
    # produce_batch hands librdkafka a list of messages in one call: a Python loop of produce()
    # calls caps this process near 300,000 records/s on its own (Kafka's perf tool is Java).
    chunk = [{"value": bodies[i & 63]} for i in range(_PRODUCE_CHUNK)]
    t0 = time.perf_counter()
    sent = 0
    while sent < args.events:
        while len(producer) > _QUEUE_LIMIT:  # keep the local queue (2,000,000) from filling
            producer.poll(0.01)
        msgs = chunk if args.events - sent >= _PRODUCE_CHUNK else chunk[:args.events - sent]
        queued = producer.produce_batch(hub, msgs)
        if queued != len(msgs):
            refused = [m.pop("_error") for m in msgs if "_error" in m]
            raise SystemExit(f"kafka produce: {len(refused)} records refused by the client: {refused[:3]}")
        sent += queued
        producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - t0
    if left or errors:
        raise SystemExit(f"kafka produce: {left} records not delivered, {len(errors)} errors: {errors[:3]}")
    return {"events": args.events, "seconds": elapsed, "events_per_s": args.events / elapsed,
            "mb_per_s": args.events * args.event_size / elapsed / 1e6}


def _consume_kafka(bootstrap: str, conn: str, hub: str, partitions: int, expected: int,
                   event_size: int) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(_conf(bootstrap, conn, **{
        "group.id": f"perf-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
        "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
        "queued.max.messages.kbytes": 512 * 1024, "fetch.wait.max.ms": 100,
        # librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s) once its local
        # queue holds queued.min.messages (100,000): a reader draining as fast as it can would
        # sit out whole seconds of a 1-3 s run (one run in three measured 240,000/s so).
        "queued.min.messages": 2_000_000, "fetch.queue.backoff.ms": 10}))
    total = nbytes = 0
    t0 = time.perf_counter()
    consumer.assign([TopicPartition(hub, p, 0) for p in range(partitions)])
    deadline = t0 + 300
    while total < expected and time.perf_counter() < deadline:
        msgs = consumer.consume(10_000, 1.0)
        if msgs:
            # Kafka's consumer perf tool counts records and bytes; checking each message in Python
            # would measure this loop. The last one stands for the batch (errors come alone).
            if msgs[-1].error() is not None:
                msgs = [m for m in msgs if m.error() is None]
            total += len(msgs)
            nbytes += len(msgs) * event_size
    elapsed = time.perf_counter() - t0
    consumer.close()
    return {"events": total, "seconds": elapsed, "events_per_s": total / elapsed, "mb_per_s": nbytes / elapsed / 1e6}


def _run(args: argparse.Namespace, command: str) -> int:
    import json

    from headwater.perf.ingestion import _consume, _create_hub, _delete_hub, _peak_rss_mb, _produce, _service

    with _service(args) as conn:
        bootstrap = _kafka_port(args)
        hub = args.hub or f"perf-{uuid.uuid4().hex[:8]}"
        if not args.hub:
            asyncio.run(_create_hub(conn, hub, args.partitions))
        try:
            if command == "produce":
                ours = _produce_kafka(bootstrap, conn, hub, args)
                peer = asyncio.run(_produce(conn, hub, args)) if args.compare != "none" else None
            else:
                if not args.hub:
                    asyncio.run(_produce(conn, hub, args))
                ours = _consume_kafka(bootstrap, conn, hub, args.partitions, args.events, args.event_size)
                peer = asyncio.run(_consume(conn, hub, args.partitions, args.events)) \
                    if args.compare != "none" else None
        finally:
            if not args.hub:
                asyncio.run(_delete_hub(conn, hub))
    result = {"command": command, "protocol": "kafka", "client": "confluent-kafka",
              **{k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()},
              "event_size": args.event_size, "partitions": args.partitions, "peak_rss_mb": round(_peak_rss_mb(), 1)}
    verb = "produced" if command == "produce" else "consumed"
    summary = (f"{command} (Kafka protocol, confluent-kafka): {ours['events']:,} records of {args.event_size} B "
               f"{verb} over {args.partitions} partitions: {ours['events_per_s']:,.0f} records/s, "
               f"{ours['mb_per_s']:.1f} MB/s")
    if peer:
        result["grpc_events_per_s"] = round(peer["events_per_s"], 1)
        result["ratio_vs_grpc"] = round(ours["events_per_s"] / peer["events_per_s"], 2)
        summary += (f"\ngRPC in the same run ({'PublishEventsStream' if command == 'produce' else 'packed ReadEvents'}"
                    f"): {peer['events_per_s']:,.0f} events/s -> Kafka is {result['ratio_vs_grpc']}x")
    print(summary)
    if args.json:
        print(json.dumps(result))
    return 0


def produce(args: argparse.Namespace) -> int:
    return _run(args, "produce")


def consume(args: argparse.Namespace) -> int:
    return _run(args, "consume")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The Kafka options of ``perf produce`` / ``perf consume``."""
    p.add_argument("--protocol", choices=("grpc", "kafka"), default="grpc",
                   help="grpc (the SDK's paths, default) or kafka (the Kafka endpoint through confluent-kafka; "
                        "--compare grpc puts the gRPC figure beside it)")
    p.add_argument("--kafka-bootstrap", help="with --protocol kafka and a running service: its Kafka host:port")
    p.add_argument("--kafka-linger-ms", type=int, default=20, help="producer linger.ms (default 20)")
    p.add_argument("--kafka-compression", choices=("none", "gzip", "snappy", "lz4", "zstd"), default="none",
                   help="producer compression.type (default none)")
