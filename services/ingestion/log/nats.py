"""The NATS JetStream backend (``log_backend: nats``): partitions as streams.

Each partition is one JetStream stream (file storage, ``nats_replicas``
replicas, direct get allowed) with one subject. Each stored batch is one
JetStream message holding the same encoded batch as a segment file does
(header, event end positions, ``ReadEventsResponse`` frames), so a publish stays
all-or-nothing and a read answers with slices of stored bytes. The batch's
position is also in the message headers (``Hw-Seq``, ``Hw-Count``, ``Hw-Off``,
``Hw-End``, ``Hw-Last``, ``Hw-Ts``, ``Hw-Pid``, ``Hw-PSeq``).

Any number of ingestion instances share a partition; none keeps state that the
others need:

- **Order.** An append names the stream's last message sequence it saw
  (``Nats-Expected-Last-Sequence``); if another instance appended in between,
  JetStream refuses it, this instance reads the new tail (one direct get of the
  last message) and appends again with the next numbers. Every publish
  succeeds, in one order, with gapless sequence numbers and offsets.
- **Idempotent producers.** A batch with a producer id carries
  ``Nats-Msg-Id: <producer id>:<producer sequence>:<count>``; JetStream drops a
  repeat inside the stream's duplicate window (``nats_duplicate_window_s``,
  default 2 minutes) and names the stored message, whose header gives the
  original sequence numbers. The out-of-order check (PRECONDITION_FAILED) uses
  the producers seen in the headers of the recent messages.
- **No scan on start.** Opening a partition reads the stream's state and its
  first and last messages; reading from a sequence number, offset or time
  binary-searches message sequences (each probe one direct get, cached).
- **Live readers.** A headers-only ordered consumer per open partition follows
  the tail, so a reader on any instance wakes on events appended through any
  other; no polling. It is created in the background, again until it is: for
  up to ~30 s after a NATS node dies, JetStream may place an ephemeral consumer
  on the dead node and its creation times out; between attempts the partition
  reads the stream's tail directly.
- **Patient start.** Just after a node dies, the streams and buckets whose
  leader it was answer only once a new leader is elected (seconds); opening a
  partition or bucket tries again, with backoff, for up to ``PATIENCE_S``.
- **Retention** purges whole old batches. When everything expired, a marker
  batch of no events is appended first and kept, so numbering continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.hubs import Hub, HubMeta, HubStore
from headwater.services.ingestion.log.embedded import AppendResult, ProducerTable
from headwater.services.ingestion.log.segment import BATCH_HEADER, batch_ends, encode_batch, slice_batches

__all__ = ["NatsConnection", "NatsHubStore", "NatsPartitionLog", "delete_prefix", "stream_name"]

log = logging.getLogger("headwater.ingestion.nats")

_CACHE_BATCHES = 8  # batches a partition keeps even over the instance's cache budget
_INFO_CACHE = 65536
_PRODUCER_REPLAY = 2000  # recent messages whose producers are replayed when a partition opens
_APPEND_ATTEMPTS = 200
_WRONG_LAST_SEQUENCE = 10071
#: Seconds a start-up call to JetStream is tried again while it times out (a leader
#: being elected after a node died).
PATIENCE_S = 60.0


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):02x}", text)


def stream_name(hub: str, partition_id: str, prefix: str = "HW") -> tuple[str, str]:
    """JetStream stream and subject of a partition (names limited to [A-Za-z0-9_-])."""
    safe = _safe(hub)
    if prefix == "HW":  # the names streams had before prefixes were configurable
        return f"HW_{safe}_{partition_id}", f"headwater.{safe}.{partition_id}"
    return f"{prefix}_{safe}_{partition_id}", f"hw.{prefix}.{safe}.{partition_id}"


@dataclass(frozen=True)
class _Info:
    """Where one stored batch is: from its data or its headers."""

    seq: int
    count: int
    off: int
    end: int  # offset after the batch
    last: int  # offset of the last event (-1 when the batch is empty)
    ts: int
    producer_id: str
    producer_sequence: int

    @classmethod
    def of_data(cls, data: bytes) -> _Info:
        (_, payload_len, _, bseq, count, boff, ts_ns, pseq, pid_len) = BATCH_HEADER.unpack_from(data, 0)
        pid = bytes(data[BATCH_HEADER.size:BATCH_HEADER.size + pid_len]).decode() if pid_len else ""
        ends = batch_ends(data)
        last = boff + (ends[-2] if count > 1 else 0) if count else -1
        return cls(bseq, count, boff, boff + payload_len, last, ts_ns, pid, pseq)

    @classmethod
    def of_headers(cls, h: dict) -> _Info:
        return cls(int(h["Hw-Seq"]), int(h["Hw-Count"]), int(h["Hw-Off"]), int(h["Hw-End"]), int(h["Hw-Last"]),
                   int(h["Hw-Ts"]), h.get("Hw-Pid", ""), int(h.get("Hw-PSeq", "-1")))

    def headers(self) -> dict[str, str]:
        h = {"Hw-Seq": str(self.seq), "Hw-Count": str(self.count), "Hw-Off": str(self.off),
             "Hw-End": str(self.end), "Hw-Last": str(self.last), "Hw-Ts": str(self.ts)}
        if self.producer_id:
            h["Hw-Pid"], h["Hw-PSeq"] = self.producer_id, str(self.producer_sequence)
        return h


class NatsConnection:
    """One connection to NATS for an ingestion instance: its settings and names."""

    def __init__(self, url: str, *, prefix: str = "HW", replicas: int = 1, duplicate_window_s: float = 120.0,
                 cache_mb: int = 256) -> None:
        self.url = url
        self.cache_bytes = cache_mb << 20
        self.cached = 0
        self.prefix = prefix
        self.replicas = replicas
        self.duplicate_window_s = duplicate_window_s
        self.nc: Any = None
        self.js: Any = None

    async def connect(self) -> NatsConnection:
        import nats

        try:
            self.nc = await nats.connect(self.url.split(","), connect_timeout=5, max_reconnect_attempts=-1,
                                         reconnect_time_wait=0.2, pending_size=64 << 20)
        except Exception as exc:  # noqa: BLE001
            raise HeadwaterError(Reason.SERVICE_BUSY,
                                 f"cannot reach NATS at {self.url} (setting nats_url): {exc}") from None
        self.js = self.nc.jetstream(timeout=5)
        return self

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    async def patient(self, op, what: str, within_s: float = PATIENCE_S):
        """``await op()``, again with backoff while JetStream does not answer in time or
        is unavailable (a stream or meta leader being elected); SERVICE_BUSY naming
        ``what`` after ``within_s``."""
        import nats.errors
        import nats.js.errors

        deadline = time.monotonic() + within_s
        delay = 0.1
        while True:
            try:
                return await op()
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError) as exc:
                if time.monotonic() + delay > deadline:
                    raise HeadwaterError(Reason.SERVICE_BUSY,
                                         f"NATS did not answer {what} within {within_s:g} s: {exc!r}") from None
                log.warning("NATS did not answer %s (%r); trying again", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None


class NatsPartitionLog:
    """The log of one partition in a JetStream stream, shared by every instance."""

    def __init__(self, conn: NatsConnection, hub: str, partition_id: str) -> None:
        self.conn = conn
        self.js = conn.js
        self.partition_id = partition_id
        self.stream, self.subject = stream_name(hub, partition_id, conn.prefix)
        self.max_payload = conn.max_payload
        self.next_sequence = 0
        self.next_offset = 0
        self.last_ts_ns = 0
        self.last_msg_seq = 0
        self._last_offset = -1
        self.first_msg_seq = 0
        self._begin = 0  # first event sequence still stored
        self.producer_table = ProducerTable(partition_id)
        self._producers_upto = 0  # message sequence the producer table has seen
        self._replayed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._data: OrderedDict[int, bytes] = OrderedDict()
        self._infos: OrderedDict[int, _Info] = OrderedDict()
        self._hints: OrderedDict[int, int] = OrderedDict()  # event sequence -> message holding it
        self._follower: Any = None
        self._following: asyncio.Task | None = None
        self.direct = True
        self.closed = False

    # -- open ---------------------------------------------------------------------

    async def open(self) -> NatsPartitionLog:
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import APIError, NotFoundError

        async def state():
            for attempt in range(5):
                try:
                    return await self.js.stream_info(self.stream)
                except NotFoundError:
                    pass
                try:
                    return await self.js.add_stream(StreamConfig(
                        name=self.stream, subjects=[self.subject], storage=StorageType.FILE, discard=DiscardPolicy.OLD,
                        duplicate_window=self.conn.duplicate_window_s, num_replicas=self.conn.replicas,
                        allow_direct=True))
                except APIError as exc:
                    # Another instance creating the same stream at the same moment makes
                    # JetStream answer "error creating store for stream" (10049) or "stream
                    # name already in use" (10058) here: the stream is (about to be) there.
                    if attempt == 4:
                        raise
                    log.info("stream %s: creating it raced another instance (%r); reading it again", self.stream, exc)
                    await asyncio.sleep(0.05 * (attempt + 1))
            raise AssertionError("unreachable")

        info = await self.conn.patient(state, f"opening stream {self.stream}")
        self.direct = bool(info.config.allow_direct)
        await self.conn.patient(lambda: self._sync(info.state), f"reading stream {self.stream}")
        self._producers_upto = max(self.first_msg_seq - 1, self.last_msg_seq - _PRODUCER_REPLAY, 0)
        if self.last_msg_seq <= self._producers_upto:
            self._replayed.set()
        self._following = asyncio.get_running_loop().create_task(self._follow(self._producers_upto + 1))
        return self

    async def _follow(self, from_msg_seq: int) -> None:
        """Follow the stream's headers from ``from_msg_seq`` on (replaying recent producers
        first), creating the ordered consumer again until it is (a creation times out
        while JetStream places it on a node that died); between attempts the stream's
        tail and recent producers are read directly, so readers here still wake on
        other instances' appends and the producer table is whole."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        while not self.closed:
            try:
                self._follower = await self.js.subscribe(
                    self.subject, stream=self.stream, cb=self._on_header, ordered_consumer=True, headers_only=True,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, idle_heartbeat=1.0,
                    config=ConsumerConfig(opt_start_seq=max(from_msg_seq, 1), mem_storage=True),
                    pending_msgs_limit=-1, pending_bytes_limit=-1)
                if self.closed:  # closed while the consumer was being created
                    await _quietly(self._follower.unsubscribe())
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a timeout after a node died: again
                log.warning("stream %s: following the tail failed (%r); trying again", self.stream, exc)
            with contextlib.suppress(Exception):
                # The tail and recent producers without the follower (direct gets).
                await self.refresh()
                await self._catch_up_producers()
                self._replayed.set()
            from_msg_seq = max(from_msg_seq, self._producers_upto + 1)
            await asyncio.sleep(1.0)

    async def _on_header(self, msg) -> None:
        try:
            msg_seq = msg.metadata.sequence.stream
            info = _Info.of_headers(msg.headers or {})
        except (KeyError, ValueError, TypeError, AttributeError):
            return  # not a batch of ours
        self._learn(msg_seq, info)
        if msg_seq >= self.last_msg_seq:
            self._replayed.set()

    def _learn(self, msg_seq: int, info: _Info) -> None:
        """Remember a batch; move the tail and the producers forward."""
        self._infos[msg_seq] = info
        while len(self._infos) > _INFO_CACHE:
            self._infos.popitem(last=False)
        # The producer table takes batches in stream order, without a gap (or past a gap of
        # expired messages only): a tail learnt ahead of the follower (another instance appended
        # several) must not move ``_producers_upto`` past batches not seen yet, or a producer's
        # batch stored through that instance is never learnt and its next one is refused as
        # out of order. The follower (or ``_catch_up_producers``) delivers them in order.
        if self._producers_upto < msg_seq <= max(self._producers_upto + 1, self.first_msg_seq):
            self._producers_upto = msg_seq
            self.producer_table.remember(info.producer_id, info.producer_sequence, info.count, info.seq, info.ts)
        if msg_seq > self.last_msg_seq:
            self.last_msg_seq = msg_seq
            self.next_sequence = info.seq + info.count
            self.next_offset = info.end
            self.last_ts_ns = max(self.last_ts_ns, info.ts)
            if info.count:
                self._last_offset = info.last
            self._changed.set()
            self._changed = asyncio.Event()

    async def _sync(self, state) -> None:
        """Bring tail and head up to the stream's ``state`` (two direct gets at most)."""
        from nats.js.errors import NotFoundError

        for _ in range(10):
            try:
                if state.last_seq > self.last_msg_seq:
                    self._learn(state.last_seq, await self._info(state.last_seq))
                first = state.first_seq if state.messages else state.last_seq + 1
                if first != self.first_msg_seq:
                    self._begin = (await self._info(first)).seq if state.messages else self.next_sequence
                    self.first_msg_seq = first
                return
            except NotFoundError:  # purged by another instance's retention meanwhile: look again
                state = (await self.js.stream_info(self.stream)).state

    async def refresh(self) -> None:
        """Catch up with what other instances appended or expired (one stream info)."""
        if self.closed:
            return
        try:
            info = await self.js.stream_info(self.stream)
        except Exception as exc:  # noqa: BLE001
            raise _busy(self.partition_id, exc) from None
        await self._sync(info.state)

    # -- messages --------------------------------------------------------------------

    async def _get(self, msg_seq: int) -> bytes:
        data = self._data.get(msg_seq)
        if data is None:
            msg = await self.js.get_msg(self.stream, seq=msg_seq, direct=self.direct)
            data = msg.data or b""
            # A batch read from NATS is kept only while the cache has room: a reader
            # going through old batches would otherwise push out the batches it reads
            # next (and the tail live readers need), one miss causing the next.
            if self.conn.cached + len(data) <= self.conn.cache_bytes or len(self._data) < _CACHE_BATCHES:
                self._keep(msg_seq, data)
        return data

    def _keep(self, msg_seq: int, data: bytes) -> None:
        """Keep a batch in memory: the tail a live reader reads next, without a round trip.
        The instance's batches share ``nats_cache_mb``; a partition keeps at least a few."""
        if msg_seq in self._data:
            self._data.move_to_end(msg_seq)
            return
        self._data[msg_seq] = data
        self.conn.cached += len(data)
        while len(self._data) > _CACHE_BATCHES and self.conn.cached > self.conn.cache_bytes:
            self.conn.cached -= len(self._data.popitem(last=False)[1])

    async def _info(self, msg_seq: int) -> _Info:
        info = self._infos.get(msg_seq)
        if info is None:
            info = _Info.of_data(await self._get(msg_seq))
            self._infos[msg_seq] = info
            while len(self._infos) > _INFO_CACHE:
                self._infos.popitem(last=False)
        return info

    async def _search(self, key) -> int:
        """The last message whose ``key(info)`` is true (keys false then true... reversed:
        true for a prefix of the stream); ``first_msg_seq - 1`` when none."""
        lo, hi = self.first_msg_seq - 1, self.last_msg_seq
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if key(await self._info(mid)):
                lo = mid
            else:
                hi = mid - 1
        return lo

    async def _locate(self, sequence: int) -> int:
        """The message holding event ``sequence`` (begin <= sequence < next)."""
        hint = self._hints.get(sequence)
        if hint is not None and hint >= self.first_msg_seq:
            return hint
        return max(await self._search(lambda i: i.seq <= sequence), self.first_msg_seq)

    # -- properties -------------------------------------------------------------------

    @property
    def beginning_sequence(self) -> int:
        return min(self._begin, self.next_sequence)

    @property
    def is_empty(self) -> bool:
        return self.beginning_sequence >= self.next_sequence

    def last_offset(self) -> int:
        return -1 if self.is_empty else self._last_offset

    def changed(self) -> asyncio.Event:
        return self._changed

    # -- append -------------------------------------------------------------------------

    async def publish(self, events: list[bytes], producer_id: str = "", producer_sequence: int = -1) -> AppendResult:
        if self.closed:
            raise HeadwaterError(Reason.SERVICE_BUSY, f"partition {self.partition_id} is closing; retry",
                                 retry_after=0.5)
        async with self._lock:
            if producer_id:
                stored = await self._check_producer(producer_id, producer_sequence, len(events))
                if stored is not None:
                    return stored
            msg_id = f"{producer_id}:{producer_sequence}:{len(events)}" if producer_id else ""
            return await self._append(events, producer_id, producer_sequence, msg_id)

    async def _check_producer(self, producer_id: str, producer_sequence: int, count: int) -> AppendResult | None:
        if not self._replayed.is_set():  # the follower replays recent producers' headers after a start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replayed.wait(), 3)
        try:
            return self.producer_table.check(producer_id, producer_sequence, count)
        except HeadwaterError as exc:
            if exc.reason is not Reason.PRECONDITION_FAILED:
                raise
        # Another instance may have stored this producer's batches: catch up and ask again.
        await self.refresh()
        await self._catch_up_producers()
        return self.producer_table.check(producer_id, producer_sequence, count)

    async def _catch_up_producers(self) -> None:
        """Read the producers of the messages the header follower has not delivered yet
        (direct gets, a few at once; at most the last ``_PRODUCER_REPLAY`` messages)."""
        start = max(self._producers_upto + 1, self.last_msg_seq - _PRODUCER_REPLAY + 1, self.first_msg_seq)
        for lo in range(start, self.last_msg_seq + 1, 16):
            seqs = range(lo, min(lo + 16, self.last_msg_seq + 1))
            infos = await asyncio.gather(*(self._info(q) for q in seqs))
            for q, info in zip(seqs, infos, strict=True):
                if q > self._producers_upto:
                    self._producers_upto = q
                    self.producer_table.remember(info.producer_id, info.producer_sequence, info.count, info.seq,
                                                 info.ts)

    async def _append(self, events: list[bytes], producer_id: str, producer_sequence: int, msg_id: str,
                      ) -> AppendResult:
        from nats.js.errors import APIError, NotFoundError

        for attempt in range(_APPEND_ATTEMPTS):
            ts_ns = max(time.time_ns(), self.last_ts_ns)
            batch = encode_batch(events, self.partition_id, self.next_sequence, self.next_offset, ts_ns,
                                 producer_id, producer_sequence)
            if len(batch.data) > self.max_payload:
                raise HeadwaterError(
                    Reason.MESSAGE_SIZE_EXCEEDED,
                    f"the encoded batch of {len(batch.data)} bytes is over the NATS server's max_payload "
                    f"{self.max_payload}; send smaller batches",
                    metadata={"size": len(batch.data), "limit": self.max_payload})
            info = _Info.of_data(batch.data)
            headers = info.headers()
            headers["Nats-Expected-Last-Sequence"] = str(self.last_msg_seq)
            if msg_id:
                headers["Nats-Msg-Id"] = msg_id
            try:
                ack = await self.js.publish(self.subject, batch.data, stream=self.stream, headers=headers)
            except NotFoundError:
                raise HeadwaterError(Reason.SERVICE_BUSY, f"partition {self.partition_id}'s stream is gone "
                                     "(hub deleted?); retry", retry_after=0.2) from None
            except APIError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise _busy(self.partition_id, exc) from None
                # Another instance appended first: take the new tail and number again.
                await self.refresh()
                if attempt > 2:
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 20)))
                continue
            except Exception as exc:  # noqa: BLE001 - connection trouble: not acknowledged
                raise _busy(self.partition_id, exc) from None
            if ack.duplicate:  # JetStream's dedupe (Nats-Msg-Id) names the stored batch
                stored = await self._info(ack.seq)
                return AppendResult(stored.seq, stored.seq + stored.count - 1, stored.ts, duplicate=True)
            self._keep(ack.seq, batch.data)
            self._learn(ack.seq, info)
            return AppendResult(batch.base_sequence, batch.base_sequence + batch.count - 1, ts_ns,
                                bytes_written=batch.payload_len)
        raise HeadwaterError(Reason.SERVICE_BUSY, f"partition {self.partition_id} is contended by other writers; "
                             "retry", retry_after=0.05)

    async def durable(self) -> None:
        """JetStream acknowledged the write (stored on a quorum of replicas): nothing to wait for."""

    # -- read ---------------------------------------------------------------------------

    async def fetch(self, start_sequence: int, max_events: int, max_bytes: int = 4 << 20) -> tuple[list, int, int]:
        """Stored frames from ``start_sequence``: (pieces, event count, next sequence). Messages
        are fetched a few at once (direct gets in flight together) and sliced, not decoded."""
        from nats.js.errors import NotFoundError

        start_sequence = max(start_sequence, self.beginning_sequence)
        if start_sequence >= self.next_sequence:
            return [], 0, start_sequence
        try:
            msg_seq = await self._locate(start_sequence)
        except NotFoundError:  # expired underneath: start again from the new beginning
            await self.refresh()
            return [], 0, max(start_sequence, self.beginning_sequence)
        pieces: list = []
        got = size = 0
        seq = start_sequence
        per_msg = max(self._infos[msg_seq].count if msg_seq in self._infos else 1, 1)
        hint = msg_seq
        while got < max_events and size < max_bytes and msg_seq <= self.last_msg_seq:
            want = min(16, max(1, -(-(max_events - got) // per_msg)), self.last_msg_seq - msg_seq + 1)
            try:
                datas = await asyncio.gather(*(self._get(q) for q in range(msg_seq, msg_seq + want)))
            except NotFoundError:
                await self.refresh()
                break
            for data in datas:
                p, n = slice_batches(data, seq, max_events - got)
                pieces.extend(p)
                got += n
                seq += n
                size += len(data)
                (_, _, _, bseq, count, _, _, _, _) = BATCH_HEADER.unpack_from(data, 0)
                per_msg = max(count, 1)
                hint = msg_seq if seq < bseq + count else msg_seq + 1
                msg_seq += 1
                if got >= max_events or size >= max_bytes:
                    break
        self._hints[seq] = hint
        while len(self._hints) > 1024:
            self._hints.popitem(last=False)
        return pieces, got, seq

    async def locate_offset(self, offset: int, inclusive: bool) -> int:
        """The sequence number at ``offset`` (binary search over messages, no scan)."""
        if offset < 0 or self.is_empty:
            return self.beginning_sequence
        if offset >= self.next_offset:
            return self.next_sequence
        msg_seq = max(await self._search(lambda i: i.off <= offset), self.first_msg_seq)
        info = await self._info(msg_seq)
        if offset >= info.end:
            return info.seq + info.count
        ends = batch_ends(await self._get(msg_seq))
        rel = offset - info.off
        k = 1 + bisect_left(ends, rel) if rel > 0 else 0
        seq = info.seq + k
        start = info.off + (ends[k - 1] if k > 0 else 0)
        if not inclusive and seq < self.next_sequence and start == offset:
            seq += 1
        return max(seq, self.beginning_sequence)

    async def locate_time(self, ts_ns: int) -> int:
        """The first sequence number enqueued at or after ``ts_ns``."""
        msg_seq = await self._search(lambda i: i.ts < ts_ns) + 1
        seq = (await self._info(msg_seq)).seq if msg_seq <= self.last_msg_seq else self.next_sequence
        return max(seq, self.beginning_sequence)

    # -- retention and shutdown ---------------------------------------------------------

    async def apply_retention(self, cutoff_ns: int) -> int:
        """Purge whole batches older than ``cutoff_ns``; when everything expired, a
        marker batch of no events keeps the numbering."""
        from nats.js.errors import NotFoundError

        await self.refresh()
        before = self.beginning_sequence
        if self.is_empty:
            return 0
        try:
            return await self._expire(cutoff_ns, before)
        except NotFoundError:  # another instance purged at the same time
            await self.refresh()
            return 0

    async def _expire(self, cutoff_ns: int, before: int) -> int:
        keep = await self._search(lambda i: i.ts < cutoff_ns) + 1  # first message to keep
        if keep > self.last_msg_seq:
            async with self._lock:
                await self._append([], "", -1, "")
            keep = self.last_msg_seq
            if (await self._info(keep)).count:  # someone appended meanwhile: nothing expired after all
                keep = await self._search(lambda i: i.ts < cutoff_ns) + 1
        if keep > self.first_msg_seq:
            await self.js.purge_stream(self.stream, seq=keep)
            await self.refresh()
        return max(self.beginning_sequence - before, 0)

    def close(self, sync: bool = True) -> None:
        self.closed = True
        self._changed.set()
        if self._following is not None and not self._following.done():
            self._following.cancel()
        self.conn.cached -= sum(map(len, self._data.values()))
        self._data.clear()
        if self._follower is not None:
            follower, self._follower = self._follower, None
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(_quietly(follower.unsubscribe()))

    async def destroy(self) -> None:
        self.close()
        with contextlib.suppress(Exception):
            await self.js.delete_stream(self.stream)


async def _quietly(coro) -> None:
    with contextlib.suppress(Exception):
        await coro


def _busy(partition_id: str, exc: Exception) -> HeadwaterError:
    return HeadwaterError(Reason.SERVICE_BUSY, f"NATS did not answer for partition {partition_id}: "
                          f"{type(exc).__name__} {exc}; retry", retry_after=0.5)


class NatsHubStore(HubStore):
    """Hubs whose partitions are JetStream streams and whose metadata is in NATS KV."""

    def __init__(self, root, *, nats_url: str, nats_prefix: str = "HW", nats_replicas: int = 1,
                 nats_duplicate_window_s: float = 120.0, nats_cache_mb: int = 256, ownership_expiry_s: float = 30.0,
                 **kwargs: Any) -> None:
        from headwater.services.ingestion.metadata_nats import KvMetadata

        self.conn = NatsConnection(nats_url, prefix=nats_prefix, replicas=nats_replicas,
                                   duplicate_window_s=nats_duplicate_window_s, cache_mb=nats_cache_mb)
        super().__init__(root, metadata=KvMetadata(self.conn, ownership_expiry_s), **kwargs)

    @property
    def js(self):
        return self.conn.js

    async def open_async(self) -> NatsHubStore:
        await self.conn.connect()
        return await super().open_async()  # type: ignore[return-value]

    async def _open_partitions(self, meta: HubMeta, first: int = 0) -> list:
        return [await NatsPartitionLog(self.conn, meta.name, str(i)).open()
                for i in range(first, meta.partition_count)]

    async def _destroy_partitions(self, hub: Hub) -> None:
        for part in hub.partitions:
            await part.destroy()

    async def close_async(self) -> None:
        self.close()
        await self.metadata.close()
        await self.conn.close()

    def open(self):
        raise RuntimeError("use open_async() with the NATS backend")


async def delete_prefix(url: str, prefix: str) -> int:
    """Delete every stream and bucket named with ``prefix`` (tests, perf runs); how many."""
    import nats

    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream()
        names = await js.streams_info()
        gone = 0
        for si in names:
            name = si.config.name or ""
            if name.startswith(f"{prefix}_") or name.startswith(f"KV_{prefix}_"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)
                    gone += 1
        return gone
    finally:
        await nc.close()
