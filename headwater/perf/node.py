"""``headwater perf node-read``: how fast a Node (@grpc/grpc-js) client reads a hub.

Fills a ``--partitions`` hub with ``--events`` events of ``--event-size`` bytes (as
``headwater perf produce`` does), then runs ``tests/clients/node/read_perf.js`` once per
flow-control window of ``--windows`` (``default`` is grpc-js's 64 KiB; sizes like
``1MiB``, ``16MiB``) and prints events/s for each: the measurement behind
docs/clients.md's flow-control advice. ``--packed`` reads the packed batch shape
(``ReadEventsRequest.packed``) instead of one message per event.

It starts its own ingestion service unless ``--address`` / ``--connection-string``
name a running one. It needs node and the example's npm packages (``make setup`` runs
``npm ci`` in tests/clients/node); without them it says so in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

__all__ = ["add_perf_commands", "node_read"]

NODE_DIR = Path(__file__).resolve().parents[2] / "tests" / "clients" / "node"
_SIZE = re.compile(r"(\d+)\s*(KiB|MiB|K|M)?", re.IGNORECASE)


def window_bytes(text: str) -> int:
    """``default`` -> 0 (grpc-js's own 64 KiB); ``16MiB`` -> 16777216; ``65536`` -> 65536."""
    if text.strip().lower() == "default":
        return 0
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"window {text!r} is not `default` or a size such as 64KiB, 16MiB, 1048576")
    unit = (m.group(2) or "").lower()
    return int(m.group(1)) * {"": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20}[unit]


def _label(window: int) -> str:
    return "64 KiB (grpc-js default)" if window == 0 else (
        f"{window >> 20} MiB" if window % (1 << 20) == 0 else f"{window // 1024} KiB")


def _run_node(node: str, conn: str, hub: str, partitions: int, window: int, packed: bool) -> dict[str, Any]:
    out = subprocess.run([node, "read_perf.js"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HEADWATER_CONNECTION_STRING": conn, "HEADWATER_HUB": hub,
                              "HEADWATER_PARTITIONS": str(partitions), "HEADWATER_WINDOW": str(window),
                              "HEADWATER_PACKED": "1" if packed else "0"})
    if out.returncode != 0:
        lines = (out.stderr + out.stdout).strip().splitlines()
        said = [ln for ln in lines if "error" in ln.lower()] or lines or [f"node exited with {out.returncode}"]
        raise RuntimeError(said[0].strip())
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _stored(conn: str, hub: str) -> int:
    """Events in the hub: what each run must read."""
    from headwater.eventhub.aio import EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(conn, "$Default", eventhub_name=hub)
    try:
        total = 0
        for pid in await client.get_partition_ids():
            props = await client.get_partition_properties(pid)
            if not props["is_empty"]:
                total += props["last_enqueued_sequence_number"] - props["beginning_sequence_number"] + 1
        return total
    finally:
        await client.close()


def node_read(args: argparse.Namespace) -> int:
    from headwater.perf.ingestion import _create_hub, _delete_hub, _produce, _service

    node = shutil.which("node")
    if node is None:
        print("headwater perf node-read: node is not installed (apt-get install nodejs npm)")
        return 1
    if not (NODE_DIR / "read_perf.js").exists() or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        print(f"headwater perf node-read: npm packages missing in {NODE_DIR} (run `make setup`, or npm ci there)")
        return 1
    try:
        windows = [window_bytes(w) for w in args.windows.split(",") if w.strip()]
    except ValueError as exc:
        print(f"headwater perf node-read: --windows: {exc}")
        return 2
    if min(args.events, args.event_size, args.partitions) <= 0 or not windows:
        print("headwater perf node-read: --events, --event-size, --partitions must be > 0 and --windows not empty")
        return 2
    args.batch_size, args.producers, args.mode, args.window = 1000, 1, "stream", 4
    runs = []
    with _service(args) as conn:
        hub = args.hub or f"perf-node-{uuid.uuid4().hex[:8]}"
        if not args.hub:
            asyncio.run(_create_hub(conn, hub, args.partitions))
        try:
            if not args.hub:
                asyncio.run(_produce(conn, hub, args))
            stored = asyncio.run(_stored(conn, hub))
            for window in windows:
                runs.append(_run_node(node, conn, hub, args.partitions, window, args.packed))
        except RuntimeError as exc:
            print(f"headwater perf node-read: the Node reader failed: {exc}")
            return 1
        finally:
            if not args.hub:
                asyncio.run(_delete_hub(conn, hub))
    shape = "packed batches" if args.packed else "one message per event"
    lines = [f"node-read: {runs[0]['events']:,} events of {args.event_size} B from {args.partitions} partitions "
             f"at once, @grpc/grpc-js, {shape}:"]
    for r in runs:
        lines.append(f"  flow-control window {_label(r['window']):>24}: {r['events_per_s']:>12,.0f} events/s, "
                     f"{r['bytes'] / r['seconds'] / 1e6:,.1f} MB/s of bodies")
    print("\n".join(lines))
    if args.json:
        print(json.dumps({"command": "node-read", "stored": stored, "packed": args.packed, "partitions": args.partitions,
                          "event_size": args.event_size,
                          "runs": [{"window": r["window"], "events": r["events"],
                                    "events_per_s": round(r["events_per_s"], 1)} for r in runs]}))
    return 0


def add_perf_commands(perf_subparsers: argparse._SubParsersAction[Any]) -> None:
    p = perf_subparsers.add_parser("node-read", help="read events/s of a Node (grpc-js) client, per flow-control window",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="events to read (default 1,000,000)")
    p.add_argument("--event-size", type=int, default=250, help="body bytes per event (default 250)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the perf hub (default 4)")
    p.add_argument("--windows", default="default,1MiB,16MiB",
                   help="flow-control windows to compare, comma-separated (default: default,1MiB,16MiB)")
    p.add_argument("--packed", action="store_true", help="read packed batches (ReadEventsRequest.packed)")
    p.add_argument("--hub", help="read this existing hub (its --partitions) instead of filling a new one")
    p.add_argument("--address", help="a running ingestion service (host:port, local root policy)")
    p.add_argument("--connection-string", help="a running ingestion service")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=node_read, fsync_policy=None, backend="embedded", nats_url="nats://127.0.0.1:4222")
