"""Running a job: read hubs, run the query, write sinks, checkpoint.

A running job works in **epochs** of ``checkpoint_interval`` (default 1 s):

1. Reader tasks stream each input partition from the ingestion service
   (``ReadEvents``) into a queue, in batches.
2. At the end of an epoch the events read are fed to the query runtime in
   arrival order (enqueued time, then partition, then sequence number: the
   same order on every replay), then the watermark clock is advanced to the
   epoch's wall-clock time, so windows close on a quiet stream.
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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import duration_pb2, timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async
from headwater.v1 import event_pb2
from headwater.v1 import processing_pb2 as pb

__all__ = ["JobRunner", "QueryRuntime", "RunnerSettings", "forget_job", "last_epoch"]

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
class RunnerSettings:
    checkpoint_interval_s: float = 1.0
    read_batch_size: int = 5000
    queue_batches: int = 64
    write_batch_rows: int = 10_000
    #: How long a stop waits for an epoch whose output is held (sink down) before
    #: leaving it to be replayed at the next start.
    stop_hold_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=8, max_delay_s=60))


def _ts(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.astimezone(UTC).replace(tzinfo=None))
    return ts


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
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
                 sinks: Any, settings: RunnerSettings | None = None) -> None:
        self.job = job
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
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=self.settings.queue_batches)
        self.tasks: list[asyncio.Task] = []
        self.loop_task: asyncio.Task | None = None
        #: Batches taken off the queue for the epoch being gathered (kept here, not in a
        #: local, so a stop cannot lose them).
        self._pending: list[tuple[str, str, list]] = []
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

    def _save_checkpoint(self) -> None:
        state = self.rt.snapshot()
        _atomic_write(self._state.with_name(f"state-{self.epoch}.bin"), state)
        body = {"epoch": self.epoch, "positions": [[a, p, s] for (a, p), s in self.positions.items()],
                "state_file": f"state-{self.epoch}.bin", "start": self.start_from}
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
            self.rt.restore((self.dir / ckpt["state_file"]).read_bytes())
            self.start_from = ckpt.get("start", "earliest")
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
            self._epoch_task = asyncio.ensure_future(self._run_epoch(pending, datetime.now(UTC)))
            await self._finish_epoch()

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
                key = (inp.alias, pid)
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
    async def _reader(self, alias: str, hub: str, group: str, pid: str, position) -> None:
        import grpc

        from headwater.v1 import ingestion_pb2 as ipb

        attempt = 0
        while True:
            req = ipb.ReadEventsRequest(hub=hub, partition_id=pid, consumer_group=group,
                                        event_position=position, max_batch_size=self.settings.read_batch_size,
                                        max_wait=duration_pb2.Duration(seconds=1))
            try:
                async for resp in self.ingestion.ReadEvents(req):
                    attempt = 0
                    if resp.events:
                        await self.queue.put((alias, pid, list(resp.events)))
                        last = resp.events[-1].sequence_number
                        position = event_pb2.EventPosition(sequence_number=last, inclusive=False)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                err = await HeadwaterError.from_aio_call(exc)
                if not err.is_transient and err.reason is not Reason.CONSUMER_DISCONNECTED:
                    self._fail(f"input {alias} partition {pid}: {err}")
                    return
                attempt += 1
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))

    def _drain_queue(self) -> list[tuple[str, str, list]]:
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return items

    async def _replay(self, intent: dict, starts: dict) -> None:
        """Re-read exactly the intent's range and run that epoch again with its clock."""
        from headwater.v1 import ingestion_pb2 as ipb

        ends = {(a, p): s for a, p, s in intent["positions"]}
        items = []
        for (alias, hub, group, pid), position in starts.items():
            end = ends.get((alias, pid), -1)
            begin = self.positions.get((alias, pid), -1)
            if end <= begin:
                continue
            # A partition with no position yet starts where the job started (not earliest).
            pos = event_pb2.EventPosition(sequence_number=begin, inclusive=False) if begin >= 0 else position
            got: list = []
            while not got or got[-1].sequence_number < end:
                req = ipb.ReadEventsRequest(hub=hub, partition_id=pid, consumer_group=group, event_position=pos,
                                            max_batch_size=min(self.settings.read_batch_size, end - (
                                                got[-1].sequence_number if got else begin)),
                                            max_wait=duration_pb2.Duration(seconds=1))
                batch = await retry_async(lambda req=req: self._read_once(req), self.settings.retry)
                got.extend(e for e in batch if e.sequence_number <= end)
                if got:
                    pos = event_pb2.EventPosition(sequence_number=got[-1].sequence_number, inclusive=False)
            items.append((alias, pid, got))
        clock = datetime.fromisoformat(intent["clock"])
        self.epoch = intent["epoch"] - 1
        log.info("job %s: replaying epoch %d after a restart", self.job.name, intent["epoch"])
        self._epoch_task = asyncio.ensure_future(self._run_epoch(items, clock))
        await asyncio.shield(self._epoch_task)
        self._replay_pending = False

    async def _read_once(self, req) -> list:
        """The first answer of one ReadEvents stream (events, or none within its max_wait)."""
        import grpc

        try:
            async for resp in self.ingestion.ReadEvents(req):
                return list(resp.events)
            return []
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
                    try:
                        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                        # cancel (StopJob) that races with a completed get.
                        async with asyncio.timeout(remaining):
                            item = await self.queue.get()
                    except TimeoutError:
                        break
                    self._pending.append(item)
                    self._pending.extend(self._drain_queue())
                items, self._pending = self._pending, []
                # Shielded: a StopJob between the intent and the checkpoint must not
                # leave an epoch half done (its rows are already out of the engine).
                self._epoch_task = asyncio.ensure_future(self._run_epoch(items, datetime.now(UTC)))
                await asyncio.shield(self._epoch_task)
        except asyncio.CancelledError:
            raise
        except HeadwaterError as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("job %s failed", self.job.name)
            self._fail(f"{type(exc).__name__}: {exc}")

    async def _run_epoch(self, items: list[tuple[str, str, list]], clock: datetime) -> None:
        # Columns per input alias, in arrival order: (enqueued us, partition, sequence) is
        # the same order on every replay. Each reader batch is already in sequence order,
        # so a single partition's batches need no sort.
        by_alias: dict[str, list[tuple[str, list]]] = {}
        new_positions = dict(self.positions)
        for alias, pid, events in items:
            if events:
                by_alias.setdefault(alias, []).append((pid, events))
                new_positions[(alias, pid)] = events[-1].sequence_number
        for alias in sorted(by_alias):
            arrivals: list[int] = []
            bodies: list[bytes] = []
            ctypes: list[str] = []
            pids: list[str] = []
            seqs: list[int] = []
            for pid, events in by_alias[alias]:
                for e in events:
                    t = e.enqueued_time
                    arrivals.append(t.seconds * 1_000_000 + t.nanos // 1000)
                    ev = e.event
                    bodies.append(ev.body)
                    ctypes.append(ev.content_type)
                    seqs.append(e.sequence_number)
                pids.extend([pid] * len(events))
            if len({pid for pid, _ in by_alias[alias]}) > 1:
                order = sorted(range(len(bodies)), key=lambda i: (arrivals[i], pids[i], seqs[i]))
                arrivals = [arrivals[i] for i in order]
                bodies = [bodies[i] for i in order]
                ctypes = [ctypes[i] for i in order]
                pids = [pids[i] for i in order]
            self.stats["input_events"] += len(bodies)
            self.stats["input_bytes"] += sum(map(len, bodies))
            self.rt.feed(alias, bodies, ctypes, arrivals, pids)
        self.rt.advance(clock)
        outputs = self.rt.take_outputs()
        self.epoch += 1
        _atomic_write(self._intent, json.dumps({
            "epoch": self.epoch, "clock": clock.isoformat(), "start": self.start_from,
            "positions": [[a, p, s] for (a, p), s in new_positions.items()]}).encode())
        await self._write_outputs(outputs)
        self.positions = new_positions
        self._save_checkpoint()
        self._sample_utilization()

    async def _write_outputs(self, outputs: dict[str, list[dict]]) -> None:
        from headwater.v1 import sink_pb2 as spb

        targets = {o.alias.lower(): o for o in self.job.outputs}
        for alias, rows in outputs.items():
            out = targets.get(alias.lower())
            if out is None:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"the query writes INTO [{alias}] but the job has no output with that alias")
            if not rows:
                continue
            sink = out.sink if out.sink.startswith("sinks/") else f"sinks/{out.sink}"
            chunks = [rows[i:i + self.settings.write_batch_rows]
                      for i in range(0, len(rows), self.settings.write_batch_rows)]
            for i, chunk in enumerate(chunks):
                req = spb.WriteRowsRequest(
                    sink=sink, batch=_to_record_batch(chunk), writer=f"{self.job.name}/outputs/{out.alias}",
                    checkpoint_id=self.epoch, batch_id=i, commit=i == len(chunks) - 1)
                await self._write_held(req, out.alias, sink, len(chunk))

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
        c = self.rt.counters()
        m = pb.JobMetrics(
            input_events=self.stats["input_events"], input_bytes=self.stats["input_bytes"],
            output_events=self.stats["output_events"], output_errors=self.stats["output_errors"],
            late_input_events=c.get("late", 0), early_input_events=c.get("early", 0),
            out_of_order_events=c.get("out_of_order", 0),
            input_deserialization_errors=c.get("deserialization_errors", 0),
            data_conversion_errors=c.get("conversion_errors", 0), runtime_errors=c.get("runtime_errors", 0),
            su_utilization_percent=self._util, last_error_sample=str(c.get("last_error_sample", "") or ""),
        )
        wm = self.rt.watermark()
        if wm is not None:
            delay = max(0.0, (datetime.now(UTC) - wm).total_seconds())
            m.watermark_delay.FromNanoseconds(int(delay * 1e9))
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
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC,
                                 data=sink.getvalue().to_pybytes(), row_count=len(rows))


def _plain(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (dict, list)):
            out[k] = json.dumps(v, default=str)
        else:
            out[k] = v
    return out
