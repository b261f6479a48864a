"""Capture: each partition's events written to Avro files per time window.

Files use the Event Hubs Capture record layout (``SequenceNumber``, ``Offset``,
``EnqueuedTimeUtc``, ``SystemProperties``, ``Properties``, ``Body``) and the
default path ``{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}.avro``
under the hub's ``destination`` (default ``<data_dir>/capture``), which must lie
under the service's ``allowed_paths`` (default its data folder); the rendered
``archive_name_format`` must stay inside the destination. A window is
closed when ``interval`` has passed or ``size_limit_bytes`` are pending. How far
each partition was captured is kept in ``capture-state.json`` (written after
the file is in place: at-least-once, as Event Hubs Capture).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from pathlib import Path

import fastavro

from headwater.errors import HeadwaterError, Reason
from headwater.paths import allowed_roots, confine
from headwater.secrets import write_private
from headwater.services.ingestion import metrics as m
from headwater.storage import atomic_file
from headwater.v1 import ingestion_pb2

__all__ = ["CAPTURE_GROUP", "CAPTURE_SCHEMA", "DEFAULT_FORMAT", "CaptureWriter", "check_capture"]

log = logging.getLogger("headwater.ingestion.capture")

#: On a shared log (NATS), Capture's progress and lease are this group's checkpoints and claims.
CAPTURE_GROUP = "$Capture"

DEFAULT_FORMAT = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"

CAPTURE_SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
        {"name": "Body", "type": ["null", "bytes"]},
    ],
})


def _render(fmt: str, namespace: str, hub: str, partition: str, now: dt.datetime) -> str:
    return fmt.format(Namespace=namespace, EventHub=hub, PartitionId=partition, Year=f"{now:%Y}",
                      Month=f"{now:%m}", Day=f"{now:%d}", Hour=f"{now:%H}", Minute=f"{now:%M}", Second=f"{now:%S}")


def _inside(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def check_capture(cap: dict, config) -> dict:
    """A hub's capture settings with ``destination`` confined to ``allowed_paths`` (INVALID_ARGUMENT
    naming the field) and an ``archive_name_format`` that renders inside it."""
    if not cap:
        return cap
    if cap.get("destination"):
        cap["destination"] = str(confine(cap["destination"], allowed_roots(config), "hub.capture.destination"))
    fmt = cap.get("archive_name_format") or ""
    if fmt:
        try:
            rel = _render(fmt, "ns", "hub", "0", dt.datetime.now(dt.UTC))
        except (KeyError, IndexError, ValueError) as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"hub.capture.archive_name_format {fmt!r}: unknown token "
                                 f"{exc} (use {{Namespace}} {{EventHub}} {{PartitionId}} {{Year}} {{Month}} {{Day}} "
                                 "{Hour} {Minute} {Second})", metadata={"field": "hub.capture.archive_name_format"}) from None
        if not _inside(rel):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"hub.capture.archive_name_format {fmt!r} leads outside "
                                 "the destination", metadata={"field": "hub.capture.archive_name_format"})
    return cap


class CaptureWriter:
    """Writes capture files for every hub with capture enabled."""

    def __init__(self, default_root: Path, namespace: str = "headwater", roots: list[Path] | None = None) -> None:
        self.default_root = Path(default_root)
        self.roots = roots
        self.namespace = namespace if namespace not in ("127.0.0.1", "0.0.0.0", "::") else "localhost"
        self.state_path = self.default_root / "capture-state.json"
        self.state: dict[str, int] = {}
        self.window_start: dict[str, float] = {}
        self.instance_id = f"capture-{uuid.uuid4().hex[:12]}"
        if self.state_path.exists():
            try:
                self.state = json.loads(self.state_path.read_text())
            except ValueError:
                self.state = {}

    def notify(self, hub, part) -> None:
        self.window_start.setdefault(f"{hub.name}/{part.partition_id}", time.monotonic())

    async def run(self, hubs, tick_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(tick_s)
            try:
                await self.flush_due_async(hubs)
            except Exception:
                log.exception("capture failed")

    async def flush_due_async(self, hubs, force: bool = False) -> int:
        """:meth:`flush_due`, plus the partitions of a shared log (NATS): each captured by
        one instance at a time (an ownership claim of the ``$Capture`` group), its progress
        a ``$Capture`` checkpoint in the shared metadata store."""
        written = self.flush_due(hubs, force)
        for hub in await hubs.list_async():  # every hub of the shared store, not only those used here
            cap = hub.meta.capture or {}
            if cap.get("enabled") and any(not hasattr(p, "segments") for p in hub.partitions):
                written += await self._flush_shared(hubs.metadata, hub, cap, force)
        return written

    async def _flush_shared(self, metadata, hub, cap: dict, force: bool) -> int:
        done = {c.partition_id: c for c in await metadata.list_checkpoints(hub.name, CAPTURE_GROUP)}
        owners = {o.partition_id: o for o in await metadata.list_ownership(hub.name, CAPTURE_GROUP)}
        written = 0
        now = time.time()
        for part in hub.partitions:
            pid = part.partition_id
            await part.refresh()
            cp = done.get(pid)
            first = max(cp.sequence_number if cp else part.beginning_sequence, part.beginning_sequence)
            if part.next_sequence <= first:
                continue
            owner = owners.get(pid)
            if owner is not None and owner.owner_id != self.instance_id and owner.expire_time > now:
                continue  # another instance captures this partition
            if await metadata.claim(hub.name, CAPTURE_GROUP, pid, self.instance_id,
                                    owner.etag if owner else "") is None:
                continue
            since = cp.update_time if cp else hub.meta.create_time
            pending = part.next_offset - (cp.offset if cp else 0)
            if not (force or now - since >= cap.get("interval_s", 300.0)
                    or pending >= cap.get("size_limit_bytes", 300 << 20)):
                continue
            records, seq, offset = [], first, cp.offset if cp else 0
            while seq < part.next_sequence:
                pieces, n, seq = await part.fetch(seq, 5000)
                if not n:
                    break
                records += self._records(b"".join(pieces))
                offset = part.next_offset if seq >= part.next_sequence else offset
            if records and self._write_file(hub, part, cap, records):
                await metadata.update_checkpoint(hub.name, CAPTURE_GROUP, pid, offset, seq)
                written += 1
        return written

    def flush_due(self, hubs, force: bool = False) -> int:
        written = 0
        now = time.monotonic()
        for hub in hubs.list():
            cap = hub.meta.capture or {}
            if not cap.get("enabled"):
                continue
            for part in hub.partitions:
                if not hasattr(part, "segments"):
                    continue  # Capture reads the embedded log only
                key = f"{hub.name}/{part.partition_id}"
                start = self.window_start.get(key)
                done = self.state.get(key, part.beginning_sequence)
                if part.next_sequence <= done:
                    continue
                first = max(done, part.beginning_sequence)
                pending = part.next_offset - part.segment_for(first).offset_of(first) if first < part.next_sequence else 0
                due = (force or start is None or now - start >= cap.get("interval_s", 300.0)
                       or pending >= cap.get("size_limit_bytes", 300 << 20))
                if not due:
                    continue
                written += self._write(hub, part, cap, max(done, part.beginning_sequence))
                self.window_start.pop(key, None)
        return written

    def flush_all(self, hubs) -> None:
        try:
            self.flush_due(hubs, force=True)
        except Exception:
            log.exception("capture flush at shutdown failed")

    def _write(self, hub, part, cap: dict, start_seq: int) -> int:
        records = []
        seq = start_seq
        while seq < part.next_sequence:
            pieces, n, seq = part.read(seq, 5000)
            if not n:
                break
            records += self._records(b"".join(pieces))
        if not records or not self._write_file(hub, part, cap, records):
            return 0
        self.state[f"{hub.name}/{part.partition_id}"] = seq
        write_private(self.state_path, json.dumps(self.state).encode())
        return 1

    @staticmethod
    def _records(frames: bytes) -> list[dict]:
        records = []
        for e in ingestion_pb2.ReadEventsResponse.FromString(frames).events:
            when = e.enqueued_time.ToDatetime(tzinfo=dt.UTC)
            records.append({
                "SequenceNumber": e.sequence_number, "Offset": str(e.offset),
                "EnqueuedTimeUtc": when.strftime("%m/%d/%Y %I:%M:%S %p"),
                "SystemProperties": {"x-opt-sequence-number": e.sequence_number,
                                     "x-opt-offset": str(e.offset),
                                     "x-opt-enqueued-time": int(e.enqueued_time.ToMilliseconds()),
                                     # The service's own precision: a replay of the file through a job
                                     # (a file input) gives events the arrival times the live job saw.
                                     "x-opt-enqueued-time-us": int(e.enqueued_time.ToMicroseconds()),
                                     **({"x-opt-partition-key": e.event.partition_key}
                                        if e.event.partition_key else {})},
                "Properties": dict(e.event.properties), "Body": e.event.body})
        return records

    def _write_file(self, hub, part, cap: dict, records: list[dict]) -> bool:
        now = dt.datetime.now(dt.UTC)
        fmt = cap.get("archive_name_format") or DEFAULT_FORMAT
        rel = _render(fmt, self.namespace, hub.name, str(part.partition_id), now)
        root = Path(cap.get("destination") or self.default_root)
        if cap.get("destination") and self.roots is not None:
            root = confine(root, self.roots, "hub.capture.destination")  # set before the roots changed?
        if not _inside(rel) or not (root / rel).resolve().is_relative_to(root.resolve()):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"hub {hub.name}: capture path {rel!r} leads outside "
                                 f"the destination", metadata={"field": "hub.capture.archive_name_format"})
        path = root / f"{rel}.avro"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path = path.with_name(f"{path.stem}-{records[0]['SequenceNumber']}.avro")
        with atomic_file(path) as fh:
            fastavro.writer(fh, CAPTURE_SCHEMA, records, codec="deflate")
        m.CAPTURE_FILES.labels(hub.name).inc()
        return True
