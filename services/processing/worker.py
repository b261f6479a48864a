"""A job's worker process: the job's engine runs here, off the service's event loop.

The service starts one process per running job (``spawn``, so nothing of the
service's gRPC or asyncio state is inherited), or hands the job the idle query worker
that compiled it (``QueryPool.take``: a spawned process too, the engine imported). The child builds the job's query
runtime, its own channels to ingestion and the sinks and a
:class:`~headwater.services.processing.runtime.JobRunner`, and runs it on its
own event loop. The two talk over a pipe with small messages:

- child -> service: ``("started",)`` or ``("start_failed", reason, message)``;
  ``("metrics", JobMetrics bytes)`` after every epoch and a few times a second;
  ``("failed", message, metrics)`` when the job fails; ``("stopped", error,
  metrics)`` as its last word after a stop.
- service -> child: ``("stop", final_checkpoint)``.

So the service's loop only moves bytes: health, GetJob and ListJobs answer while
a job runs flat out. The child dies with the service (``PR_SET_PDEATHSIG``, and
it stops when the pipe closes), so a kill -9 of the service leaves no job
running without it; the checkpoints on disk are the same as in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection

from headwater.errors import HeadwaterError, Reason
from headwater.interpreter import return_freed_memory, trim_freed_memory, tune_interpreter
from headwater.services.processing.launcher import WorkerProcess, die_with_parent, set_process_name, start_worker
from headwater.v1 import processing_pb2 as pb

__all__ = ["JobWorker"]

log = logging.getLogger("headwater.processing.worker")

_METRICS_INTERVAL_S = 0.25


class JobWorker:
    """The service's handle on one job's worker process (the JobRunner's interface:
    ``start``, ``stop``, ``metrics``, ``error``, ``on_failure``)."""

    def __init__(self, job: pb.Job, config, state_dir, partitions: list[str] | None = None,
                 writer_suffix: str = "",
                 spare: Callable[[], tuple[WorkerProcess, Connection] | None] | None = None) -> None:
        self.job = job
        #: An idle query worker to run in instead of spawning a process (QueryPool.take): it
        #: has imported the engine already.
        self.spare = spare
        self.partitions = partitions
        self.writer_suffix = writer_suffix
        self.config = config
        self.state_dir = state_dir
        self.error = ""
        self.on_failure: Callable[[str], None] | None = None  # set by the manager
        self.on_degraded: Callable[[str], None] | None = None  # set by the manager ("" when no longer degraded)
        self._metrics = pb.JobMetrics()
        self._proc: WorkerProcess | None = None
        self._conn: Connection | None = None
        self._waiters: dict[str, asyncio.Future] = {}
        self._closed = False

    # -- the service's side ------------------------------------------------------------
    async def start(self, mode: int, start_time: datetime | None) -> None:
        args = (self.job.SerializeToString(), self.config, str(self.state_dir), mode, start_time, self.partitions,
                self.writer_suffix)
        handed = self.spare() if self.spare is not None else None
        if handed is not None:  # the query worker that compiled the job becomes its worker
            self._proc, parent = handed
            parent.send(("become", *args))
        else:
            self._proc, parent = start_worker(_child_main, args, f"headwater job {self.job.name}")
        self._conn = parent
        loop = asyncio.get_running_loop()
        self._waiters["started"] = loop.create_future()
        loop.add_reader(parent.fileno(), self._on_readable, parent)
        await self._waiters["started"]

    def _on_readable(self, conn: Connection) -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            self._on_exit()
            return
        kind = msg[0]
        if kind == "metrics":
            self._metrics = pb.JobMetrics.FromString(msg[1])
        elif kind == "started":
            self._resolve("started", None)
        elif kind == "start_failed":
            self.error = msg[2]
            self._resolve("started", HeadwaterError(Reason[msg[1]], msg[2]))
        elif kind == "degraded":
            if self.on_degraded:
                self.on_degraded(msg[1])
        elif kind == "failed":
            self.error = msg[1]
            self._metrics = pb.JobMetrics.FromString(msg[2])
            if self.on_failure:
                self.on_failure(msg[1])
        elif kind == "stopped":
            self.error = msg[1] or self.error
            self._metrics = pb.JobMetrics.FromString(msg[2])
            self._resolve("stopped", None)

    def _resolve(self, key: str, exc: Exception | None) -> None:
        fut = self._waiters.get(key)
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _on_exit(self) -> None:
        """The pipe closed: the child is gone (stopped, or died)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self._conn is not None:
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
        expected = "stopped" in self._waiters and self._waiters["stopped"].done()
        if not expected and self._proc is not None:
            # Its pipe closed as it died; a forked worker's exit code comes from the template,
            # which reaps it a moment later (a worker that died unasked is rare: wait that moment).
            self._proc.join(0.1)
        code = self._proc.exitcode if self._proc is not None else None
        if not expected:
            message = f"the job's worker process exited (code {code})"
            started = self._waiters.get("started")
            if started is not None and not started.done():
                self.error = self.error or message
                self._resolve("started", HeadwaterError(Reason.JOB_FAILED, message))
            elif "stopped" in self._waiters:
                self._resolve("stopped", None)
            elif not self.error:
                self.error = message
                if self.on_failure:
                    self.on_failure(message)

    async def stop(self, final_checkpoint: bool = True) -> None:
        proc, conn = self._proc, self._conn
        if proc is None or conn is None:  # never started (the pipe is open once the process is)
            return
        loop = asyncio.get_running_loop()
        fut = self._waiters.setdefault("stopped", loop.create_future())
        if not self._closed:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(("stop", final_checkpoint))
            # The child finishes its epoch (bounded by stop_hold_timeout_s) and checkpoints.
            try:
                await asyncio.wait_for(asyncio.shield(fut), self.config.stop_hold_timeout_s + 30)
            except TimeoutError:
                log.error("job %s: the worker did not stop; killing it", self.job.name)
        await asyncio.to_thread(proc.join, 5)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, 5)
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())
        conn.close()

    def metrics(self) -> pb.JobMetrics:
        return self._metrics


