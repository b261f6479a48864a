"""Running a job: read hubs, run the query, write sinks, checkpoint.

A running job works in **epochs** of ``checkpoint_interval`` (default 1 s):

1. Reader tasks stream each input partition from the ingestion service
   (``ReadEvents`` with ``packed``: bodies in one buffer, numbers as columns) into
   a queue, as :class:`Chunk` s.
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
import json
import logging
import os
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async
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

    def restore(self, state: bytes) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def watermark(self) -> datetime | None: ...

    def stream_inputs(self) -> list[str]: ...


@dataclass
class Chunk:
    """Events of one input partition as columns (a packed read answer, or several
    of them merged): bodies in one buffer with n + 1 offsets, and per event its
    sequence number, arrival (enqueued) time in us and content type."""

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
            ids = np.array(p.content_type_ids, np.int32) if len(p.content_types) > 1 else None
            meta = list(p.metadata) if len(p.metadata) == len(p.sequence_numbers) else None
            return cls(alias, pid, p.bodies, np.array(p.body_offsets, np.int64),
                       np.array(p.sequence_numbers, np.int64), np.array(p.enqueued_times_us, np.int64),
                       list(p.content_types) or [""], ids,
                       np.array(p.offsets, np.int64) if meta is not None else None, meta)
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
        """The events selected by a slice or an index array, in that order."""
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
        if self.meta is None:
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
        out[key] = Chunk(key[0], key[1], b"".join(c.bodies[int(c.offsets[0]):int(c.offsets[-1])] for c in group),
                         np.concatenate(offs), np.concatenate([c.seqs for c in group]),
                         np.concatenate([c.arrivals for c in group]), names, ids,
                         np.concatenate([c.log_offsets for c in group]) if with_meta else None,
                         [m for c in group for m in c.meta] if with_meta else None)
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
        bodies, ctypes, pids = [], [], []
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
    #: (last sequence read, service clock us) of the latest answer that found the
    #: reader at the partition's end.
    pending_tail: tuple[int, int] | None = None
    #: Events up to here lay before the job's start position (not backlog).
    base_seq: int = -1
    #: A moment (us) by which everything enqueued in the partition has been fed.
    caught_up_us: int = 0
    #: Whether the partition has answered since the job started.
    seen: bool = False


def _clock_us(clock) -> int | None:
    """An intent's clock: us (int), or an ISO time (older intents), or None."""
    if clock is None or isinstance(clock, int):
        return clock
    return int(datetime.fromisoformat(clock).timestamp() * 1_000_000)


@dataclass
class RunnerSettings:
    checkpoint_interval_s: float = 1.0
    read_batch_size: int = 5000
    queue_batches: int = 64
    write_batch_rows: int = 10_000
    #: Most events held back for a lagging partition (arrived after the arrival clock)
    #: before the job stops taking more from its readers.
    max_held_events: int = 1_000_000
    #: How long a stop waits for an epoch whose output is held (sink down) before
    #: leaving it to be replayed at the next start.
    stop_hold_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=8, max_delay_s=60))


