"""Retention: a background sweep deleting whole segments older than each hub's
retention, and the interval fsync of the ``interval`` policy."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time

from headwater.services.ingestion import metrics as m
from headwater.services.ingestion.hubs import HubStore

__all__ = ["fsync_loop", "retention_loop", "sweep"]

log = logging.getLogger("headwater.ingestion.retention")


async def sweep(hubs: HubStore, now_ns: int | None = None) -> int:
    """Apply every hub's retention once; returns the events removed."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    removed = 0
    for hub in hubs.list():
        cutoff = now_ns - int(hub.meta.retention_s * 1e9)
        for part in hub.partitions:
            n = part.apply_retention(cutoff)
            if inspect.isawaitable(n):  # the NATS backend purges over the network
                n = await n
            if n:
                m.RETENTION_DELETED.labels(hub.name, part.partition_id).inc(n)
                log.info("retention removed events",
                         extra={"fields": {"hub": hub.name, "partition": part.partition_id, "events": n}})
            removed += n
    return removed


async def retention_loop(hubs: HubStore, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await sweep(hubs)
        except Exception:
            log.exception("retention sweep failed")


async def fsync_loop(hubs: HubStore, every_ms: int) -> None:
    """Sync dirty segments every ``every_ms`` (fsync_policy interval)."""
    while True:
        await asyncio.sleep(every_ms / 1000)
        parts = [p for h in hubs.list() for p in h.partitions
                 if not p.closed and any(s.dirty for s in getattr(p, "segments", ()))]
        for part in parts:
            try:
                await asyncio.to_thread(part.sync_now)
            except (OSError, ValueError):
                log.exception("fsync failed for partition %s", part.partition_id)