# -- the child's side -----------------------------------------------------------------------
#: Job and query workers run a little below the service's priority: on a busy machine the
#: control plane (health, GetJob, StopJob) still gets the CPU first.
WORKER_NICE = 3
_lowered = False


def lower_priority() -> None:
    """Nice this worker process by WORKER_NICE below the service, once (a query worker that
    becomes a job's worker is lowered already)."""
    global _lowered
    if not _lowered:
        _lowered = True
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)


def _child_main(conn, job_bytes: bytes, config, state_dir: str, mode: int, start_time, partitions,
                writer_suffix: str) -> None:
    die_with_parent()
    set_process_name("hw-job")
    tune_interpreter()
    return_freed_memory()  # the job's batches: resident memory follows what it holds
    lower_priority()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops us (a Ctrl-C reaches the group)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as SIGINT: `headwater down` signals the whole group
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_child(conn, pb.Job.FromString(job_bytes), config, state_dir, mode, start_time, partitions,
                           writer_suffix))
    finally:
        conn.close()


async def _child(conn, job: pb.Job, config, state_dir: str, mode: int, start_time, partitions,
                 writer_suffix: str) -> None:
    from pathlib import Path

    from headwater.auth import ConnectionString, PolicyStore
    from headwater.channel import aio_channel
    from headwater.services.processing import engine_adapter
    from headwater.services.processing.runtime import JobRunner, RunnerSettings, ingestion_stub
    from headwater.v1 import sink_pb2_grpc

    loop = asyncio.get_running_loop()
    channels = []

    from headwater.secrets import SecretStore, resolve

    def channel(address: str, conn_str: str):
        conn_str = resolve(conn_str, SecretStore(config.secrets_path()), "connection_string")
        if conn_str:
            c = ConnectionString.parse(conn_str)
        else:
            c = ConnectionString(endpoint=f"headwater://{address}/")
            if config.auth_enabled:
                root = PolicyStore(config.auth_path()).ensure().root()
                c.shared_access_key_name, c.shared_access_key = root.name, root.key
        ch = aio_channel(c)
        channels.append(ch)
        return ch

    def send(*msg) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            conn.send(msg)

    try:
        runtime = await asyncio.to_thread(engine_adapter.runtime_for, job, config)
        stream_inputs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE]
        ingestion = ingestion_stub(
            channel(config.ingestion_address, stream_inputs[0].connection_string if stream_inputs else ""))
        sinks = sink_pb2_grpc.SinkServiceStub(
            channel(config.sink_address, job.outputs[0].connection_string if job.outputs else ""))
        settings = RunnerSettings.from_config(config)
        settings.checkpoint_fork = bool(getattr(config, "checkpoint_fork", True))
        runner = JobRunner(job, runtime, Path(state_dir), ingestion, sinks, settings,
                           partitions=partitions, writer_suffix=writer_suffix)
        await runner.start(mode, start_time)
    except HeadwaterError as exc:
        send("start_failed", exc.reason.name, exc.message)
        for ch in channels:
            await ch.close()
        return
    except Exception as exc:  # noqa: BLE001
        log.exception("job %s: start failed", job.name)
        send("start_failed", Reason.JOB_FAILED.name, f"{type(exc).__name__}: {exc}")
        return

    stop = loop.create_future()
    failed = []

    def on_failure(message: str) -> None:
        failed.append(message)
        send("failed", message, runner.metrics().SerializeToString())
        if not stop.done():
            stop.set_result(False)

    runner.on_failure = on_failure
    runner.on_degraded = lambda message: send("degraded", message)

    def on_epoch() -> None:
        send("metrics", runner.metrics().SerializeToString())
        trim_freed_memory()  # the epoch's buffers, freed mid-heap, back to the system

    runner.on_epoch = on_epoch

    def on_command() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the service is gone: stop at once, as a kill would
            os._exit(0)
        if msg[0] == "stop" and not stop.done():
            stop.set_result(bool(msg[1]))

    loop.add_reader(conn.fileno(), on_command)
    send("started")

    async def report() -> None:
        while True:
            await asyncio.sleep(_METRICS_INTERVAL_S)
            send("metrics", runner.metrics().SerializeToString())

    reporter = asyncio.create_task(report())
    final = await stop
    reporter.cancel()
    try:
        await runner.stop(final_checkpoint=final and not failed)
    finally:
        send("stopped", runner.error, runner.metrics().SerializeToString())
        loop.remove_reader(conn.fileno())
        for ch in channels:
            await ch.close()
