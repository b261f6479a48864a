"""The embedded log: one folder of segment files per partition.

:class:`PartitionLog` appends batches to the active segment, rolls segments at
a size or age limit, serves reads by slicing stored bytes, recovers after a
crash (cutting a torn tail, rebuilding indexes and the idempotent producers'
state from batch headers) and deletes whole old segments for retention.

Durability (setting ``fsync_policy``):

- ``every_batch``: an append is acknowledged after ``fdatasync`` of its bytes
  (group commit: concurrent appends share one sync). Survives power loss.
- ``interval`` (default): bytes are written to the file before the
  acknowledgement and synced every ``fsync_interval_ms``. Survives kill -9 of
  the service (the OS has the bytes); a power loss may lose the last interval.
- ``never``: the OS decides when to write back. Survives kill -9 only.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.log.segment import BatchInfo, Segment, encode_batch

__all__ = ["AppendResult", "FsyncPolicy", "PartitionLog", "ProducerTable"]

log = logging.getLogger("headwater.ingestion.log")

_PRODUCER_HISTORY = 5


class FsyncPolicy(enum.StrEnum):
    """When appended bytes are forced to disk."""

    EVERY_BATCH = "every_batch"
    INTERVAL = "interval"
    NEVER = "never"


@dataclass(frozen=True)
class AppendResult:
    """Where a batch went."""

    first_sequence: int
    last_sequence: int
    ts_ns: int
    duplicate: bool = False
    bytes_written: int = 0


@dataclass(frozen=True)
class _ProducerBatch:
    producer_sequence: int
    count: int
    first_sequence: int
    ts_ns: int


class ProducerTable:
    """Idempotent producers of one partition: their last few batches."""

    def __init__(self, partition_id: str) -> None:
        self.partition_id = partition_id
        self.producers: dict[str, deque[_ProducerBatch]] = {}

    def check(self, producer_id: str, producer_sequence: int, count: int) -> AppendResult | None:
        """The stored result when this batch is a retry; raises when out of order."""
        if not producer_id:
            return None
        hist = self.producers.get(producer_id)
        if not hist:
            if producer_sequence < 0:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "producer_sequence must be >= 0 with a producer_id",
                                     metadata={"field": "producer_sequence"})
            return None
        for old in hist:
            if old.producer_sequence == producer_sequence and old.count == count:
                return AppendResult(old.first_sequence, old.first_sequence + old.count - 1, old.ts_ns,
                                    duplicate=True)
        last = hist[-1]
        expected = last.producer_sequence + last.count
        if producer_sequence != expected:
            raise HeadwaterError(
                Reason.PRECONDITION_FAILED,
                f"producer {producer_id!r} sent sequence {producer_sequence} to partition "
                f"{self.partition_id}; the next expected is {expected}",
                metadata={"expected": expected, "producer_id": producer_id})
        return None

    def remember(self, producer_id: str, producer_sequence: int, count: int, first_sequence: int,
                 ts_ns: int) -> None:
        if not producer_id:
            return
        hist = self.producers.get(producer_id)
        if hist is None:
            hist = self.producers[producer_id] = deque(maxlen=_PRODUCER_HISTORY)
        hist.append(_ProducerBatch(producer_sequence, count, first_sequence, ts_ns))


class PartitionLog:
    """The log of one partition."""

    def __init__(self, folder: Path, partition_id: str, *, segment_max_bytes: int = 64 << 20,
                 segment_max_age_s: float = 3600.0, fsync_policy: FsyncPolicy = FsyncPolicy.INTERVAL) -> None:
        self.folder = Path(folder)
        self.partition_id = partition_id
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_ns = int(segment_max_age_s * 1e9)
        self.fsync_policy = FsyncPolicy(fsync_policy)
        self.segments: list[Segment] = []
        self.producer_table = ProducerTable(partition_id)
        self._changed = asyncio.Event() if _has_loop() else None
        self._sync_task: asyncio.Future | None = None
        self._synced: dict[int, int] = {}  # id(segment) -> synced size
        self.last_ts_ns = 0
        self.closed = False

    # -- open / recover -------------------------------------------------------

    def open(self) -> PartitionLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = sorted(self.folder.glob("*.seg"))
        expected_seq: int | None = None
        for path in paths:
            try:
                seg = Segment.open(path, self._recover_batch)
            except (ValueError, OSError) as exc:
                log.warning("skipping unreadable segment %s: %s", path, exc)
                continue
            if expected_seq is not None and seg.base_sequence != expected_seq:
                # A later segment that does not continue the log (a crash while
                # rolling): keep the log gap-free by dropping it and what follows.
                log.warning("segment %s does not continue the log at %d; removed", path, expected_seq)
                seg.close()
                path.unlink()
                continue
            self.segments.append(seg)
            expected_seq = seg.next_sequence
        if not self.segments:
            self.segments.append(Segment.create(self.folder, 0, 0))
        for seg in self.segments:
            self._synced[id(seg)] = seg.size
        self.last_ts_ns = max((s.last_ts_ns for s in self.segments), default=0)
        return self

    def _recover_batch(self, info: BatchInfo) -> None:
        self.producer_table.remember(info.producer_id, info.producer_sequence, info.count, info.base_sequence,
                                     info.ts_ns)

    @property
    def producers(self) -> dict:
        return self.producer_table.producers

    # -- properties -----------------------------------------------------------

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    @property
    def next_sequence(self) -> int:
        return self.active.next_sequence

    @property
    def next_offset(self) -> int:
        return self.active.next_offset

    @property
    def beginning_sequence(self) -> int:
        for seg in self.segments:
            if not seg.empty:
                return seg.seqs[0]
        return self.next_sequence

    @property
    def is_empty(self) -> bool:
        return self.beginning_sequence >= self.next_sequence

    def last_offset(self) -> int:
        if self.next_sequence == 0:
            return -1
        if self.is_empty:
            return -1
        return self.segment_for(self.next_sequence - 1).offset_of(self.next_sequence - 1)

    def changed(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # -- append ---------------------------------------------------------------

    def append(self, events: list[bytes], producer_id: str = "", producer_sequence: int = -1) -> AppendResult:
        """Append one batch (all or nothing). Raises PRECONDITION_FAILED for an
        idempotent producer's out-of-order sequence."""
        if self.closed:
            raise HeadwaterError(Reason.SERVICE_BUSY, f"partition {self.partition_id} is closing; retry",
                                 retry_after=0.5)
        duplicate = self.producer_table.check(producer_id, producer_sequence, len(events))
        if duplicate is not None:
            return duplicate
        seg = self.active
        now = time.time_ns()
        ts_ns = max(now, self.last_ts_ns)  # enqueued times never go backwards
        if seg.size >= self.segment_max_bytes or (
                not seg.empty and now - seg.first_ts_ns() > self.segment_max_age_ns):
            seg = self._roll()
        batch = encode_batch(events, self.partition_id, seg.next_sequence, seg.next_offset, ts_ns,
                             producer_id, producer_sequence)
        try:
            seg.append(batch)
        except OSError as exc:
            # Nothing acknowledged; cut whatever part of the batch reached the file.
            try:
                os.ftruncate(seg.fd, seg.size)
            except OSError:
                pass
            raise HeadwaterError(Reason.SERVICE_BUSY, f"could not write partition {self.partition_id}: {exc}",
                                 retry_after=1.0) from None
        self.last_ts_ns = ts_ns
        self.producer_table.remember(producer_id, producer_sequence, batch.count, batch.base_sequence, ts_ns)
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        return AppendResult(batch.base_sequence, batch.base_sequence + batch.count - 1, ts_ns,
                            bytes_written=batch.payload_len)

    async def publish(self, events: list[bytes], producer_id: str = "", producer_sequence: int = -1) -> AppendResult:
        """Append and, under ``every_batch``, wait for the sync (the servicer's entry point)."""
        result = self.append(events, producer_id, producer_sequence)
        if not result.duplicate:
            await self.durable()
        return result

    async def locate_offset(self, offset: int, inclusive: bool) -> int:
        """The sequence number at ``offset`` (the log contract shared with the NATS backend)."""
        return self.sequence_for_offset(offset, inclusive)

    async def locate_time(self, ts_ns: int) -> int:
        """The first sequence number enqueued at or after ``ts_ns``."""
        return self.sequence_for_time(ts_ns)

    async def refresh(self) -> None:
        """Nothing to catch up on: this process is the partition's only writer."""

    async def fetch(self, start_sequence: int, max_events: int, max_bytes: int = 4 << 20) -> tuple[list, int, int]:
        """:meth:`read` for the servicer (the NATS backend's read is asynchronous)."""
        return self.read(start_sequence, max_events, max_bytes)

    def _roll(self) -> Segment:
        old = self.active
        old.sync()
        self._synced[id(old)] = old.size
        seg = Segment.create(self.folder, old.next_sequence, old.next_offset)
        self.segments.append(seg)
        self._synced[id(seg)] = seg.size
        return seg

    async def durable(self) -> None:
        """Wait until everything appended so far is synced (``every_batch``)."""
        if self.fsync_policy is not FsyncPolicy.EVERY_BATCH:
            return
        seg = self.active
        want = seg.size
        while self._synced.get(id(seg), 0) < want:
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.ensure_future(self._sync(seg))
            await asyncio.shield(self._sync_task)

    async def _sync(self, seg: Segment) -> None:
        upto = seg.size
        await asyncio.to_thread(seg.sync)
        seg.dirty = seg.size != upto
        self._synced[id(seg)] = max(self._synced.get(id(seg), 0), upto)

    def sync_now(self) -> None:
        for seg in self.segments:
            if seg.dirty:
                upto = seg.size
                seg.sync()
                seg.dirty = seg.size != upto
                self._synced[id(seg)] = upto

    # -- read -----------------------------------------------------------------

    def segment_for(self, sequence: int) -> Segment:
        for seg in reversed(self.segments):
            if seg.base_sequence <= sequence:
                return seg
        return self.segments[0]

    def read(self, start_sequence: int, max_events: int, max_bytes: int = 4 << 20) -> tuple[list, int, int]:
        """Stored frames from ``start_sequence``: (pieces, event count, next sequence).

        Reading before the beginning starts at the beginning.
        """
        begin = self.beginning_sequence
        start_sequence = max(start_sequence, begin)
        pieces: list = []
        got = 0
        seq = start_sequence
        for seg in self.segments:
            if seg.next_sequence <= seq or seg.empty:
                continue
            p, n = seg.read(seq, max_events - got, max_bytes)
            pieces.extend(p)
            got += n
            seq += n
            if got >= max_events or seq < seg.next_sequence:
                break
        return pieces, got, seq

    def sequence_for_offset(self, offset: int, inclusive: bool) -> int:
        if offset < 0:
            return self.beginning_sequence
        seg = self.segments[0]
        for s in self.segments:
            if s.base_offset <= offset:
                seg = s
        if offset >= self.next_offset:
            return self.next_sequence
        seq = seg.sequence_at_offset(offset)
        if not inclusive and seq < self.next_sequence and seg.offset_of(seq) == offset:
            seq += 1
        return seq

    def sequence_for_time(self, ts_ns: int) -> int:
        for seg in self.segments:
            if not seg.empty and seg.last_ts_ns >= ts_ns:
                return max(seg.sequence_at_time(ts_ns), self.beginning_sequence)
        return self.next_sequence

    # -- retention and shutdown -----------------------------------------------

    def apply_retention(self, cutoff_ns: int) -> int:
        """Delete whole segments whose newest event is older than ``cutoff_ns``.

        Returns the number of events removed. The newest segment is rolled first
        when it is old, so that it too can go.
        """
        if not self.active.empty and self.active.last_ts_ns < cutoff_ns:
            self._roll()
        removed = 0
        while len(self.segments) > 1 and not self.segments[0].empty and self.segments[0].last_ts_ns < cutoff_ns:
            seg = self.segments.pop(0)
            removed += seg.next_sequence - seg.base_sequence
            seg.close()
            self._synced.pop(id(seg), None)
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
        while len(self.segments) > 1 and self.segments[0].empty:
            seg = self.segments.pop(0)
            seg.close()
            seg.path.unlink(missing_ok=True)
        return removed

    def close(self, sync: bool = True) -> None:
        self.closed = True
        for seg in self.segments:
            if sync and seg.dirty:
                try:
                    seg.sync()
                except OSError:
                    pass
            seg.close()
        if self._changed is not None:
            self._changed.set()

    def destroy(self) -> None:
        self.close(sync=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
