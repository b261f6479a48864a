"""The NATS JetStream log backend (the scaled-out profile: ``log_backend: nats``).

Each partition is one JetStream stream (file storage, replicated by the NATS
cluster) with one subject. Each stored batch is one JetStream message holding
the same encoded batch as a segment file does (header, event end positions,
``ReadEventsResponse`` frames), so a publish stays all-or-nothing and a read
still answers with slices of stored bytes.

- Appends are serialized per partition in this process and published with
  ``Nats-Expected-Last-Sequence``: if another writer appended in between, the
  publish is refused and the client gets SERVICE_BUSY (retried) after the index
  is refreshed. One service replica should own a partition's writes.
- The in-memory index (per batch: first sequence, offset, time, message
  sequence, event end positions) and the idempotent producers' state are rebuilt
  from the stream on start.
- Retention is applied by the service (not ``max_age``), purging whole old
  batches but always keeping the newest message, so sequence numbers continue
  after everything expired; expired-but-kept events are not served.
- Hub metadata, consumer groups and checkpoints stay in the service's data folder.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.log.embedded import AppendResult, ProducerTable
from headwater.services.ingestion.log.segment import (
    BATCH_HEADER,
    batch_ends,
    encode_batch,
    slice_batches,
)

__all__ = ["NatsPartitionLog", "stream_name"]

_CACHE_BATCHES = 64


def stream_name(hub: str, partition_id: str) -> tuple[str, str]:
    """JetStream stream and subject of a partition (names limited to [A-Za-z0-9_-])."""
    safe = re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):02x}", hub)
    return f"HW_{safe}_{partition_id}", f"headwater.{safe}.{partition_id}"


class NatsPartitionLog:
    """The log of one partition in a JetStream stream."""

    def __init__(self, js: Any, hub: str, partition_id: str, *, max_payload: int = 1 << 20) -> None:
        self.js = js
        self.partition_id = partition_id
        self.stream, self.subject = stream_name(hub, partition_id)
        self.max_payload = max_payload
        self.seqs = array("q")
        self.offs = array("q")
        self.times = array("q")
        self.msg_seqs = array("q")
        self.ends: list[array] = []
        self.next_sequence = 0
        self.next_offset = 0
        self.last_ts_ns = 0
        self.last_msg_seq = 0
        self.expired_before = 0  # events below this sequence are past retention
        self.producer_table = ProducerTable(partition_id)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self.closed = False

    # -- open / recover ---------------------------------------------------------

    async def open(self) -> NatsPartitionLog:
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            info = await self.js.add_stream(StreamConfig(
                name=self.stream, subjects=[self.subject], storage=StorageType.FILE,
                discard=DiscardPolicy.OLD, duplicate_window=120.0))
        await self._load(info.state.first_seq, info.state.last_seq)
        return self

    async def _load(self, first: int, last: int) -> None:
        from nats.js.errors import NotFoundError

        for msg_seq in range(max(first, self.last_msg_seq + 1), last + 1):
            try:
                msg = await self.js.get_msg(self.stream, msg_seq)
            except NotFoundError:
                continue
            self._index(msg_seq, msg.data)
        self.last_msg_seq = max(self.last_msg_seq, last)

    def _index(self, msg_seq: int, data: bytes) -> None:
        (_, payload_len, _, bseq, count, boff, ts_ns, pseq, pid_len) = BATCH_HEADER.unpack_from(data, 0)
        if self.seqs and bseq < self.next_sequence:
            return  # already indexed
        producer_id = bytes(data[BATCH_HEADER.size:BATCH_HEADER.size + pid_len]).decode() if pid_len else ""
        self.seqs.append(bseq)
        self.offs.append(boff)
        self.times.append(ts_ns)
        self.msg_seqs.append(msg_seq)
        self.ends.append(batch_ends(data))
        self.next_sequence = bseq + count
        self.next_offset = boff + payload_len
        self.last_ts_ns = ts_ns
        self.producer_table.remember(producer_id, pseq, count, bseq, ts_ns)
        self._remember(msg_seq, data)

    def _remember(self, msg_seq: int, data: bytes) -> None:
        self._cache[msg_seq] = data
        self._cache.move_to_end(msg_seq)
        while len(self._cache) > _CACHE_BATCHES:
            self._cache.popitem(last=False)

    # -- properties ---------------------------------------------------------------

    @property
    def beginning_sequence(self) -> int:
        first = self.seqs[0] if self.seqs else self.next_sequence
        return min(max(first, self.expired_before), self.next_sequence)

    @property
    def is_empty(self) -> bool:
        return self.beginning_sequence >= self.next_sequence

    def last_offset(self) -> int:
        if self.is_empty:
            return -1
        ends = self.ends[-1]
        return self.offs[-1] + (ends[-2] if len(ends) > 1 else 0)

    def changed(self) -> asyncio.Event:
        return self._changed

    # -- append -------------------------------------------------------------------

    async def publish(self, events: list[bytes], producer_id: str = "", producer_sequence: int = -1) -> AppendResult:
        from nats.js.errors import APIError

        if self.closed:
            raise HeadwaterError(Reason.SERVICE_BUSY, f"partition {self.partition_id} is closing; retry",
                                 retry_after=0.5)
        async with self._lock:
            duplicate = self.producer_table.check(producer_id, producer_sequence, len(events))
            if duplicate is not None:
                return duplicate
            ts_ns = max(time.time_ns(), self.last_ts_ns)
            batch = encode_batch(events, self.partition_id, self.next_sequence, self.next_offset, ts_ns,
                                 producer_id, producer_sequence)
            if len(batch.data) > self.max_payload:
                raise HeadwaterError(
                    Reason.MESSAGE_SIZE_EXCEEDED,
                    f"the encoded batch of {len(batch.data)} bytes is over the NATS server's max_payload "
                    f"{self.max_payload}; send smaller batches", metadata={"size": len(batch.data),
                                                                          "limit": self.max_payload})
            headers = {"Nats-Expected-Last-Sequence": str(self.last_msg_seq)}
            if producer_id:
                headers["Nats-Msg-Id"] = f"{producer_id}:{producer_sequence}"
            try:
                ack = await self.js.publish(self.subject, batch.data, stream=self.stream, headers=headers)
            except APIError as exc:
                await self.refresh()
                raise HeadwaterError(Reason.SERVICE_BUSY,
                                     f"partition {self.partition_id} changed underneath ({exc}); retry",
                                     retry_after=0.05) from None
            except Exception as exc:  # noqa: BLE001 - connection trouble: nothing acknowledged
                raise HeadwaterError(Reason.SERVICE_BUSY, f"NATS publish failed: {exc}", retry_after=0.5) from None
            if ack.duplicate:  # JetStream's own dedupe (Nats-Msg-Id) saw this batch: answer as stored
                await self.refresh()
                stored = self.producer_table.check(producer_id, producer_sequence, len(events))
                if stored is None:
                    raise HeadwaterError(Reason.SERVICE_BUSY, "duplicate publish not found in the index; retry",
                                         retry_after=0.05)
                return stored
            self._index(ack.seq, batch.data)
            self.last_msg_seq = ack.seq
            self._changed.set()
            self._changed = asyncio.Event()
            return AppendResult(batch.base_sequence, batch.base_sequence + batch.count - 1, ts_ns,
                                bytes_written=batch.payload_len)

    async def durable(self) -> None:
        """JetStream acknowledged the write: nothing more to wait for."""

    async def refresh(self) -> None:
        """Index what other writers appended."""
        info = await self.js.stream_info(self.stream)
        await self._load(info.state.first_seq, info.state.last_seq)

    # -- read -------------------------------------------------------------------------

    async def _batch(self, i: int) -> bytes:
        msg_seq = self.msg_seqs[i]
        data = self._cache.get(msg_seq)
        if data is None:
            data = (await self.js.get_msg(self.stream, msg_seq)).data
            self._remember(msg_seq, data)
        return data

    async def fetch(self, start_sequence: int, max_events: int, max_bytes: int = 4 << 20) -> tuple[list, int, int]:
        begin = self.beginning_sequence
        start_sequence = max(start_sequence, begin)
        if start_sequence >= self.next_sequence:
            return [], 0, start_sequence
        i = max(bisect_right(self.seqs, start_sequence) - 1, 0)
        pieces: list = []
        got = 0
        size = 0
        while i < len(self.seqs) and got < max_events and size < max_bytes:
            data = await self._batch(i)
            p, n = slice_batches(data, start_sequence, max_events - got)
            pieces.extend(p)
            got += n
            size += len(data)
            start_sequence += n
            i += 1
        return pieces, got, start_sequence

    def sequence_for_offset(self, offset: int, inclusive: bool) -> int:
        if offset < 0 or not self.seqs:
            return self.beginning_sequence
        if offset >= self.next_offset:
            return self.next_sequence
        i = max(bisect_right(self.offs, offset) - 1, 0)
        rel = offset - self.offs[i]
        k = 1 + bisect_left(self.ends[i], rel) if rel > 0 else 0
        seq = self.seqs[i] + k
        if not inclusive and seq < self.next_sequence and self._offset_of(seq) == offset:
            seq += 1
        return seq

    def _offset_of(self, sequence: int) -> int:
        i = bisect_right(self.seqs, sequence) - 1
        k = sequence - self.seqs[i]
        return self.offs[i] + (self.ends[i][k - 1] if k > 0 else 0)

    def sequence_for_time(self, ts_ns: int) -> int:
        b = bisect_left(self.times, ts_ns)
        seq = self.seqs[b] if b < len(self.seqs) else self.next_sequence
        return max(seq, self.beginning_sequence)

    # -- retention and shutdown -----------------------------------------------------

    async def apply_retention(self, cutoff_ns: int) -> int:
        """Purge whole batches older than ``cutoff_ns``, keeping the newest message."""
        before = self.beginning_sequence
        keep = bisect_left(self.times, cutoff_ns)  # first batch to keep
        if keep >= len(self.seqs):  # everything expired: keep the newest message, serve nothing
            self.expired_before = self.next_sequence
            keep = len(self.seqs) - 1
        if keep > 0:
            await self.js.purge_stream(self.stream, seq=self.msg_seqs[keep])
            for arr in (self.seqs, self.offs, self.times, self.msg_seqs):
                del arr[:keep]
            del self.ends[:keep]
        return self.beginning_sequence - before

    def close(self, sync: bool = True) -> None:
        self.closed = True
        self._changed.set()

    async def destroy(self) -> None:
        self.close()
        try:
            await self.js.delete_stream(self.stream)
        except Exception:  # noqa: BLE001 - already gone
            pass


def nats_hub_store(base):
    """A HubStore whose partitions live in JetStream (metadata stays in the data folder)."""

    class NatsHubStore(base):
        def __init__(self, root, *, nats_url: str, **kwargs: Any) -> None:
            super().__init__(root, **kwargs)
            self.nats_url = nats_url
            self.nc = None
            self.js = None

        async def _connect(self) -> None:
            import nats

            try:
                self.nc = await nats.connect(self.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
            except Exception as exc:  # noqa: BLE001
                raise HeadwaterError(Reason.SERVICE_BUSY,
                                     f"cannot reach NATS at {self.nats_url} (setting nats_url): {exc}") from None
            self.js = self.nc.jetstream()

        async def _open_partitions(self, meta, folder):
            from headwater.services.ingestion.hubs import Hub

            parts = [await NatsPartitionLog(self.js, meta.name, str(i), max_payload=self.nc.max_payload).open()
                     for i in range(meta.partition_count)]
            return Hub(meta, folder, parts)

        def open(self):
            raise RuntimeError("use open_async() with the NATS backend")

        async def open_async(self):
            import json

            from headwater.services.ingestion.hubs import HubMeta

            await self._connect()
            self.root.mkdir(parents=True, exist_ok=True)
            for folder in sorted(self.root.iterdir()):
                meta_path = folder / "hub.json"
                if folder.name.startswith(".") or not meta_path.exists():
                    continue
                meta = HubMeta.from_json(json.loads(meta_path.read_text()))
                self.hubs[meta.name] = await self._open_partitions(meta, folder)
            return self

        async def create_async(self, hub_id, partition_count, retention_s, **kwargs):
            existing, meta, folder = self._prepare(hub_id, partition_count, retention_s, **kwargs)
            if existing is not None:
                return existing, False
            hub = await self._open_partitions(meta, folder)
            hub.save()
            self.hubs[hub_id] = hub
            return hub, True

        async def delete_async(self, hub_id):
            hub = self.get(hub_id)
            for part in hub.partitions:
                await part.destroy()
            for part in hub.partitions:
                part.closed = True
            del self.hubs[hub_id]
            import shutil

            shutil.rmtree(hub.folder, ignore_errors=True)
            return hub

        def close(self) -> None:
            for hub in self.hubs.values():
                for part in hub.partitions:
                    part.close()

        async def close_async(self) -> None:
            self.close()
            if self.nc is not None:
                await self.nc.close()

    return NatsHubStore
