"""Scale-out: a job's partitions split between processing replicas and tasks.

With ``scale_out`` on, a running job is a set of **tasks**, each a worker process
(:class:`~headwater.services.processing.worker.JobWorker`) owning some input
partitions through the ingestion service's ownership store (``ClaimOwnership`` /
``ListOwnerships`` in the input's consumer group, the store Event Hubs consumers
balance with):

- a partition-parallel job (Stream Analytics' "embarrassingly parallel": one
  stream input, no step keeping state across events, or what the engine says)
  runs one task per partition, with that partition's own checkpoint and its own
  output writer (``jobs/{job}/outputs/{alias}/partitions/{p}``), so the tasks
  scale with their number and each moves between replicas alone;
- any other job runs as one task that must own every partition; the other
  replicas stand by.

Every replica balances every few seconds: it claims free or expired partitions
up to its fair share (partitions / live replicas), hands extra ones back (task
stopped with a final checkpoint first, then the claim released) and renews its
claims. Replicas share the checkpoint folder (``checkpoint_dir``, a shared
volume) and the job catalogue in it: a job is started once, through any
replica, and the others join it. Where the job starts (StartJob's mode, NOW
made a time) is kept in ``jobs/{job}/start.json``, so a partition first run
later, on any replica, starts from the same position. Because of the shared folder, a replica taking a partition over (after a kill -9 of its owner,
once the claim expires) resumes it from the last checkpoint and replays its
last epoch with the same checkpoint id: 0 lost, 0 duplicated rows in sinks that
keep checkpoint ids. Live replicas are known from presence files in the same
folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import HeadwaterError
from headwater.storage import write_atomic
from headwater.v1 import processing_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Callable

    from headwater.services.processing.worker import JobWorker
    from headwater.v1 import ingestion_pb2 as ipb

__all__ = ["ScaledJob"]

log = logging.getLogger("headwater.processing.slots")

ALL = "all"


class ScaledJob:
    """One job in scale-out mode on this replica (the JobRunner's interface)."""

    def __init__(self, job: pb.Job, config, ingestion, root: Path, replica_id: str, parallel: bool,
                 hub: str, group: str, partitions: list[str], make_task) -> None:
        self.job = job
        self.config = config
        self.ingestion = ingestion
        self.root = root
        self.me = replica_id
        self.parallel = parallel
        self.hub_id = hub.removeprefix("hubs/")
        self.group = group
        self.partitions = partitions
        self.make_task = make_task  # (slot partitions | None, state dir, writer suffix) -> JobWorker
        self.tasks: dict[str, JobWorker] = {}
        self.claims: dict[str, ipb.Ownership] = {}  # partition -> our Ownership
        self.error = ""
        self.on_failure: Callable[[str], None] | None = None
        #: a task's input or output is held ("..."), or none is ("")
        self.on_degraded: Callable[[str], None] | None = None
        self._degraded: dict[str, str] = {}  # slot -> what holds it
        self._loop: asyncio.Task | None = None
        self._expiry_s = 30.0
        self._renewed_at = time.monotonic()
        self._final: dict[str, pb.JobMetrics] = {}
        self._handing_off: set[str] = set()
        self._starting: set[str] = set()
        self._background: set[asyncio.Task] = set()
        #: Set by the manager: joining a job started elsewhere (or resuming it): its
        #: partitions never run start where start.json says, not at ``mode``.
        self.joining = False
        self._position: tuple[int, datetime | None] | None = None

    # -- where things are -------------------------------------------------------------
    def _slot_dir(self, slot: str) -> Path:
        from headwater.services.processing.jobs import job_id

        base = self.root / "jobs" / job_id(self.job.name)
        return base if slot == ALL else base / "partitions" / slot

    def _presence(self) -> Path:
        from headwater.services.processing.jobs import job_id

        return self.root / "replicas" / job_id(self.job.name)

    def _live_replicas(self) -> set[str]:
        folder = self._presence()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / self.me).touch()
        now = time.time()
        live = {self.me}
        for f in folder.iterdir():
            with contextlib.suppress(OSError):
                if now - f.stat().st_mtime < 2 * self._expiry_s:
                    live.add(f.name)
        return live

    # -- lifecycle ----------------------------------------------------------------------
    def _start_file(self) -> Path:
        return self._slot_dir(ALL) / "start.json"

    def _start_position(self, mode: int, start_time) -> tuple[int, datetime | None]:
        """Where this job's never-run partitions start: StartJob's mode (NOW as the
        time it was asked), recorded in start.json; joining, or resuming, what is there."""
        f = self._start_file()
        if (self.joining or mode == pb.JOB_START_MODE_WHEN_LAST_STOPPED) and f.exists():
            rec = json.loads(f.read_text())
            at = datetime.fromisoformat(rec["start_time"]) if rec.get("start_time") else None
            return int(rec["mode"]), at
        if mode in (pb.JOB_START_MODE_NOW, pb.JOB_START_MODE_UNSPECIFIED):
            mode, start_time = pb.JOB_START_MODE_CUSTOM_TIME, datetime.now(UTC)
        if mode != pb.JOB_START_MODE_WHEN_LAST_STOPPED:
            write_atomic(f, json.dumps({"mode": mode,
                                        "start_time": start_time.isoformat() if start_time else None}).encode())
        return mode, start_time

    def record_start(self, mode: int, start_time) -> None:
        """StartJob: record where the job starts (start.json) before the job is marked
        STARTING, so a replica joining it then reads this start, not an older one."""
        self._position = self._start_position(mode, start_time)

    async def start(self, mode: int, start_time) -> None:
        self._mode, self._start_time = self._position or self._start_position(mode, start_time)
        await self._balance()
        self._loop = asyncio.create_task(self._run(), name=f"balance {self.job.name}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self._expiry_s / 4))
            try:
                await self._balance()
            except HeadwaterError as exc:
                log.warning("job %s: balancing partitions: %s", self.job.name, exc)
            except Exception:  # noqa: BLE001
                log.exception("job %s: balancing partitions", self.job.name)
            if self.tasks and time.monotonic() - self._renewed_at > 0.9 * self._expiry_s:
                # Our claims could not be renewed in time: another replica may take the
                # partitions now, so our tasks stop (no final checkpoint: the new owner
                # resumes from the last one) rather than run one partition twice.
                log.warning("job %s: claims not renewed for %.1f s; stopping tasks %s", self.job.name,
                            time.monotonic() - self._renewed_at, sorted(self.tasks))
                for slot in list(self.tasks):
                    await self._stop_task(slot, False)
                self.claims.clear()

    async def stop(self, final_checkpoint: bool = True) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        for slot in list(self.tasks):
            await self._stop_task(slot, final_checkpoint)
        await self._release(list(self.claims))
        with contextlib.suppress(OSError):
            (self._presence() / self.me).unlink()

    # -- balancing ------------------------------------------------------------------------
    async def _call(self, method, request):
        import grpc

        try:
            return await method(request, timeout=self.config.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None

    async def _balance(self) -> None:
        from headwater.v1 import ingestion_pb2 as ipb

        resp = await self._call(self.ingestion.ListOwnerships,
                                ipb.ListOwnershipsRequest(hub=self.hub_id, consumer_group=self.group))
        now = time.time()
        current = {o.partition_id: o for o in resp.ownerships}
        self._learn_expiry(resp.ownerships)

        def free(pid: str) -> bool:
            o = current.get(pid)
            return o is None or not o.owner_id or o.expire_time.ToNanoseconds() / 1e9 <= now

        mine = {p for p, o in current.items() if o.owner_id == self.me and not free(p)}
        # Renew first: nothing below (a task stopping or starting) may let our claims lapse.
        self.claims = await self._claim([current[p] for p in sorted(mine)])
        self._renewed_at = time.monotonic()
        lost = {p for p in mine if p not in self.claims}
        mine -= lost
        live = self._live_replicas()
        if self.parallel:
            target = math.ceil(len(self.partitions) / max(1, len(live)))
            # A task still starting is handed over once it runs (stopping it first
            # needs it up: else it would start after the claim went to another replica).
            extra = [p for p in sorted(mine)[target:] if p not in self._handing_off and p not in self._starting
                     and p in self.tasks] if len(live) > 1 else []
            for pid in extra:  # hand over in the background: final checkpoint, then the claim
                self._handing_off.add(pid)
                self._spawn(self._hand_over(pid))
            want = [p for p in self.partitions if free(p) and p not in mine][:max(0, target - len(mine))]
        else:
            others = [p for p in self.partitions if not free(p) and p not in mine]
            want = [] if others else [p for p in self.partitions if p not in mine]
        if want:
            self.claims.update(await self._claim([current.get(p) or p for p in want]))
        # Tasks follow the claims (started and stopped in the background).
        held = set(self.claims) - self._handing_off
        slots = held if self.parallel else ({ALL} if set(self.claims) == set(self.partitions) else set())
        for slot in [s for s in self.tasks if s not in slots and s not in self._handing_off]:
            self._spawn(self._stop_task(slot, False))  # owned elsewhere now: its owner resumes it
        for slot in sorted(slots - set(self.tasks) - self._starting):
            self._starting.add(slot)
            self._spawn(self._start_task(slot))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _hand_over(self, pid: str) -> None:
        try:
            await self._stop_task(pid, True)
            await self._release([pid])
        finally:
            self._handing_off.discard(pid)

    async def _claim(self, items: list) -> dict:
        from headwater.v1 import ingestion_pb2 as ipb

        if not items:
            return {}
        req = ipb.ClaimOwnershipRequest()
        for it in items:
            if isinstance(it, str):
                req.ownerships.add(hub=self.hub_id, consumer_group=self.group, partition_id=it, owner_id=self.me)
            else:
                req.ownerships.add(hub=self.hub_id, consumer_group=self.group, partition_id=it.partition_id,
                                   owner_id=self.me, etag=it.etag)
        resp = await self._call(self.ingestion.ClaimOwnership, req)
        ours = {o.partition_id: o for o in resp.ownerships if o.owner_id == self.me}
        self._learn_expiry(ours.values())
        return ours

    def _learn_expiry(self, ownerships) -> None:
        """The store's claim lifetime, read off its ownerships: we renew four times in it.

        Read from our own claims too, not only from others': the first replica of a
        job otherwise kept the 30 s default, renewed every 7.5 s and let 3 s claims
        lapse under tasks still running (two replicas then ran one partition).
        """
        for o in ownerships:
            span = o.expire_time.ToNanoseconds() / 1e9 - o.last_modified_time.ToNanoseconds() / 1e9
            if span > 0:
                self._expiry_s = span

    async def _release(self, pids: list[str]) -> None:
        from headwater.v1 import ingestion_pb2 as ipb

        req = ipb.ClaimOwnershipRequest()
        for pid in pids:
            o = self.claims.pop(pid, None)
            if o is not None:
                req.ownerships.add(hub=self.hub_id, consumer_group=self.group, partition_id=pid, owner_id="",
                                   etag=o.etag)
        if req.ownerships:
            with contextlib.suppress(HeadwaterError):
                await self._call(self.ingestion.ClaimOwnership, req)

    async def _start_task(self, slot: str) -> None:
        try:
            await self._start_task_now(slot)
        except HeadwaterError as exc:
            log.error("job %s: task %s did not start: %s", self.job.name, slot, exc)
            self._task_failed(f"partition task {slot}: {exc.message}")
        finally:
            self._starting.discard(slot)

    async def _start_task_now(self, slot: str) -> None:
        state_dir = self._slot_dir(slot)
        fresh = not (state_dir / "checkpoint.json").exists() and not (state_dir / "intent.json").exists()
        # The start position (start.json) applies to a partition never run; one that
        # has a checkpoint or an epoch's intent (run before, here or on another
        # replica) resumes from it.
        mode = self._mode if fresh else pb.JOB_START_MODE_WHEN_LAST_STOPPED
        task = self.make_task(None if slot == ALL else [slot], state_dir,
                              "" if slot == ALL else f"/partitions/{slot}")
        task.on_failure = self._task_failed
        task.on_degraded = lambda message, slot=slot: self._task_degraded(slot, message)
        log.info("job %s: task %s starts on replica %s", self.job.name, slot, self.me)
        await task.start(mode, self._start_time)
        self.tasks[slot] = task

    async def _stop_task(self, slot: str, final: bool) -> None:
        task = self.tasks.pop(slot, None)
        if task is not None:
            await task.stop(final_checkpoint=final)
            self._final[slot] = task.metrics()
            if slot in self._degraded:  # a task handed off or stopped no longer holds the job
                self._task_degraded(slot, "")

    def _task_degraded(self, slot: str, message: str) -> None:
        """The job is DEGRADED while any of this replica's tasks is held."""
        if message:
            self._degraded[slot] = message
        else:
            self._degraded.pop(slot, None)
        if self.on_degraded:
            self.on_degraded("; ".join(self._degraded.values()))

    def _task_failed(self, message: str) -> None:
        self.error = message
        if self.on_failure:
            self.on_failure(message)

    # -- metrics ------------------------------------------------------------------------
    def metrics(self) -> pb.JobMetrics:
        """The tasks' metrics together: counts added, partitions side by side."""
        parts = [t.metrics() for t in self.tasks.values()]
        out = pb.JobMetrics()
        if not parts:
            return out
        for field in ("input_events", "input_bytes", "output_events", "late_input_events", "early_input_events",
                      "out_of_order_events", "input_deserialization_errors", "data_conversion_errors",
                      "runtime_errors", "output_errors", "poison_events", "output_retries", "starved_partitions",
                      "dead_letter_events"):
            setattr(out, field, sum(getattr(m, field) for m in parts))
        out.last_checkpoint_id = max(m.last_checkpoint_id for m in parts)
        latest = max(parts, key=lambda m: m.last_checkpoint_time.ToNanoseconds())
        out.last_checkpoint_time.CopyFrom(latest.last_checkpoint_time)
        out.last_checkpoint_pause.CopyFrom(
            max(parts, key=lambda m: m.last_checkpoint_pause.ToNanoseconds()).last_checkpoint_pause)
        out.watermark_delay.CopyFrom(max(parts, key=lambda m: m.watermark_delay.ToNanoseconds()).watermark_delay)
        out.su_utilization_percent = sum(m.su_utilization_percent for m in parts)
        out.last_error_sample = next((m.last_error_sample for m in parts if m.last_error_sample), "")
        for m in parts:
            out.partitions.extend(m.partitions)
            out.error_samples.extend(m.error_samples)
        refs: dict[str, pb.ReferenceMetrics] = {}  # each task loads the job's reference inputs: one of each
        for m in parts:
            for r in m.references:
                refs.setdefault(r.input, r)
        out.references.extend(refs.values())
        wms: dict[str, pb.InputWatermark] = {}
        for m in parts:
            for w in m.input_watermarks:
                if w.input not in wms or w.watermark.ToNanoseconds() < wms[w.input].watermark.ToNanoseconds():
                    wms[w.input] = w
        out.input_watermarks.extend(wms.values())
        out.read_time.GetCurrentTime()
        return out