def _ts(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.astimezone(UTC).replace(tzinfo=None))
    return ts


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers never share one
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
        _atomic_write(state_dir / "epoch.json", json.dumps({"epoch": epoch}).encode())


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
        #: One bounded queue per partition (backpressure per reader: a partition whose
        #: events wait for a lagging one stops reading, the lagging one does not).
        self.queues: dict[tuple[str, str], asyncio.Queue] = {}
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
        #: The last checkpoint's epoch (0: none).
        self.checkpoint_id = 0
        self._watermark: datetime | None = None
        self.last_checkpoint_time: float = 0.0
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
        self.stats = {"input_events": 0, "input_bytes": 0, "output_events": 0, "output_errors": 0}
        self._cpu0 = self._cpu()
        self._wall0 = time.monotonic()
        self._util = 0.0
        self.on_failure = None  # callable(str) set by the service
        self.on_epoch = None  # callable() after every epoch (the worker reports metrics)

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
        await self._in_worker(self._write_checkpoint, body)
        self.last_checkpoint_time = time.time()
        self.checkpoint_id = self.epoch

    def _write_checkpoint(self, body: dict) -> None:
        _atomic_write(self._state.with_name(body["state_file"]), self.rt.snapshot())
        _atomic_write(self._ckpt, json.dumps(body).encode())
        for old in self.dir.glob("state-*.bin"):
            if old.name != body["state_file"]:
                old.unlink(missing_ok=True)

    # -- start / stop -------------------------------------------------------------------
    async def start(self, mode: int, start_time: datetime | None = None) -> None:
        ckpt = self._load_checkpoint()
        replay: dict | None = None
        if ckpt is not None and mode == pb.JOB_START_MODE_WHEN_LAST_STOPPED:  # UNSPECIFIED is NOW
            self.epoch = ckpt["epoch"]
            self.positions = {(a, p): s for a, p, s in ckpt["positions"]}
            await self._in_worker(lambda: self.rt.restore((self.dir / ckpt["state_file"]).read_bytes()))
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
            if mode == pb.JOB_START_MODE_CUSTOM_TIME and start_time is not None:
                self.start_from = start_time.astimezone(UTC).isoformat()
            elif mode in (pb.JOB_START_MODE_EARLIEST, pb.JOB_START_MODE_WHEN_LAST_STOPPED):
                self.start_from = "earliest"
            else:  # NOW: events enqueued from the start on, however late a reader connects
                self.start_from = datetime.now(UTC).isoformat()
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

    async def _watch_backlog(self, starts: dict, interval_s: float = 1.0) -> None:
        """Each partition's last sequence number, also while its reader is failing or
        behind (the backlog metric), from the partitions' properties."""
        from headwater.v1 import ingestion_pb2 as ipb

        while True:
            await asyncio.sleep(interval_s)
            for (alias, hub, _group, pid) in starts:
                try:
                    props = await self._call(self.ingestion.GetPartitionProperties,
                                             ipb.GetPartitionPropertiesRequest(name=f"{hub}/partitions/{pid}"),
                                             timeout=5)
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
            hub = inp.hub if inp.hub.startswith("hubs/") else f"hubs/{inp.hub}"
            resp = await retry_async(lambda hub=hub: self._call(self.ingestion.GetHub, ipb.GetHubRequest(name=hub)),
                                     self.settings.retry)
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
        import grpc

        try:
            return await method(request, **kw)
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None

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
        import grpc

        attempt = 0
        while True:
            req = self._read_request(hub, group, pid, position, self.settings.read_batch_size, alias)
            try:
                async for resp in self.ingestion.ReadEvents(req):
                    attempt = 0
                    chunk = Chunk.of(alias, pid, resp)
                    self._track(alias, pid, resp, chunk)
                    if chunk is not None:
                        await self._queue(alias, pid).put(chunk)
                        self._ready.set()
                        position = event_pb2.EventPosition(sequence_number=chunk.last_sequence, inclusive=False)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                err = await HeadwaterError.from_aio_call(exc)
                if not err.is_transient and err.reason is not Reason.CONSUMER_DISCONNECTED:
                    self._fail(f"input {alias} partition {pid}: {err}")
                    return
                attempt += 1
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))

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

    def _queue(self, alias: str, pid: str) -> asyncio.Queue:
        q = self.queues.get((alias, pid))
        if q is None:
            q = self.queues[(alias, pid)] = asyncio.Queue(maxsize=max(4, self.settings.queue_batches // 4))
        return q

    def _drain_queue(self, only: set | None = None) -> list[Chunk]:
        """Everything the readers have queued (of the ``only`` partitions, if given)."""
        items = []
        for key, q in self.queues.items():
            if only is not None and key not in only:
                continue
            while True:
                try:
                    items.append(q.get_nowait())
                except asyncio.QueueEmpty:
                    break
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
                chunk = await retry_async(lambda req=req, a=alias, p=pid: self._read_once(req, a, p),
                                          self.settings.retry)
                if chunk is None:
                    continue
                chunk = chunk.upto(end)
                items.append(chunk)
                last = chunk.last_sequence
                pos = event_pb2.EventPosition(sequence_number=last, inclusive=False)
        clock = intent["clock"]
        self.epoch = intent["epoch"] - 1
        log.info("job %s: replaying epoch %d after a restart", self.job.name, intent["epoch"])
        self._epoch_task = asyncio.ensure_future(self._run_epoch(items, _clock_us(clock)))
        await asyncio.shield(self._epoch_task)
        self._replay_pending = False

    async def _read_once(self, req, alias: str, pid: str) -> Chunk | None:
        """The first answer of one ReadEvents stream (events, or none within its max_wait)."""
        import grpc

        try:
            async for resp in self.ingestion.ReadEvents(req):
                return Chunk.of(alias, pid, resp)
            return None
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None

    # -- the epoch loop --------------------------------------------------------------------
    async def _loop(self, replay: dict | None = None, starts: dict | None = None) -> None:
        interval = self.settings.checkpoint_interval_s
        try:
            if replay is not None:
                await self._replay(replay, starts or {})
            await self._start_readers(starts or {})
            while True:
                deadline = time.monotonic() + interval
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    # Too many events waiting for a lagging partition: take only the
                    # laggards' (the others' readers fill their queues and pause).
                    only = self._laggards() if sum(map(len, self._held)) >= self.settings.max_held_events else None
                    taken = self._drain_queue(only)
                    if taken:
                        self._pending.extend(taken)
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

    def _hold_back(self, merged: dict[tuple[str, str], Chunk], clock_us: int | None) -> dict:
        """The events to feed now: those that arrived by the clock. Later ones wait
        (``self._held``) until every partition has been read past them, so the engine
        sees all partitions' events in arrival order, whatever each reader's pace."""
        feed, self._held = {}, []
        for key, chunk in merged.items():
            n = 0 if clock_us is None else int(np.searchsorted(chunk.arrivals, clock_us, side="right"))
            if n:
                feed[key] = chunk.take(slice(0, n)) if n < len(chunk) else chunk
            if n < len(chunk):
                self._held.append(chunk.take(slice(n, len(chunk))) if n else chunk)
        return feed

    async def _run_epoch(self, items: list[Chunk], clock_us: int | None | str = "now") -> None:
        if clock_us == "now":
            clock_us = self._arrival_clock(merge_chunks(items))
            merged = self._hold_back(merge_chunks(self._held + items), clock_us)
        else:  # a replay: exactly the recorded events, with the recorded clock
            merged = merge_chunks(items)
        new_positions = dict(self.positions)
        for (alias, pid), chunk in merged.items():
            new_positions[(alias, pid)] = chunk.last_sequence
            part = self.partitions.setdefault((alias, pid), PartitionProgress())
            part.fed_seq = chunk.last_sequence
            part.fed_arrival_us = int(chunk.arrivals[-1])
        self.stats["input_events"] += sum(len(c) for c in merged.values())
        self.stats["input_bytes"] += sum(c.nbytes for c in merged.values())
        batches = await self._in_worker(self._engine_epoch, merged, clock_us)
        self.epoch += 1
        intent = json.dumps({"epoch": self.epoch, "clock": clock_us, "start": self.start_from,
                             "positions": [[a, p, s] for (a, p), s in new_positions.items()]}).encode()
        await self._in_worker(_atomic_write, self._intent, intent)
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
        for (alias, pid) in sorted(merged):
            chunk = merged[(alias, pid)]
            if hasattr(rt, "feed_packed"):
                for ct, part in chunk.by_content_type():
                    if part.meta is not None:
                        rt.feed_packed(alias, pid, part.bodies, part.offsets, ct, part.arrivals, part.seqs,
                                       metadata=part.metadata())
                    else:
                        rt.feed_packed(alias, pid, part.bodies, part.offsets, ct, part.arrivals, part.seqs)
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

        A transient failure (the sink down or busy) holds the output, and so the
        job's progress, until the sink takes the write, under both policies: as in
        Stream Analytics the policy decides only what happens to rows the sink
        refuses (a permanent error): Retry fails the job naming the output, Drop
        counts them in output_errors and goes on."""
        drop = self.job.output_error_policy == pb.OUTPUT_ERROR_POLICY_DROP
        held = 0
        while True:
            try:
                await retry_async(lambda: self._call(self.sinks.WriteRows, req), self.settings.retry)
                self.stats["output_events"] += rows
                return
            except HeadwaterError as exc:
                if not exc.is_transient:
                    if drop:
                        self.stats["output_errors"] += rows
                        log.error("job %s output %s: dropped %d rows: %s", self.job.name, alias, rows, exc)
                        return
                    raise HeadwaterError(Reason.JOB_FAILED, f"output {alias} (sink {sink}): {exc.message}") from exc
                held += 1
                if held == 1 or held % 10 == 0:
                    log.warning("job %s output %s: holding epoch %d, retrying: %s", self.job.name, alias,
                                self.epoch, exc)
                await asyncio.sleep(min(2.0, self.settings.retry.max_backoff_s))

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

    def metrics(self) -> pb.JobMetrics:
        c = self._counters or self.rt.counters()
        m = pb.JobMetrics(
            input_events=self.stats["input_events"], input_bytes=self.stats["input_bytes"],
            output_events=self.stats["output_events"], output_errors=self.stats["output_errors"],
            late_input_events=c.get("late", 0), early_input_events=c.get("early", 0),
            out_of_order_events=c.get("out_of_order", 0),
            input_deserialization_errors=c.get("deserialization_errors", 0),
            data_conversion_errors=c.get("conversion_errors", 0), runtime_errors=c.get("runtime_errors", 0),
            su_utilization_percent=self._util, last_error_sample=str(c.get("last_error_sample", "") or ""),
            last_checkpoint_id=self.checkpoint_id,
            poison_events=c.get("deserialization_errors", 0) + c.get("conversion_errors", 0),
        )
        m.error_samples.extend(self._error_samples[-20:])
        if self.last_checkpoint_time:
            m.last_checkpoint_time.FromNanoseconds(int(self.last_checkpoint_time * 1e9))
        now_us = time.time() * 1e6
        wm = self._watermark
        if wm is not None:
            delay = max(0.0, (datetime.now(UTC) - wm).total_seconds())
            m.watermark_delay.FromNanoseconds(int(delay * 1e9))
        inputs: dict[str, int] = {}
        for (alias, pid) in self._stream_partitions:
            part = self.partitions.get((alias, pid), PartitionProgress())
            frontier = max(part.fed_arrival_us, part.caught_up_us)
            pm = m.partitions.add(input=alias, partition_id=pid, last_sequence_number=part.fed_seq,
                                  backlog_events=max(0, part.last_enqueued - max(part.fed_seq, part.base_seq)))
            pm.watermark_delay.FromNanoseconds(int(max(0.0, now_us - frontier) * 1000) if frontier else 0)
            inputs[alias] = min(inputs.get(alias, frontier), frontier)
        for alias, frontier in inputs.items():
            if frontier > 0:
                m.input_watermarks.add(input=alias).watermark.FromMicroseconds(int(frontier))
        m.read_time.GetCurrentTime()
        return m


def _to_record_batch(rows: list[dict]):
    """Rows as an Arrow IPC stream (the RecordBatch contract)."""
    import pyarrow as pa

    from headwater.v1 import event_pb2

    try:
        table = pa.Table.from_pylist([_plain(r) for r in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Stream Analytics types belong to values, not columns: a column whose
        # values mix types goes as JSON lines, which the contract also accepts.
        import orjson

        data = b"\n".join(orjson.dumps(r, default=str) for r in rows)
        return event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_JSON_LINES, data=data,
                                     row_count=len(rows))
    return _ipc(table)


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


def _plain(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (dict, list)):
            out[k] = json.dumps(v, default=str)
        else:
            out[k] = v
    return out
