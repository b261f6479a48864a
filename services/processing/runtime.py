"""Running a job: read hubs, run the query, write sinks, checkpoint.

A running job works in **epochs** of ``checkpoint_interval`` (default 1 s):

1. Reader tasks stream each input partition from the ingestion service
   (``ReadEvents`` with ``packed``: bodies in one buffer, numbers as columns) into
   a queue, as :class:`Chunk` s. Each partition's queue (:class:`ReadAhead`) holds
   at most its share of ``read_ahead_bytes``; its reader waits while it is full.
   An epoch also ends early once it holds ``max_epoch_bytes`` of input (a chunk
   that crosses it is split), so a backlog is worked through in bounded steps and
   the worker's memory follows these two settings, not the backlog.
2. At the end of an epoch the job's arrival clock is the arrival time every
   partition has been read past (see :meth:`JobRunner._arrival_clock`); the events
   that arrived by it are fed to the query runtime, a batch per partition (later
   ones wait for the next epochs), and the runtime's clock moves to it, so windows
   close on a quiet stream and never while a partition lags. The engine's work runs
   on the job's worker thread.
3. Before any output is written, an *intent* record is made durable: the
   epoch number, the last sequence number read of every partition and the
   clock value. Then each output's rows go to its sink in ``WriteRows`` calls
   carrying the writer (``jobs/{job}/outputs/{alias}``), the epoch as
   ``checkpoint_id`` and a ``batch_id``; the last batch of an epoch has
   ``commit`` set.
4. Then the query state, the positions and the epoch are saved as the
   checkpoint (write to a temporary file, fsync, rename).

After a crash (kill -9) the job restarts from its checkpoint. When an intent
newer than the checkpoint exists, that epoch is replayed first from exactly
the recorded positions and clock, so it produces the same rows with the same
ids, which the sinks recognise and do not store twice. Output delivery is
therefore exactly-once for sinks that keep checkpoint ids and at-least-once
for the others, which is Stream Analytics' own guarantee.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import functools
import json
import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.faults import FaultFile
from headwater.retry import RetryPolicy, retry_async
from headwater.storage import write_atomic
from headwater.v1 import event_pb2
from headwater.v1 import processing_pb2 as pb

__all__ = ["Chunk", "JobRunner", "QueryRuntime", "RunnerSettings", "forget_job", "last_epoch", "merge_chunks"]

log = logging.getLogger("headwater.processing.runtime")


class QueryRuntime(Protocol):
    """What the runner needs of the query engine (see engine_adapter.py)."""

    def feed(self, alias: str, bodies: list[bytes], content_types: list[str],
             arrival_us: list[int], partition_ids: list[str]) -> None: ...

    def advance(self, now: datetime) -> None: ...

    def take_outputs(self) -> dict[str, list[dict]]: ...

    def snapshot(self) -> bytes: ...

    def snapshot_begin(self, base: Any = None) -> Any:
        """Optional: a snapshot in two steps (``.finish()`` gives the blob), for a forked writer;
        incremental on the ``base`` of the last checkpoint (state.chain.Base)."""
        ...

    def restore(self, state: bytes) -> None: ...

    def counters(self) -> dict[str, Any]:
        """Event counts by name, and ``samples``: the first errors."""
        ...

    def watermark(self) -> datetime | None: ...

    def stream_inputs(self) -> list[str]: ...

    def take_dead(self) -> list[dict]:
        """The events that failed since the last take (for the job's dead-letter hub)."""
        ...

    def add_reference_version(self, alias: str, valid_from_us: int, rows: list[dict]) -> None:
        """A snapshot of a refreshed reference input, valid from ``valid_from_us``."""
        ...


@dataclass
class Chunk:
    """Events of one input partition as columns (a packed read answer, or several
    of them merged): bodies in one buffer with n + 1 offsets (body i is
    ``bodies[offsets[i]:offsets[i + 1]]``; the first offset need not be 0: a slice of a
    chunk shares its buffer), and per event its sequence number, arrival (enqueued) time
    in us and content type."""

    alias: str
    partition_id: str
    bodies: bytes
    offsets: np.ndarray
    seqs: np.ndarray
    arrivals: np.ndarray
    content_types: list[str]
    #: Index into content_types per event; None when there is one content type.
    ct_ids: np.ndarray | None = None
    #: Per event, when the read asked for properties (an input whose readers call
    #: GetMetadataPropertyValue): its byte offset in the partition and its
    #: ``PackedEventMetadata`` (application properties, partition key); else None.
    log_offsets: np.ndarray | None = None
    meta: list | None = None

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def last_sequence(self) -> int:
        return int(self.seqs[-1])

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    @classmethod
    def of(cls, alias: str, pid: str, resp) -> Chunk | None:
        """The events of a ReadEvents answer (packed, or events from an older service)."""
        if resp.HasField("packed") and len(resp.packed.sequence_numbers):
            p = resp.packed
            seqs = _column(p.sequence_numbers, np.int64)
            ids = _column(p.content_type_ids, np.int32) if len(p.content_types) > 1 else None
            meta = list(p.metadata) if len(p.metadata) == len(seqs) else None
            return cls(alias, pid, p.bodies, _column(p.body_offsets, np.int64), seqs,
                       _column(p.enqueued_times_us, np.int64), list(p.content_types) or [""], ids,
                       _column(p.offsets, np.int64) if meta is not None else None, meta)
        if not resp.events:
            return None
        events = resp.events
        bodies = [e.event.body for e in events]
        offsets = np.zeros(len(bodies) + 1, np.int64)
        np.cumsum([len(b) for b in bodies], out=offsets[1:])
        cts = [e.event.content_type for e in events]
        names = list(dict.fromkeys(cts))
        ids = np.array([names.index(c) for c in cts], np.int32) if len(names) > 1 else None
        return cls(alias, pid, b"".join(bodies), offsets, np.array([e.sequence_number for e in events], np.int64),
                   np.array([e.enqueued_time.seconds * 1_000_000 + e.enqueued_time.nanos // 1000 for e in events],
                            np.int64), names, ids)

    def upto(self, last_sequence: int) -> Chunk:
        """The events up to ``last_sequence`` (inclusive)."""
        n = int(np.searchsorted(self.seqs, last_sequence, side="right"))
        return self if n == len(self) else self.take(slice(0, n))

    def take(self, sel) -> Chunk:
        """The events selected by a slice (sharing this chunk's buffer, no copy) or an
        index array, in that order."""
        if isinstance(sel, slice) and sel.step in (None, 1):
            a, b, _ = sel.indices(len(self))
            b = max(a, b)
            return Chunk(self.alias, self.partition_id, self.bodies, self.offsets[a:b + 1], self.seqs[a:b],
                         self.arrivals[a:b], self.content_types, None if self.ct_ids is None else self.ct_ids[a:b],
                         None if self.log_offsets is None else self.log_offsets[a:b],
                         None if self.meta is None else self.meta[a:b])
        idx = np.arange(len(self))[sel]
        starts, ends = self.offsets[:-1][idx], self.offsets[1:][idx]
        if isinstance(sel, slice):
            body = self.bodies[int(self.offsets[idx[0]]) if len(idx) else 0:int(ends[-1]) if len(idx) else 0]
        else:
            view = memoryview(self.bodies)
            body = b"".join([view[a:b] for a, b in zip(starts.tolist(), ends.tolist())])
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        return Chunk(self.alias, self.partition_id, body, offsets, self.seqs[idx], self.arrivals[idx],
                     self.content_types, None if self.ct_ids is None else self.ct_ids[idx],
                     None if self.log_offsets is None else self.log_offsets[idx],
                     None if self.meta is None else [self.meta[i] for i in idx.tolist()])

    def metadata(self) -> list[dict] | None:
        """Per event, what GetMetadataPropertyValue reads besides the system columns
        (``Offset``, ``SequenceNumber``, ``PartitionKey``, ``User``); None when the read
        did not ask for properties."""
        if self.meta is None or self.log_offsets is None:  # read together
            return None
        return [{"Offset": str(off), "SequenceNumber": seq, "PartitionKey": m.partition_key or None,
                 "User": dict(m.properties)}
                for off, seq, m in zip(self.log_offsets.tolist(), self.seqs.tolist(), self.meta)]

    def by_content_type(self):
        """(content type, chunk) runs of consecutive events with the same content type."""
        if self.ct_ids is None:
            yield self.content_types[0], self
            return
        cuts = np.flatnonzero(np.diff(self.ct_ids)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(self)]):
            yield self.content_types[int(self.ct_ids[a])], self.take(slice(int(a), int(b)))


def ingestion_stub(channel):
    """An IngestionService stub whose ReadEvents answers come as
    :data:`~headwater.eventhub.wire.ReadEventsResponseColumns` (number columns as bytes,
    mapped by :meth:`Chunk.of` without one Python object per event)."""
    from headwater.eventhub.wire import ReadEventsResponseColumns, method
    from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

    stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
    stub.ReadEvents = channel.unary_stream(
        method("ReadEvents"), request_serializer=ingestion_pb2.ReadEventsRequest.SerializeToString,
        response_deserializer=ReadEventsResponseColumns.FromString)
    return stub


def _column(values, dtype) -> np.ndarray:
    """A packed number column: little-endian bytes (:data:`headwater.eventhub.wire.ReadEventsResponseColumns`,
    mapped, no copy) or a protobuf repeated field (one Python int per value)."""
    if isinstance(values, bytes):
        return np.frombuffer(values, np.dtype(dtype).newbyteorder("<"))
    return np.array(values, dtype)


class ReadAhead:
    """A partition's read-ahead: the chunks its reader has put and the epoch loop not
    taken yet, bounded in bytes. ``put`` waits while the queue holds ``limit`` bytes or
    more (one chunk may go over, so a chunk bigger than the limit is still taken)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nbytes = 0
        self._items: collections.deque[Chunk] = collections.deque()
        self._space = asyncio.Event()
        self._space.set()

    async def put(self, chunk: Chunk) -> None:
        while self.nbytes >= self.limit:
            self._space.clear()
            await self._space.wait()
        self._items.append(chunk)
        self.nbytes += chunk.nbytes

    def get_nowait(self) -> Chunk:
        if not self._items:
            raise asyncio.QueueEmpty
        chunk = self._items.popleft()
        self.nbytes -= chunk.nbytes
        if self.nbytes < self.limit:
            self._space.set()
        return chunk

    def put_back(self, chunk: Chunk) -> None:
        """Return the rest of a chunk taken in part: it is the next one taken."""
        self._items.appendleft(chunk)
        self.nbytes += chunk.nbytes

    def qsize(self) -> int:
        return len(self._items)

    def batch_events(self, chunk: Chunk, most: int) -> int:
        """How many events like ``chunk``'s make a quarter of the limit (1 to ``most``)."""
        per_event = max(1, chunk.nbytes // max(1, len(chunk)))
        return max(1, min(most, self.limit // 4 // per_event))


def merge_chunks(chunks: list[Chunk]) -> dict[tuple[str, str], Chunk]:
    """One chunk per (alias, partition), in sequence order (read order)."""
    groups: dict[tuple[str, str], list[Chunk]] = {}
    for c in chunks:
        groups.setdefault((c.alias, c.partition_id), []).append(c)
    out = {}
    for key, group in groups.items():
        if len(group) == 1:
            out[key] = group[0]
            continue
        names = list(dict.fromkeys(ct for c in group for ct in c.content_types))
        base, offs = 0, []
        for c in group:
            offs.append(c.offsets[:-1] - c.offsets[0] + base)
            base += c.nbytes
        offs.append(np.array([base], np.int64))
        ids = None
        if len(names) > 1:
            ids = np.concatenate([np.full(len(c), names.index(c.content_types[0]), np.int32) if c.ct_ids is None
                                  else np.array([names.index(c.content_types[i]) for i in c.ct_ids], np.int32)
                                  for c in group])
        with_meta = all(c.meta is not None for c in group)
        out[key] = Chunk(key[0], key[1], b"".join([memoryview(c.bodies)[int(c.offsets[0]):int(c.offsets[-1])]
                                                   for c in group]),
                         np.concatenate(offs), np.concatenate([c.seqs for c in group]),
                         np.concatenate([c.arrivals for c in group]), names, ids,
                         np.concatenate([c.log_offsets for c in group]) if with_meta else None,
                         [m for c in group for m in c.meta or ()] if with_meta else None)
    return out


def rows_in_arrival_order(merged: dict[tuple[str, str], Chunk]) -> dict[str, tuple[list, list, list, list]]:
    """For an engine without ``feed_packed``: per alias (bodies, content types, arrival
    us, partition ids) as lists in arrival order (enqueued time, partition, sequence
    number: the same order on every replay)."""
    by_alias: dict[str, list[Chunk]] = {}
    for (alias, _), chunk in sorted(merged.items()):
        by_alias.setdefault(alias, []).append(chunk)
    out = {}
    for alias, chunks in by_alias.items():
        arrivals = np.concatenate([c.arrivals for c in chunks])
        seqs = np.concatenate([c.seqs for c in chunks])
        part_no = np.concatenate([np.full(len(c), i) for i, c in enumerate(chunks)])
        order = np.lexsort((seqs, part_no, arrivals)) if len(chunks) > 1 else np.arange(len(seqs))
        bodies: list[bytes] = []
        ctypes: list[str] = []
        pids: list[str] = []
        for c in chunks:
            view = memoryview(c.bodies)
            o = c.offsets.tolist()
            bodies.extend(bytes(view[o[i]:o[i + 1]]) for i in range(len(c)))
            if c.ct_ids is None:
                ctypes.extend([c.content_types[0]] * len(c))
            else:
                ctypes.extend(c.content_types[i] for i in c.ct_ids.tolist())
            pids.extend([c.partition_id] * len(c))
        idx = order.tolist()
        out[alias] = ([bodies[i] for i in idx], [ctypes[i] for i in idx], arrivals[order].tolist(),
                      [pids[i] for i in idx])
    return out


@dataclass
class PartitionProgress:
    """How far one input partition has been read and fed, and what it holds."""

    #: The last sequence number read (-1: none).
    read_seq: int = -1
    #: Arrival time (us) of the last event read.
    read_arrival_us: int = 0
    #: The last sequence number taken off the reader's queue (fed or held), and its arrival time.
    taken_seq: int = -1
    taken_arrival_us: int = 0
    #: The last sequence number fed to the engine, and its arrival time.
    fed_seq: int = -1
    fed_arrival_us: int = 0
    #: The partition's last sequence number, at the latest answer.
    last_enqueued: int = -1
    #: Events read and fed since the job started here: a file input's backlog (its sequence
    #: numbers are ``file index << 32 | event``, so their difference counts no events).
    read_events: int = 0
    fed_events: int = 0
    #: (last sequence read, service clock us) of the latest answer that found the
    #: reader at the partition's end.
    pending_tail: tuple[int, int] | None = None
    #: Events up to here lay before the job's start position (not backlog).
    base_seq: int = -1
    #: A moment (us) by which everything enqueued in the partition has been fed.
    caught_up_us: int = 0
    #: Whether the partition has answered since the job started.
    seen: bool = False
    #: (fed_seq, monotonic time it was first seen there): how long the job has not advanced.
    progress_mark: tuple[int, float] = (-2, 0.0)
    #: Whether it was last reported starved (the log line is written on the change).
    starved: bool = False


def _clock_us(clock) -> int | None:
    """An intent's clock: us (int), or an ISO time (older intents), or None."""
    if clock is None or isinstance(clock, int):
        return clock
    return int(datetime.fromisoformat(clock).timestamp() * 1_000_000)


@dataclass
class RunnerSettings:
    checkpoint_interval_s: float = 1.0
    read_batch_size: int = 5000
    #: Bytes of input events read ahead of the epoch being gathered, for the whole job,
    #: shared evenly by its stream partitions (at least 1 MiB each): a reader whose
    #: partition holds its share waits (ProcessingConfig.read_ahead_bytes).
    read_ahead_bytes: int = 32 * 2**20
    #: Most bytes of input events one epoch takes: an epoch ends at its checkpoint
    #: interval or once it holds this much, so a backlog is worked through in bounded
    #: steps (ProcessingConfig.max_epoch_bytes).
    max_epoch_bytes: int = 16 * 2**20
    write_batch_rows: int = 10_000
    #: Most events held back for a lagging partition (arrived after the arrival clock)
    #: before the job stops taking more from its readers.
    max_held_events: int = 1_000_000
    #: How long a stop waits for an epoch whose output is held (sink down) before
    #: leaving it to be replayed at the next start.
    stop_hold_timeout_s: float = 10.0
    #: A partition with a backlog the job has not advanced in for this long is starved.
    starvation_after_s: float = 30.0
    #: File stream inputs: largest file taken, and seconds between looks for new files.
    max_input_file_bytes: int = 256 * 2**20
    file_poll_interval_s: float = 1.0
    #: Deadline of each call to another service (ProcessingConfig.call_timeout_s).
    call_timeout_s: float = 10.0
    #: Fault rules of the job's calls (ProcessingConfig.faults_file).
    faults_file: str = ""
    #: Bounded calls (start positions, a replay's reads) retry under it; the loops that
    #: hold until a peer is back (readers, held outputs) take only its backoff.
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=8, max_delay_s=60))
    #: Write checkpoints from a fork of the process (copy-on-write image): the job pauses
    #: only to take the vectorised state and fork, not to serialize and write the state.
    #: On in a job's worker process (ProcessingConfig.checkpoint_fork); the inline runner
    #: (inside the service's process, with its gRPC server) writes in its worker thread.
    checkpoint_fork: bool = False
    #: A forked checkpoint writer not done after this long is killed and the checkpoint
    #: written in the worker thread instead.
    checkpoint_fork_timeout_s: float = 120.0
    #: A state of only vectorised operators smaller than this is written in the worker
    #: thread, without a fork.
    checkpoint_fork_min_bytes: int = 1 << 20

    @classmethod
    def from_config(cls, config: Any) -> RunnerSettings:
        """The settings of a service's ProcessingConfig."""
        return cls(checkpoint_interval_s=config.checkpoint_interval_s,
                   stop_hold_timeout_s=config.stop_hold_timeout_s, call_timeout_s=config.call_timeout_s,
                   faults_file=config.faults_file, max_input_file_bytes=config.max_input_file_bytes,
                   file_poll_interval_s=config.file_poll_interval_s, starvation_after_s=config.starvation_after_s,
                   read_ahead_bytes=config.read_ahead_bytes, max_epoch_bytes=config.max_epoch_bytes)


def _ts(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.astimezone(UTC).replace(tzinfo=None))
    return ts


def last_epoch(state_dir: Path) -> int:
    """The newest epoch a job's outputs may have been written with (0: none)."""
    epoch = 0
    for name in ("checkpoint.json", "intent.json", "epoch.json"):
        f = state_dir / name
        if f.exists():
            epoch = max(epoch, int(json.loads(f.read_text()).get("epoch", 0)))
    return epoch


def forget_job(state_dir: Path) -> None:
    """A deleted job's state goes; its last epoch stays (``epoch.json``), so a job
    created again under the same name does not resume the old one's checkpoint, and
    its outputs are not taken by the sinks as duplicates of the old job's."""
    if not state_dir.exists():
        return
    epoch = last_epoch(state_dir)
    for f in state_dir.iterdir():
        if f.is_file():
            f.unlink()
    if epoch:
        write_atomic(state_dir / "epoch.json", json.dumps({"epoch": epoch}).encode())


class JobRunner:
    """One running job. ``ingestion`` and ``sinks`` are gRPC stubs (already signed)."""

    def __init__(self, job: pb.Job, runtime: QueryRuntime, state_dir: Path, ingestion: Any,
                 sinks: Any, settings: RunnerSettings | None = None, partitions: list[str] | None = None,
                 writer_suffix: str = "") -> None:
        self.job = job
        #: The input partitions this task owns (None: all of them).
        self.only_partitions = set(partitions) if partitions is not None else None
        #: Added to the output writers' names: each partition task writes as its own writer.
        self.writer_suffix = writer_suffix
        self.rt = runtime
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ingestion = ingestion
        self.sinks = sinks
        self.settings = settings or RunnerSettings()
        if job.HasField("checkpoint_interval") and job.checkpoint_interval.ToNanoseconds() > 0:
            self.settings.checkpoint_interval_s = job.checkpoint_interval.ToNanoseconds() / 1e9
        self.epoch = 0
        #: Where partitions without a position start: "earliest" or an ISO time (NOW is
        #: the start's wall-clock time, kept in the checkpoint so a resumed job's quiet
        #: partitions start there too, neither at the latest event of the resume nor at
        #: the earliest).
        self.start_from: str = "earliest"
        #: (alias, partition) -> last sequence number processed (-1: none).
        self.positions: dict[tuple[str, str], int] = {}
        #: One queue per partition, bounded in bytes (backpressure per reader: a partition
        #: whose events wait for a lagging one stops reading, the lagging one does not).
        self.queues: dict[tuple[str, str], ReadAhead] = {}
        #: Set by a reader after each put: something to take.
        self._ready = asyncio.Event()
        #: (alias, partition) -> how far it has been read and what it holds.
        self.partitions: dict[tuple[str, str], PartitionProgress] = {}
        #: Every stream input partition of the job (the arrival clock waits for all).
        self._stream_partitions: list[tuple[str, str]] = []
        #: The engine's work and the checkpoint files run here, off the event loop.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"job-{job.name.rsplit('/', 1)[-1]}")
        self._counters: dict = {}
        self._error_samples: list[str] = []
        #: Dead-letter events of the epoch being run (sent before its outputs).
        self._dead: list = []
        #: The last checkpoint's epoch (0: none).
        self.checkpoint_id = 0
        self._watermark: datetime | None = None
        self.last_checkpoint_time: float = 0.0
        #: How long the last checkpoint held the job (ms): the whole write, or with
        #: ``checkpoint_fork`` the vectorised state's capture and the fork.
        self.last_checkpoint_pause_ms: float = 0.0
        #: The forked writer of the last checkpoint, until it is reaped.
        self._ckpt_writer: asyncio.Task | None = None
        #: The last durable checkpoint, which the next one refers to for the sections it
        #: has unchanged (state.chain.Base; None: the next checkpoint is written whole).
        self._base: Any = None
        self.tasks: list[asyncio.Task] = []
        self.loop_task: asyncio.Task | None = None
        #: Batches taken off the queue for the epoch being gathered (kept here, not in a
        #: local, so a stop cannot lose them).
        self._pending: list[Chunk] = []
        #: Events taken but not fed yet: they arrived after the arrival clock.
        self._held: list[Chunk] = []
        #: The epoch being run; shielded from cancellation (see stop()).
        self._epoch_task: asyncio.Task | None = None
        #: An intent newer than the checkpoint still to replay: no other epoch may be
        #: written before it (it would take the intent's checkpoint id).
        self._replay_pending = False
        self.error: str = ""
        self.stats = {"input_events": 0, "input_bytes": 0, "output_events": 0, "output_errors": 0,
                      "dead_letter_events": 0}
        self._cpu0 = self._cpu()
        self._wall0 = time.monotonic()
        self._util = 0.0
        self.on_failure: Callable[[str], None] | None = None  # set by the service
        #: set by the service: a transient trouble (an input or output held by a peer that
        #: fails or does not answer) began ("..."), or every one ended ("").
        self.on_degraded: Callable[[str], None] | None = None
        self._troubles: dict[str, str] = {}
        self.faults = FaultFile(self.settings.faults_file)
        self.on_epoch: Callable[[], None] | None = None  # after every epoch (the worker reports metrics)
        #: File stream inputs by alias (files named by a path pattern instead of a hub).
        self.file_inputs: dict[str, Any] = {}
        #: Refreshed reference inputs: alias -> RefreshState (JobMetrics.references).
        self.references: dict[str, Any] = {}
        self._fresh = False

    # -- persistence ----------------------------------------------------------------
    @property
    def _ckpt(self) -> Path:
        return self.dir / "checkpoint.json"

    @property
    def _state(self) -> Path:
        return self.dir / "state.bin"

    @property
    def _intent(self) -> Path:
        return self.dir / "intent.json"

    def _load_checkpoint(self) -> dict | None:
        if not self._ckpt.exists():
            return None
        return json.loads(self._ckpt.read_text())

    async def _save_checkpoint(self) -> None:
        body = {"epoch": self.epoch, "positions": [[a, p, s] for (a, p), s in self.positions.items()],
                "state_file": f"state-{self.epoch}.bin", "start": self.start_from,
                "stats": self.stats, "partitions": {f"{a}/{p}": [part.fed_seq, part.fed_arrival_us]
                                                    for (a, p), part in self.partitions.items()}}
        if self.settings.checkpoint_fork and hasattr(os, "fork") and hasattr(self.rt, "snapshot_begin"):
            t0 = time.perf_counter()
            pid, captured = await self._in_worker(self._fork_checkpoint, body)
            self.last_checkpoint_pause_ms = (time.perf_counter() - t0) * 1000
            if pid:
                self._ckpt_writer = asyncio.ensure_future(self._reap_checkpoint(pid, body, captured))
            else:
                self._checkpointed(body)
            return
        t0 = time.perf_counter()
        await self._in_worker(self._write_checkpoint, body)
        self.last_checkpoint_pause_ms = (time.perf_counter() - t0) * 1000
        self._checkpointed(body)

    def _checkpointed(self, body: dict) -> None:
        self.last_checkpoint_time = time.time()
        self.checkpoint_id = body["epoch"]

    def _fork_checkpoint(self, body: dict) -> tuple[int, Any]:
        """In the worker thread: take the vectorised state, fork; the child serializes the
        rest from its copy-on-write image, writes the checkpoint and exits. A state known
        to be small (vectorised only, under ``checkpoint_fork_min_bytes``) is written here
        instead, and 0 returned: a fork costs more than that (the copy of the page tables,
        then copy-on-write faults in the job), every epoch. An incremental checkpoint counts
        only the tables that changed: an idle vectorised job writes here, without a fork."""
        captured = self.rt.snapshot_begin(self._base)
        size = captured.nbytes() if hasattr(captured, "nbytes") else None
        if size is not None and size < self.settings.checkpoint_fork_min_bytes:
            self._write_checkpoint(body, captured.finish(), captured)
            return 0, captured
        pid = os.fork()
        if pid:
            return pid, captured
        code = 1
        try:  # the child: only this thread exists; it writes files and leaves
            with contextlib.suppress(Exception):
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # dies with the job
            if os.getppid() != 1:
                self._write_checkpoint(body, captured.finish())
                code = 0
        except BaseException:  # noqa: BLE001
            import traceback

            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            os._exit(code)

    async def _reap_checkpoint(self, pid: int, body: dict, captured: Any) -> None:
        deadline = time.monotonic() + self.settings.checkpoint_fork_timeout_s
        status = None
        while status is None:
            try:
                done, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: whether it wrote shows on disk
                ckpt = self._load_checkpoint()
                status = 0 if ckpt is not None and ckpt.get("epoch") == body["epoch"] else 1
                break
            if done:
                status = os.waitstatus_to_exitcode(st)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -signal.SIGKILL
            else:
                await asyncio.sleep(0.005)
        if status != 0:  # nothing was fed since the fork (an epoch waits for this first): write it here
            log.warning("job %s: the checkpoint writer of epoch %d exited with %s; writing it whole in the worker",
                        self.job.name, body["epoch"], status)
            await self._in_worker(self._write_checkpoint, body, None, None, True)
        else:  # the child's file is the base of the next checkpoint
            self._base = await self._in_worker(self._base_of, body["state_file"], captured)
        self._checkpointed(body)

    async def _checkpoint_written(self) -> None:
        """Wait for the forked writer of the last checkpoint: the engine moves on, and
        the next intent is written, only once it is durable."""
        task, self._ckpt_writer = self._ckpt_writer, None
        if task is not None:
            await asyncio.shield(task)

    def _base_of(self, state_file: str, captured: Any = None) -> Any:
        from headwater.services.processing.state.chain import Base
        from headwater.services.processing.state.snapshot import SnapshotError

        try:
            return Base.of_file(self.dir, state_file, captured)
        except (SnapshotError, OSError, KeyError):  # not this engine's format: the next one is whole
            return None

    def _write_checkpoint(self, body: dict, blob: bytes | None = None, captured: Any = None,
                          whole: bool = False) -> None:
        """Write the checkpoint: its state file (incremental on ``self._base`` unless
        ``whole``), durable before ``checkpoint.json`` names it; then the state files it
        does not refer to go. Runs in the worker thread, or in the forked writer."""
        from headwater.services.processing.state.chain import collect

        if blob is None:
            if whole or not hasattr(self.rt, "snapshot_begin"):
                blob = self.rt.snapshot()
            else:
                captured = self.rt.snapshot_begin(self._base)
                blob = captured.finish()
        write_atomic(self._state.with_name(body["state_file"]), blob)
        verdicts = getattr(self.rt, "verdicts", None)
        if verdicts is not None and verdicts.by_input:  # ListEventVerdicts reads them from here
            import orjson

            write_atomic(self.dir / "verdicts.json", orjson.dumps(verdicts.export()))
        write_atomic(self._ckpt, json.dumps(body).encode())
        collect(self.dir, body["state_file"], blob)
        self._base = self._base_of(body["state_file"], captured)

    def _restore(self, state_file: str) -> None:
        """Continue from the checkpoint's state file, the sections it refers to read from
        the earlier files that hold them; the file is the next checkpoint's base."""
        from headwater.services.processing.state.chain import resolve

        self.rt.restore(resolve((self.dir / state_file).read_bytes(), self.dir))
        self._base = self._base_of(state_file)

    # -- start / stop -------------------------------------------------------------------
    async def start(self, mode: int, start_time: datetime | None = None) -> None:
        ckpt = self._load_checkpoint()
        replay: dict | None = None
        if ckpt is not None and mode == pb.JOB_START_MODE_WHEN_LAST_STOPPED:  # UNSPECIFIED is NOW
            self.epoch = ckpt["epoch"]
            self.positions = {(a, p): s for a, p, s in ckpt["positions"]}
            if ckpt.get("state_file"):  # None: UpdateJob discarded a state the new query cannot use
                await self._in_worker(self._restore, ckpt["state_file"])
            verdicts = getattr(self.rt, "verdicts", None)
            if verdicts is not None and (self.dir / "verdicts.json").exists():  # the recent range goes on
                verdicts.load(json.loads((self.dir / "verdicts.json").read_bytes()))
            self.start_from = ckpt.get("start", "earliest")
            # Counts persist with the checkpoint: a restart neither resets them nor
            # counts a replayed epoch twice (the replay starts from these).
            self.stats.update(ckpt.get("stats", {}))
            self.last_checkpoint_time = self._ckpt.stat().st_mtime
            self.checkpoint_id = self.epoch
            if self._intent.exists():
                intent = json.loads(self._intent.read_text())
                if intent["epoch"] > self.epoch:
                    replay = intent
        elif mode == pb.JOB_START_MODE_WHEN_LAST_STOPPED and self._intent.exists() and "start" in (
                intent := json.loads(self._intent.read_text())):
            # Killed after the first epoch's outputs, before its checkpoint: replay that
            # epoch from where the job started (its rows may be out: the sinks take the
            # replay, with the same epoch, as a duplicate). Starting afresh would write
            # them again under a new epoch.
            self.epoch, self.positions, self.start_from = 0, {}, intent["start"]
            replay = intent
        else:
            # A fresh start (NOW, EARLIEST, CUSTOM_TIME) forgets the positions and the
            # state but not the epoch: the sinks keep the last checkpoint id of this
            # job's writers and would take epochs counted again from 1 as duplicates.
            self.epoch = max(self.epoch, last_epoch(self.dir))
            for f in (self._ckpt, self._intent):
                f.unlink(missing_ok=True)
            self._fresh = True
            if mode == pb.JOB_START_MODE_CUSTOM_TIME and start_time is not None:
                self.start_from = start_time.astimezone(UTC).isoformat()
            elif mode in (pb.JOB_START_MODE_EARLIEST, pb.JOB_START_MODE_WHEN_LAST_STOPPED):
                self.start_from = "earliest"
            else:  # NOW: events enqueued from the start on, however late a reader connects
                self.start_from = datetime.now(UTC).isoformat()
        await self._load_references()
        starts = await self._start_positions()
        # The replay and the loop run in the background: a replay held by a sink that is
        # down must not hold StartJob (or the service's start) with it.
        self._replay_pending = replay is not None
        self.loop_task = asyncio.create_task(self._loop(replay, starts), name=f"job {self.job.name}")

    async def _start_readers(self, starts: dict) -> None:
        for (alias, hub, group, pid), position in starts.items():
            if (alias, pid) in self.positions:  # after a replayed epoch, not from the checkpoint before it
                position = event_pb2.EventPosition(sequence_number=self.positions[(alias, pid)], inclusive=False)
            self.tasks.append(asyncio.create_task(self._reader(alias, hub, group, pid, position),
                                                  name=f"read {alias}/{pid}"))
        self.tasks.append(asyncio.create_task(self._watch_backlog(starts), name="backlog"))
        for alias, fs in self.file_inputs.items():
            self.tasks.append(asyncio.create_task(self._file_reader(alias, fs), name=f"files {alias}"))
        for alias, src in getattr(self.rt, "reference_sources", {}).items():
            if src.interval_s > 0:
                self.tasks.append(asyncio.create_task(self._refresh_loop(alias, src), name=f"refresh {alias}"))

    # -- refreshed reference data ---------------------------------------------------------
    def _reference_file(self, alias: str) -> Path:
        return self.dir / f"reference-{alias.lower()}.json"

    async def _load_references(self) -> None:
        """Snapshots kept from before a restart (so a replayed epoch joins what it joined),
        then a load now; a first load that fails fails the start, unless kept snapshots
        serve meanwhile."""
        from headwater.services.processing.exec.join import ReferenceVersions
        from headwater.services.processing.refdata import RefreshState

        for alias, src in getattr(self.rt, "reference_sources", {}).items():
            self.references[alias] = RefreshState(interval_s=src.interval_s)
            kept = self._reference_file(alias)
            if self._fresh:
                kept.unlink(missing_ok=True)
            had = False
            if kept.exists():
                versions = ReferenceVersions.from_json(kept.read_bytes())
                for vf, rows in zip(versions.starts, versions.rows):
                    await self._in_worker(self.rt.add_reference_version, alias, vf, rows)
                had = bool(versions.starts)
            try:
                await self._refresh_once(alias, src, first=True, kept=had)
            except HeadwaterError:
                if not had:
                    raise

    async def _refresh_once(self, alias: str, src: Any, first: bool = False, kept: bool = False) -> None:
        from headwater.services.processing import refdata

        state = self.references[alias]
        now = refdata.now_us()
        try:
            got = await asyncio.to_thread(src.load, now, first)
        except HeadwaterError as exc:
            state.failures += 1
            state.last_error = exc.message
            log.warning("job %s: reference input %s: refresh failed, the last good snapshot stays: %s",
                        self.job.name, alias, exc.message)
            raise
        except Exception as exc:  # noqa: BLE001 - a source's failure never stops the job
            state.failures += 1
            state.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s: reference input %s: refresh failed, the last good snapshot stays: %s",
                        self.job.name, alias, state.last_error)
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {alias}: {state.last_error}") from None
        if got is None:
            return
        valid_from, rows = got
        if kept and valid_from <= refdata.BEGINNING:
            valid_from = now  # kept snapshots serve the events before this start
        await self._in_worker(self.rt.add_reference_version, alias, valid_from, rows)
        versions = self.rt.rt.ref_versions.get(alias.lower()) if hasattr(self.rt, "rt") else None
        if versions is not None:
            await self._in_worker(write_atomic, self._reference_file(alias), versions.to_json())
        state.refreshes += 1
        state.rows = len(rows)
        state.valid_from_us = valid_from
        log.info("job %s: reference input %s: %d rows valid from %s", self.job.name, alias, len(rows),
                 "the start" if valid_from <= refdata.BEGINNING else
                 datetime.fromtimestamp(valid_from / 1e6, UTC).isoformat())

    async def _refresh_loop(self, alias: str, src: Any) -> None:
        """Every ``refresh_interval``: a new snapshot; a failure keeps the last good one."""
        while True:
            await asyncio.sleep(src.interval_s)
            with contextlib.suppress(HeadwaterError):
                await self._refresh_once(alias, src)

    # -- file stream inputs ---------------------------------------------------------------
    def _file_chunks(self, alias: str, pid: str, bodies: list, arrivals: list, seqs: list) -> list[Chunk]:
        out = []
        step = self.settings.read_batch_size
        for i in range(0, len(bodies), step):
            b = bodies[i:i + step]
            offsets = np.zeros(len(b) + 1, np.int64)
            np.cumsum([len(x) for x in b], out=offsets[1:])
            out.append(Chunk(alias, pid, b"".join(b), offsets, np.array(seqs[i:i + step], np.int64),
                             np.array(arrivals[i:i + step], np.int64), ["application/json"]))
        return out

    def _start_us(self) -> int | None:
        if self.start_from == "earliest":
            return None
        return int(datetime.fromisoformat(self.start_from).timestamp() * 1_000_000)

    async def _file_reader(self, alias: str, fs: Any) -> None:
        """Take each partition's files in path-time order, each event's arrival time its
        file's time; once every file listed has been taken, the partition is caught up to
        the moment of the listing (as an idle hub partition is to the service's clock)."""
        settings = self.settings
        while True:
            listed_us = int(time.time() * 1_000_000)
            try:
                entries = await asyncio.to_thread(fs.pattern.files)
                if fs.assign(entries, listed_us):
                    await asyncio.to_thread(fs.save)
                for pid in fs.partitions():
                    key = (alias, pid)
                    if key not in self._stream_partitions:
                        self._stream_partitions.append(key)
                    part = self.partitions.setdefault(key, PartitionProgress())
                    files = fs.manifest[pid]
                    while fs.next.get(pid, 0) < len(files):
                        idx = fs.next.get(pid, 0)
                        after = max(self.positions.get(key, -1), part.read_seq)
                        if idx < (after >> 32 if after >= 0 else 0):
                            fs.next[pid] = idx + 1
                            continue
                        bodies, arrivals, seqs = await asyncio.to_thread(
                            fs.events, pid, idx, settings.max_input_file_bytes, after, self._start_us())
                        for chunk in self._file_chunks(alias, pid, bodies, arrivals, seqs):
                            part.read_seq = chunk.last_sequence
                            part.read_arrival_us = int(chunk.arrivals[-1])
                            part.last_enqueued = max(part.last_enqueued, part.read_seq)
                            part.read_events += len(chunk)
                            await self._queue(alias, pid).put(chunk)
                            self._ready.set()
                        fs.next[pid] = idx + 1
                    part.pending_tail = (part.read_seq, listed_us)
                    part.seen = True
            except HeadwaterError as exc:
                self._fail(f"input {alias}: {exc.message}")
                return
            self._ready.set()
            await asyncio.sleep(settings.file_poll_interval_s)

    async def _replay_files(self, ends: dict) -> list[Chunk]:
        """File partitions' events in (position, intent's end], read again from the same
        files (the manifest gives each sequence number's file)."""
        items: list[Chunk] = []
        for (alias, pid), end in ends.items():
            fs = self.file_inputs.get(alias)
            if fs is None or pid not in fs.manifest:
                continue
            begin = self.positions.get((alias, pid), -1)
            if end <= begin:
                continue
            for idx in range(begin >> 32 if begin >= 0 else 0, (end >> 32) + 1):
                bodies, arrivals, seqs = await asyncio.to_thread(
                    fs.events, pid, idx, self.settings.max_input_file_bytes, begin, self._start_us())
                keep = [i for i, q in enumerate(seqs) if q <= end]
                items.extend(self._file_chunks(alias, pid, [bodies[i] for i in keep], [arrivals[i] for i in keep],
                                               [seqs[i] for i in keep]))
        return items

    async def _watch_backlog(self, starts: dict, interval_s: float = 1.0) -> None:
        """Each partition's last sequence number, also while its reader is failing or
        behind (the backlog metric), from the partitions' properties."""
        from headwater.v1 import ingestion_pb2 as ipb

        while True:
            await asyncio.sleep(interval_s)
            for (alias, hub, _group, pid) in starts:
                try:
                    props = await self._call(self.ingestion.GetPartitionProperties,
                                             ipb.GetPartitionPropertiesRequest(name=f"{hub}/partitions/{pid}"))
                except HeadwaterError:
                    continue
                part = self.partitions.setdefault((alias, pid), PartitionProgress())
                part.last_enqueued = max(part.last_enqueued, props.partition.last_enqueued_sequence_number)

    async def stop(self, final_checkpoint: bool = True) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.loop_task is not None:
            self.loop_task.cancel()
            await asyncio.gather(self.loop_task, return_exceptions=True)
        # An epoch being written finishes first (its rows are already out of the engine).
        epoch_done = await self._finish_epoch()
        if final_checkpoint and epoch_done and not self.error and not self._replay_pending:
            pending, self._pending = self._pending + self._drain_queue(), []
            self._epoch_task = asyncio.ensure_future(self._run_epoch(pending))
            await self._finish_epoch()
        with contextlib.suppress(Exception):  # its failure is logged; the last durable checkpoint stays
            await self._checkpoint_written()
        self._worker.shutdown(wait=False)

    async def _finish_epoch(self) -> bool:
        """Wait for the epoch being written; False if it was given up.

        An output held longer than ``stop_hold_timeout_s`` (a sink that is down) is
        given up: its intent stays durable and the next start replays it, so nothing
        is lost or written twice. A failure of the epoch becomes the job's error."""
        task = self._epoch_task
        if task is None:
            return True
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.settings.stop_hold_timeout_s)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                log.warning("job %s: stopped while an output was held; epoch %d is replayed at the next start",
                            self.job.name, self.epoch)
                return False
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not self.error:
                self.error = str(exc) if isinstance(exc, HeadwaterError) else f"{type(exc).__name__}: {exc}"
            return False
        return not task.cancelled()

    async def _start_positions(self):
        from headwater.v1 import ingestion_pb2 as ipb

        starts: dict[tuple[str, str, str, str], event_pb2.EventPosition] = {}
        for inp in self.job.inputs:
            if inp.kind == pb.INPUT_KIND_REFERENCE:
                continue
            if inp.path_pattern and not inp.hub:
                from headwater.services.processing.files import FileStream, PathPattern
                from headwater.services.processing.refdata import _roots

                pattern = PathPattern(inp.path_pattern, _roots(getattr(self.rt, "config", None)), "path_pattern",
                                      inp.date_format, inp.time_format)
                fs = self.file_inputs[inp.alias] = FileStream(inp.alias, pattern,
                                                              self.dir / f"files-{inp.alias.lower()}.json", self._fresh)
                for pid in fs.partitions():
                    self._stream_partitions.append((inp.alias, pid))
                continue
            hub = inp.hub if inp.hub.startswith("hubs/") else f"hubs/{inp.hub}"
            resp = await retry_async(functools.partial(self._call, self.ingestion.GetHub,
                                                       ipb.GetHubRequest(name=hub)), self.settings.retry)
            group = inp.consumer_group or "$Default"
            for pid in resp.hub.partition_ids:
                if self.only_partitions is not None and pid not in self.only_partitions:
                    continue
                key = (inp.alias, pid)
                self._stream_partitions.append(key)
                if key in self.positions:
                    pos = event_pb2.EventPosition(sequence_number=self.positions[key], inclusive=False)
                elif self.start_from == "earliest":
                    pos = event_pb2.EventPosition(earliest=True)
                else:
                    pos = event_pb2.EventPosition(enqueued_time=_ts(datetime.fromisoformat(self.start_from)))
                starts[(inp.alias, hub, group, pid)] = pos
        return starts

    async def _call(self, method, request, **kw):
        """One call to another service, with the deadline ``call_timeout_s`` (a peer that
        does not answer in time fails it with SERVICE_TIMEOUT). No retry here: each
        call path has one retry layer (docs/errors.md)."""
        import grpc

        kw.setdefault("timeout", self.settings.call_timeout_s)
        try:
            return await method(request, **kw)
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None

    def _trouble(self, where: str, error: HeadwaterError | None) -> None:
        """Record that ``where`` (an input partition, an output) is held by a transient
        error, or is fine again; the service shows the job DEGRADED meanwhile."""
        before = "; ".join(self._troubles.values())
        if error is None:
            self._troubles.pop(where, None)
        else:  # the latest error of a run of failures: what is wrong now
            self._troubles[where] = f"{where}: {error.reason.value}: {error.message}"
        now = "; ".join(self._troubles.values())
        if now != before and self.on_degraded:
            self.on_degraded(now)

    async def _stream(self, req, hub: str, pid: str):
        """The answers of one ReadEvents stream, each within ``call_timeout_s`` (ingestion
        answers at least every max_wait, 250 ms, while a partition is idle): a hung peer
        ends the stream with SERVICE_TIMEOUT instead of holding the reader forever."""
        import grpc

        await self.faults.check("read", hub)
        call = self.ingestion.ReadEvents(req)
        it = call.__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.call_timeout_s):
                        resp = await it.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise HeadwaterError(
                        Reason.SERVICE_TIMEOUT, f"ingestion sent nothing for {self.settings.call_timeout_s:g}s "
                        f"(call_timeout_s) on the read of {hub} partition {pid}") from None
                except grpc.aio.AioRpcError as exc:
                    raise await HeadwaterError.from_aio_call(exc) from None
                yield resp
        finally:
            call.cancel()

    # -- reading ---------------------------------------------------------------------------
    def _read_request(self, hub: str, group: str, pid: str, position, max_events: int, alias: str = ""):
        from headwater.v1 import ingestion_pb2 as ipb

        # Properties only for inputs whose readers call GetMetadataPropertyValue (hot path).
        props = alias.lower() in getattr(self.rt, "metadata_inputs", ())
        return ipb.ReadEventsRequest(hub=hub, partition_id=pid, consumer_group=group, event_position=position,
                                     max_batch_size=max_events, max_wait=duration_pb2.Duration(nanos=250_000_000),
                                     packed=True, track_last_enqueued_event_properties=True,
                                     include_properties=props)

    async def _reader(self, alias: str, hub: str, group: str, pid: str, position) -> None:
        """Read one partition for as long as the job runs: the read path's one retry layer
        (transient failures reconnect after the shared policy's backoff, without bound:
        the job waits for its input, DEGRADED meanwhile)."""
        attempt = 0
        where = f"input {alias} partition {pid}"
        queue = self._queue(alias, pid)
        batch = self.settings.read_batch_size
        while True:
            req = self._read_request(hub, group, pid, position, batch, alias)
            try:
                async with contextlib.aclosing(self._stream(req, hub, pid)) as stream:
                    async for resp in stream:
                        if attempt:
                            attempt = 0
                            self._trouble(where, None)
                        chunk = Chunk.of(alias, pid, resp)
                        self._track(alias, pid, resp, chunk)
                        if chunk is None:
                            continue
                        await queue.put(chunk)
                        self._ready.set()
                        position = event_pb2.EventPosition(sequence_number=chunk.last_sequence, inclusive=False)
                        # Read batches of about a quarter of the partition's read-ahead
                        # (large events): the stream is opened again with that size.
                        fit = queue.batch_events(chunk, self.settings.read_batch_size)
                        if fit * 2 < batch or (fit > batch * 2 and len(chunk) == batch):
                            batch = fit
                            break
            except HeadwaterError as err:
                if not err.is_transient and err.reason is not Reason.CONSUMER_DISCONNECTED:
                    self._fail(f"{where}: {err}")
                    return
                attempt += 1
                self._trouble(where, err)
                await asyncio.sleep(self.settings.retry.backoff(attempt, err))

    def _track(self, alias: str, pid: str, resp, chunk: Chunk | None) -> None:
        """What a read answer says of its partition: how far it has been read (in
        arrival time) and what the partition holds (its last sequence number)."""
        part = self.partitions.setdefault((alias, pid), PartitionProgress())
        if chunk is not None:
            part.read_seq = chunk.last_sequence
            part.read_arrival_us = int(chunk.arrivals[-1])
        if resp.HasField("retrieval_time"):
            t = resp.retrieval_time
            last = resp.last_enqueued_sequence_number
            if chunk is None or chunk.last_sequence >= last:
                # At the end of the partition at the service's clock: once every event
                # read so far has been fed, nothing that arrived before then is unfed.
                part.pending_tail = (part.read_seq, t.seconds * 1_000_000 + t.nanos // 1000)
                if part.read_seq < 0:
                    part.base_seq = last  # nothing read: what is there lies before the start
            part.last_enqueued = last
        part.seen = True

    def _queue(self, alias: str, pid: str) -> ReadAhead:
        q = self.queues.get((alias, pid))
        if q is None:
            share = self.settings.read_ahead_bytes // max(1, len(self._stream_partitions))
            q = self.queues[(alias, pid)] = ReadAhead(max(share, 2**20))
        return q

    def _drain_queue(self, only: set | None = None, budget: int | None = None) -> list[Chunk]:
        """What the readers have queued (of the ``only`` partitions, if given), a chunk
        from each partition in turn until ``budget`` bytes are taken (None: everything);
        a chunk that crosses the budget is split, its first events taken (at least one)."""
        items: list[Chunk] = []
        queues = [q for key, q in self.queues.items() if only is None or key in only]
        while queues:
            more = []
            for q in queues:
                try:
                    chunk = q.get_nowait()
                except asyncio.QueueEmpty:
                    continue
                if budget is not None and chunk.nbytes > budget and len(chunk) > 1:
                    # Only what fits (at least one event): the rest waits for the next epoch.
                    n = max(1, int(np.searchsorted(chunk.offsets[1:] - chunk.offsets[0], budget, side="right")))
                    if n < len(chunk):
                        q.put_back(chunk.take(slice(n, len(chunk))))
                        chunk = chunk.take(slice(0, n))
                items.append(chunk)
                more.append(q)
                if budget is not None:
                    budget -= chunk.nbytes
                    if budget <= 0:
                        return items
            queues = more
        return items

    def _laggards(self) -> set:
        """The partitions the arrival clock waits for (least far read)."""
        fronts = {k: max(p.taken_arrival_us, p.caught_up_us) for k in self._stream_partitions
                  if (p := self.partitions.get(k)) is not None}
        fronts.update({k: 0 for k in self._stream_partitions if k not in fronts})
        low = min(fronts.values(), default=0)
        return {k for k, v in fronts.items() if v == low}

    async def _replay(self, intent: dict, starts: dict) -> None:
        """Re-read exactly the intent's range and run that epoch again with its clock."""
        ends = {(a, p): s for a, p, s in intent["positions"]}
        items: list[Chunk] = []
        for (alias, hub, group, pid), position in starts.items():
            end = ends.get((alias, pid), -1)
            begin = self.positions.get((alias, pid), -1)
            if end <= begin:
                continue
            # A partition with no position yet starts where the job started (not earliest).
            pos = event_pb2.EventPosition(sequence_number=begin, inclusive=False) if begin >= 0 else position
            last = begin
            while last < end:
                req = self._read_request(hub, group, pid, pos, min(self.settings.read_batch_size, end - last),
                                         alias)
                chunk = await retry_async(functools.partial(self._read_once, req, alias, pid), self.settings.retry)
                if chunk is None:
                    continue
                chunk = chunk.upto(end)
                items.append(chunk)
                last = chunk.last_sequence
                pos = event_pb2.EventPosition(sequence_number=last, inclusive=False)
        items.extend(await self._replay_files(ends))
        clock = intent["clock"]
        self.epoch = intent["epoch"] - 1
        log.info("job %s: replaying epoch %d after a restart", self.job.name, intent["epoch"])
        self._epoch_task = asyncio.ensure_future(self._run_epoch(items, _clock_us(clock)))
        await asyncio.shield(self._epoch_task)
        self._replay_pending = False

    async def _read_once(self, req, alias: str, pid: str) -> Chunk | None:
        """The first answer of one ReadEvents stream (events, or none within its max_wait)."""
        async for resp in self._stream(req, req.hub, pid):
            return Chunk.of(alias, pid, resp)
        return None

    # -- the epoch loop --------------------------------------------------------------------
    async def _loop(self, replay: dict | None = None, starts: dict | None = None) -> None:
        interval = self.settings.checkpoint_interval_s
        try:
            if replay is not None:
                await self._replay(replay, starts or {})
            await self._start_readers(starts or {})
            while True:
                deadline = time.monotonic() + interval
                # Too many events waiting for a lagging partition (by count, or more bytes
                # than an epoch): take only the laggards' (the others' readers fill their
                # read-ahead and pause). What is held and who lags change at epochs only.
                held = self._held
                only = (self._laggards() if sum(map(len, held)) >= self.settings.max_held_events
                        or sum(c.nbytes for c in held) >= self.settings.max_epoch_bytes else None)
                room = self.settings.max_epoch_bytes - sum(c.nbytes for c in self._pending)
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or room <= 0:
                        break  # the interval is over, or a full epoch: a backlog goes in bounded steps
                    taken = self._drain_queue(only, room)
                    if taken:
                        self._pending.extend(taken)
                        room -= sum(c.nbytes for c in taken)
                        continue
                    self._ready.clear()
                    try:
                        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                        # cancel (StopJob) that races with a completed get.
                        async with asyncio.timeout(remaining):
                            await self._ready.wait()
                    except TimeoutError:
                        break
                items, self._pending = self._pending, []
                # Shielded: a StopJob between the intent and the checkpoint must not
                # leave an epoch half done (its rows are already out of the engine).
                self._epoch_task = asyncio.ensure_future(self._run_epoch(items))
                await asyncio.shield(self._epoch_task)
        except asyncio.CancelledError:
            raise
        except HeadwaterError as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("job %s failed", self.job.name)
            self._fail(f"{type(exc).__name__}: {exc}")

    def _arrival_clock(self, taken: dict[tuple[str, str], Chunk]) -> int | None:
        """The arrival time every input partition has been read past.

        A partition's frontier is the arrival time of the last event taken from
        it (fed, or held for a later epoch) or, once everything it held at some
        moment has been taken, that moment (the service's clock in the read answer:
        anything enqueued later arrives later). The job's clock is the smallest
        frontier: a window over arrival time closes only when every partition has
        been read past its end, however far behind one reader is. None while some
        partition has not answered yet."""
        for key, chunk in taken.items():
            part = self.partitions.setdefault(key, PartitionProgress())
            part.taken_seq = chunk.last_sequence
            part.taken_arrival_us = int(chunk.arrivals[-1])
        clock = None
        for key in self._stream_partitions:
            part = self.partitions.setdefault(key, PartitionProgress())
            if part.pending_tail is not None and part.taken_seq >= part.pending_tail[0]:
                part.caught_up_us = max(part.caught_up_us, part.pending_tail[1])
            frontier = max(part.taken_arrival_us, part.caught_up_us)
            if frontier <= 0:
                return None  # some partition has not been read past anything yet
            clock = frontier if clock is None else min(clock, frontier)
        return clock

    def _hold_back(self, chunks: list[Chunk], clock_us: int | None) -> dict:
        """The events to feed now, one chunk per partition: those that arrived by the
        clock. Later ones wait (``self._held``, slices of the chunks read: not copied
        again while they wait) until every partition has been read past them, so the
        engine sees all partitions' events in arrival order, whatever each reader's pace."""
        groups: dict[tuple[str, str], list[Chunk]] = {}
        for c in chunks:  # the held ones first: each partition's events in read order
            groups.setdefault((c.alias, c.partition_id), []).append(c)
        feed: list[Chunk] = []
        self._held = []
        for group in groups.values():
            for i, chunk in enumerate(group):
                n = 0 if clock_us is None else int(np.searchsorted(chunk.arrivals, clock_us, side="right"))
                if n == len(chunk):
                    feed.append(chunk)
                    continue
                if n:
                    feed.append(chunk.take(slice(0, n)))
                self._held.append(chunk.take(slice(n, len(chunk))) if n else chunk)
                self._held.extend(group[i + 1:])  # what follows waits too (read order)
                break
        return merge_chunks(feed)

    async def _run_epoch(self, items: list[Chunk], clock_us: int | None | str = "now") -> None:
        await self._checkpoint_written()
        if clock_us == "now":
            clock_us = self._arrival_clock({(c.alias, c.partition_id): c for c in items})  # each one's last
            merged = self._hold_back(self._held + items, clock_us)
        else:  # a replay: exactly the recorded events, with the recorded clock
            merged = merge_chunks(items)
        new_positions = dict(self.positions)
        for (alias, pid), chunk in merged.items():
            new_positions[(alias, pid)] = chunk.last_sequence
            part = self.partitions.setdefault((alias, pid), PartitionProgress())
            part.fed_seq = chunk.last_sequence
            part.fed_events += len(chunk)
            part.fed_arrival_us = int(chunk.arrivals[-1])
        self.stats["input_events"] += sum(len(c) for c in merged.values())
        self.stats["input_bytes"] += sum(c.nbytes for c in merged.values())
        batches = await self._in_worker(self._engine_epoch, merged, clock_us)
        self.epoch += 1
        intent = json.dumps({"epoch": self.epoch, "clock": clock_us, "start": self.start_from,
                             "positions": [[a, p, s] for (a, p), s in new_positions.items()]}).encode()
        await self._in_worker(write_atomic, self._intent, intent)
        await self._publish_dead()
        await self._write_outputs(batches)
        self.positions = new_positions
        await self._save_checkpoint()
        self._sample_utilization()
        if self.on_epoch is not None:
            self.on_epoch()

    def _engine_epoch(self, merged: dict[tuple[str, str], Chunk], clock_us: int | None) -> dict[str, list]:
        try:
            return self._engine_step(merged, clock_us)
        finally:
            self._take_counters()

    def _engine_step(self, merged: dict[tuple[str, str], Chunk], clock_us: int | None) -> dict[str, list]:
        """In the worker: feed the epoch's events, move the clock, take the outputs
        as Arrow IPC record batches per output alias."""
        rt = self.rt
        dead_letters = self.job.dead_letter_hub and hasattr(rt, "take_dead")
        for (alias, pid) in sorted(merged):
            chunk = merged[(alias, pid)]
            if hasattr(rt, "feed_packed"):
                for ct, part in chunk.by_content_type():
                    if part.meta is not None:
                        rt.feed_packed(alias, pid, part.bodies, part.offsets, ct, part.arrivals, part.seqs,
                                       metadata=part.metadata())
                    else:
                        rt.feed_packed(alias, pid, part.bodies, part.offsets, ct, part.arrivals, part.seqs)
                    if dead_letters:
                        self._dead.extend(self._dead_letter_events(alias, part, ct, rt.take_dead()))
        if not hasattr(rt, "feed_packed"):
            for alias, cols in rows_in_arrival_order(merged).items():
                rt.feed(alias, *cols)
        if clock_us is not None:
            if hasattr(rt, "advance_arrival"):
                rt.advance_arrival(clock_us)
            else:
                rt.advance(datetime.fromtimestamp(clock_us / 1e6, UTC))
        if hasattr(rt, "take_output_tables"):
            out = {alias: _table_batches(table, self.settings.write_batch_rows)
                   for alias, table in rt.take_output_tables().items() if table.num_rows}
        else:
            out = {alias: [_to_record_batch(rows[i:i + self.settings.write_batch_rows])
                           for i in range(0, len(rows), self.settings.write_batch_rows)]
                   for alias, rows in rt.take_outputs().items() if rows}
        return out

    def _dead_letter_events(self, alias: str, chunk: Chunk, content_type: str, dead: list[dict]) -> list:
        """The failed events of ``chunk`` as dead-letter events: the original body (the
        decoded record when the engine did not know the event's position) with its
        provenance as properties."""
        import orjson

        events = []
        hub = next((i.hub for i in self.job.inputs if i.alias.lower() == alias.lower()), "")
        for d in dead:
            seq, body, enq = d["sequence_number"], None, None
            if seq is not None:
                i = int(np.searchsorted(chunk.seqs, seq))
                if i < len(chunk) and int(chunk.seqs[i]) == seq:
                    body = chunk.bodies[int(chunk.offsets[i]):int(chunk.offsets[i + 1])]
                    enq = int(chunk.arrivals[i])
            if body is None:
                body = orjson.dumps(d.get("record"), default=str) if d.get("record") is not None else b""
            reason = d["reason"]
            kind = "InputDeserializationError" if reason.startswith("InputDeserializationError") else \
                "ConversionError"
            props = {"headwater-dl-job": self.job.name, "headwater-dl-kind": "input",
                     "headwater-dl-input": alias, "headwater-dl-hub": hub,
                     "headwater-dl-partition": str(d["partition"] if d["partition"] is not None else chunk.partition_id),
                     "headwater-dl-sequence-number": "" if seq is None else str(seq),
                     "headwater-dl-enqueued-time": "" if enq is None else
                     datetime.fromtimestamp(enq / 1e6, UTC).isoformat().replace("+00:00", "Z"),
                     "headwater-dl-reason": kind, "headwater-dl-message": reason[:2000]}
            events.append(event_pb2.EventData(body=bytes(body), properties=props, content_type=content_type))
        return events

    async def _publish_dead(self) -> None:
        """Dead letters of the epoch go out before its outputs and checkpoint (at least
        once: an epoch replayed after a crash may send them again)."""
        events, self._dead = self._dead, []
        if not events:
            return
        from headwater.v1 import ingestion_pb2 as ipb

        hub = self.job.dead_letter_hub if self.job.dead_letter_hub.startswith("hubs/") else \
            f"hubs/{self.job.dead_letter_hub}"
        for i in range(0, len(events), 500):
            req = ipb.PublishEventsRequest(hub=hub, events=events[i:i + 500])
            await retry_async(functools.partial(self._call, self.ingestion.PublishEvents, req), self.settings.retry)
        self.stats["dead_letter_events"] = self.stats.get("dead_letter_events", 0) + len(events)

    def _take_counters(self) -> None:
        """In the worker, after the engine's work: counters for metrics() to read."""
        rt = self.rt
        self._counters = rt.counters()
        self._watermark = rt.watermark()
        if hasattr(rt, "error_samples"):
            self._error_samples = [str(x) for x in rt.error_samples()]
        elif self._counters.get("samples"):
            self._error_samples = [str(x) for x in self._counters["samples"]]

    async def _in_worker(self, fn, *args):
        """Run ``fn`` in the job's worker thread: the engine's work and the
        checkpoint files never hold the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def _write_outputs(self, outputs: dict[str, list]) -> None:
        from headwater.v1 import sink_pb2 as spb

        targets = {o.alias.lower(): o for o in self.job.outputs}
        for alias, batches in outputs.items():
            out = targets.get(alias.lower())
            if out is None:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"the query writes INTO [{alias}] but the job has no output with that alias")
            if not batches:
                continue
            sink = out.sink if out.sink.startswith("sinks/") else f"sinks/{out.sink}"
            for i, batch in enumerate(batches):
                req = spb.WriteRowsRequest(
                    sink=sink, batch=batch, writer=f"{self.job.name}/outputs/{out.alias}{self.writer_suffix}",
                    checkpoint_id=self.epoch, batch_id=i, commit=i == len(batches) - 1)
                await self._write_held(req, out.alias, sink, batch.row_count)

    async def _write_held(self, req, alias: str, sink: str, rows: int) -> None:
        """One write under the job's output error policy.

        A transient failure (the sink service down, busy, or not answering within
        ``call_timeout_s``: SERVICE_TIMEOUT) holds the output, and so the job's progress,
        until the sink takes the write, under both policies, the job DEGRADED meanwhile:
        this loop is the write path's one retry layer (the sink service makes one attempt
        per call), with the shared policy's backoff floored by the sink's retry_after. As
        in Stream Analytics the policy decides only what happens to rows the sink refuses
        (a permanent error): Retry fails the job naming the output, Drop counts them in
        output_errors and goes on."""
        drop = self.job.output_error_policy == pb.OUTPUT_ERROR_POLICY_DROP
        where = f"output {alias} (sink {sink})"
        held = 0
        while True:
            try:
                await self.faults.check("write", sink.removeprefix("sinks/"))
                resp = await self._call(self.sinks.WriteRows, req)
                dropped = resp.rows_dropped if resp is not None else 0
                self.stats["output_events"] += rows - dropped
                if dropped:  # the sink's own Drop policy dropped rows: output errors of the job too
                    self.stats["output_errors"] += dropped
                    log.error("job %s output %s: the sink dropped %d rows: %s", self.job.name, alias, dropped,
                              resp.drop_reason)
                    if self.job.dead_letter_hub:
                        self._dead = _refused_rows(self.job.name, alias, sink, req.batch, HeadwaterError(
                            Reason.INVALID_ARGUMENT, resp.drop_reason or "dropped by the sink"),
                            list(resp.dropped_rows))
                        await self._publish_dead()
                if held:
                    self._trouble(where, None)
                return
            except HeadwaterError as exc:
                if not exc.is_transient:
                    if held:
                        self._trouble(where, None)
                    if drop:
                        self.stats["output_errors"] += rows
                        log.error("job %s output %s: dropped %d rows: %s", self.job.name, alias, rows, exc)
                        if self.job.dead_letter_hub:
                            self._dead = _refused_rows(self.job.name, alias, sink, req.batch, exc)
                            await self._publish_dead()
                        return
                    raise HeadwaterError(Reason.JOB_FAILED, f"{where}: {exc.message}") from exc
                held += 1
                self.stats["output_retries"] = self.stats.get("output_retries", 0) + 1
                self._trouble(where, exc)
                if held == 1 or held % 10 == 0:
                    log.warning("job %s output %s: holding epoch %d, retrying: %s", self.job.name, alias,
                                self.epoch, exc)
                await asyncio.sleep(self.settings.retry.backoff(held, exc))

    # -- failure and metrics -------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error = message
        log.error("job %s failed: %s", self.job.name, message)
        for t in self.tasks:
            t.cancel()
        if self.on_failure:
            self.on_failure(message)

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def _sample_utilization(self) -> None:
        now, cpu = time.monotonic(), self._cpu()
        wall = now - self._wall0
        if wall >= 1.0:
            self._util = min(100.0, 100.0 * (cpu - self._cpu0) / wall)
            self._cpu0, self._wall0 = cpu, now

    def _starved(self, alias: str, pid: str, part: PartitionProgress, backlog: int) -> bool:
        """Backlog, and no advance for ``starvation_after_s``: starved (logged when it starts and ends)."""
        now = time.monotonic()
        if part.progress_mark[0] != part.fed_seq or backlog == 0:
            part.progress_mark = (part.fed_seq, now)
        starved = backlog > 0 and now - part.progress_mark[1] >= self.settings.starvation_after_s
        if starved != part.starved:
            part.starved = starved
            if starved:
                log.warning("job %s: input %s partition %s is starved: %d events waiting and no progress for "
                            "%.0f s; %s", self.job.name, alias, pid, backlog, now - part.progress_mark[1],
                            _starvation_hint(self.job, alias))
            else:
                log.info("job %s: input %s partition %s advances again", self.job.name, alias, pid)
        return starved

    def metrics(self) -> pb.JobMetrics:
        c = self._counters or self.rt.counters()
        m = pb.JobMetrics(
            input_events=self.stats["input_events"], input_bytes=self.stats["input_bytes"],
            output_events=self.stats["output_events"], output_errors=self.stats["output_errors"],
            output_retries=self.stats.get("output_retries", 0),
            late_input_events=c.get("late", 0), early_input_events=c.get("early", 0),
            out_of_order_events=c.get("out_of_order", 0),
            input_deserialization_errors=c.get("deserialization_errors", 0),
            data_conversion_errors=c.get("conversion_errors", 0), runtime_errors=c.get("runtime_errors", 0),
            su_utilization_percent=self._util, last_error_sample=str(c.get("last_error_sample", "") or ""),
            last_checkpoint_id=self.checkpoint_id,
            poison_events=c.get("deserialization_errors", 0) + c.get("conversion_errors", 0),
            dead_letter_events=self.stats.get("dead_letter_events", 0),
        )
        m.error_samples.extend(self._error_samples[-20:])
        if self.last_checkpoint_time:
            m.last_checkpoint_time.FromNanoseconds(int(self.last_checkpoint_time * 1e9))
        m.last_checkpoint_pause.FromMicroseconds(int(self.last_checkpoint_pause_ms * 1000))
        now_us = time.time() * 1e6
        wm = self._watermark
        if wm is not None:
            delay = max(0.0, (datetime.now(UTC) - wm).total_seconds())
            m.watermark_delay.FromNanoseconds(int(delay * 1e9))
        inputs: dict[str, int] = {}
        for (alias, pid) in self._stream_partitions:
            part = self.partitions.get((alias, pid), PartitionProgress())
            frontier = max(part.fed_arrival_us, part.caught_up_us)
            if alias in self.file_inputs:  # read and not yet fed (files not read yet: unknown)
                backlog = max(0, part.read_events - part.fed_events)
            else:
                backlog = max(0, part.last_enqueued - max(part.fed_seq, part.base_seq))
            pm = m.partitions.add(input=alias, partition_id=pid, last_sequence_number=part.fed_seq,
                                  backlog_events=backlog, starved=self._starved(alias, pid, part, backlog))
            m.starved_partitions += pm.starved
            pm.watermark_delay.FromNanoseconds(int(max(0.0, now_us - frontier) * 1000) if frontier else 0)
            inputs[alias] = min(inputs.get(alias, frontier), frontier)
        for alias, frontier in inputs.items():
            if frontier > 0:
                m.input_watermarks.add(input=alias).watermark.FromMicroseconds(int(frontier))
        for alias, st in self.references.items():
            r = m.references.add(input=alias, refreshes=st.refreshes, refresh_failures=st.failures, rows=st.rows,
                                 last_error=st.last_error)
            if st.valid_from_us > 0:
                r.valid_from.FromMicroseconds(int(st.valid_from_us))
        m.read_time.GetCurrentTime()
        return m


def _starvation_hint(job: pb.Job, alias: str) -> str:
    group = next((i.consumer_group for i in job.inputs if i.alias.lower() == alias.lower()), "") or "$Default"
    return (f"another reader on consumer group {group} may be taking the partition (an exclusive reader "
            f"disconnects the job's): give each job its own consumer group (headwater consumer-group create, "
            f"then headwater job update {job.name.removeprefix('jobs/')} --consumer-group GROUP on the stopped job); "
            f"headwater consumer-group owners shows the processors that claim partitions")


def _refused_rows(job: str, alias: str, sink: str, batch, exc: HeadwaterError,
                  only: list[int] | None = None) -> list:
    """Output rows a sink refused for good (the ``only`` positions, else all), as dead-letter
    events (one JSON row each)."""
    import orjson
    import pyarrow as pa

    if batch.format == event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC:
        rows = [orjson.dumps(r, default=str) for r in pa.ipc.open_stream(batch.data).read_all().to_pylist()]
    else:
        rows = [line for line in batch.data.split(b"\n") if line.strip()]
    if only is not None:
        rows = [rows[i] for i in only if 0 <= i < len(rows)]
    props = {"headwater-dl-job": job, "headwater-dl-kind": "output", "headwater-dl-output": alias,
             "headwater-dl-sink": sink, "headwater-dl-reason": f"OutputError {exc.reason.value}",
             "headwater-dl-message": exc.message[:2000]}
    return [event_pb2.EventData(body=r, properties=props, content_type="application/json") for r in rows]


def _to_record_batch(rows: list[dict]):
    """Rows of an engine without ``take_output_tables`` as an Arrow IPC stream, typed as a
    job's tables are (:func:`..engine_adapter.output_table`: int and float mixed as float,
    other mixes, records and arrays as JSON text), never JSON lines a typed sink refuses."""
    from headwater.services.processing.engine_adapter import output_table

    return _ipc(output_table(rows, {}))


def _ipc(table):
    """An Arrow table as an Arrow IPC stream RecordBatch (the contract's format)."""
    import pyarrow as pa

    from headwater.v1 import event_pb2

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC,
                                 data=sink.getvalue().to_pybytes(), row_count=table.num_rows)


def _table_batches(table, rows_per_batch: int) -> list:
    """An engine's output table (its plan-declared schema) as write batches: no row objects."""
    return [_ipc(table.slice(i, rows_per_batch)) for i in range(0, table.num_rows, rows_per_batch)]
