"""The job manager: compiles, starts, stops and watches the service's jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import datetime

import grpc

from headwater.auth import ConnectionString, PolicyStore
from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.secrets import SecretStore, resolve
from headwater.services.processing.alerts import AlertEvaluator
from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.jobs import JobCatalog, job_id
from headwater.services.processing.querypool import QueryPool
from headwater.services.processing.runtime import JobRunner, RunnerSettings, forget_job, ingestion_stub
from headwater.services.processing.slots import ScaledJob
from headwater.services.processing.worker import JobWorker
from headwater.storage import write_atomic, write_new
from headwater.v1 import processing_pb2 as pb

__all__ = ["JobManager"]

log = logging.getLogger("headwater.processing.jobs")

_ACTIVE = (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STARTING, pb.JOB_STATE_DEGRADED)


class JobManager:
    """Compiles, starts, stops and watches the service's jobs.

    With a shared catalogue (scale-out), a job's state is the replicas' common
    intent: StartJob and StopJob through any replica change it, and every replica's
    :meth:`reconcile` (every ``reconcile_interval_s``) joins the jobs that run and
    leaves those stopped, failed or deleted, without writing their state itself.
    """

    def __init__(self, config: ProcessingConfig, catalog: JobCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.runners: dict[str, JobRunner | JobWorker | ScaledJob] = {}
        #: The last metrics of jobs that stopped or failed in this process: a FAILED
        #: job still shows the runtime error that failed it.
        self.final_metrics: dict[str, pb.JobMetrics] = {}
        self._stopping: set[asyncio.Task] = set()
        #: Compile and TestQuery run here, off the event loop, within a time budget.
        self.queries = QueryPool()
        self.channels: dict[str, grpc.aio.Channel] = {}
        self.alerts = AlertEvaluator(rules=lambda: list(self.catalog.rules.values()),
                                     metrics_of=self.running_metrics, sample_interval_s=config.alert_sample_interval_s)
        #: Jobs this replica runs because another replica started them (shared catalogue).
        self.joined: set[str] = set()
        self._starting: set[str] = set()  # StartJob (or a join) under way here
        self._stopping_here: set[str] = set()  # StopJob under way here
        #: Shared catalogue: jobs STOPPING through another replica -> (monotonic time their
        #: stop heartbeats last moved, the heartbeats then).
        self._stopping_seen: dict[str, tuple[float, list]] = {}
        self._reconciling: asyncio.Task | None = None

    # -- lifecycle of the service ------------------------------------------------------
    async def open(self) -> None:
        # The query worker starts at the first compile or TestQuery, not here: a service that
        # only resumes and runs its jobs (a restart) never needs one (about 0.5 CPU s).
        self.alerts.start()
        if self.catalog.shared:
            # The jobs' states belong to every replica: this one joins what runs.
            await self.reconcile()
            self._reconciling = asyncio.create_task(self._reconcile_loop(), name="reconcile jobs")
            return
        for job in list(self.catalog.jobs.values()):
            # A stop cut short by a crash ended the job all the same (its checkpoint and
            # intent are on disk for WHEN_LAST_STOPPED); with resume_jobs off, jobs that
            # were running are not, and GetJob must not say otherwise.
            if job.state == pb.JOB_STATE_STOPPING or (job.state in _ACTIVE and not self.config.resume_jobs):
                self._set_state(job.name, pb.JOB_STATE_STOPPED)
            elif job.state in _ACTIVE:
                try:
                    await self.start(job.name, pb.JOB_START_MODE_WHEN_LAST_STOPPED, None, resuming=True)
                except HeadwaterError as exc:
                    self._set_state(job.name, pb.JOB_STATE_FAILED, str(exc))

    async def close(self) -> None:
        """SIGTERM: final checkpoint of every running job; they stay RUNNING to resume on start."""
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.gather(self._reconciling, return_exceptions=True)
        for name, runner in list(self.runners.items()):
            try:
                await runner.stop(final_checkpoint=True)
            except Exception:  # noqa: BLE001
                log.exception("job %s: final checkpoint failed", name)
        self.runners.clear()
        await self.alerts.stop()
        self.queries.close()
        for ch in self.channels.values():
            await ch.close()

    # -- helpers --------------------------------------------------------------------------
    def _channel(self, address: str, conn_str: str = "") -> grpc.aio.Channel:
        key = conn_str or address
        if key not in self.channels:
            if conn_str:
                conn = ConnectionString.parse(conn_str)
            else:
                conn = ConnectionString(endpoint=f"headwater://{address}/")
                if self.config.auth_enabled:
                    root = PolicyStore(self.config.auth_path()).ensure().root()
                    conn.shared_access_key_name, conn.shared_access_key = root.name, root.key
            self.channels[key] = aio_channel(conn)
        return self.channels[key]

    def _set_state(self, name: str, state: pb.JobState, error: str = "", started: bool = False) -> pb.Job:
        return self.catalog.set_state(name, state, error, started)

    # -- replicas sharing the catalogue ---------------------------------------------------
    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconcile_interval_s)
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("reconciling jobs with the shared catalogue")

    async def reconcile(self) -> None:
        """Run here what the shared catalogue says runs: join jobs started through
        another replica (or before this one restarted), leave jobs stopped, failed or
        deleted there. A job that cannot be joined now is tried again next round."""
        jobs = dict(self.catalog.jobs)
        for name in [n for n in self.runners if n not in jobs or jobs[n].state not in _ACTIVE]:
            runner = self.runners.pop(name)
            self.joined.discard(name)
            log.info("job %s: stopped through another replica; leaving it", name)
            await runner.stop(final_checkpoint=True)
            self._keep_metrics(name, runner.metrics())
        self._end_abandoned_stops(jobs)
        for name, job in jobs.items():
            if job.state in _ACTIVE and name not in self.runners and name not in self._starting:
                try:
                    await self.start(name, pb.JOB_START_MODE_WHEN_LAST_STOPPED, None, joining=True)
                except HeadwaterError as exc:
                    log.warning("job %s: joining it failed (trying again): %s", name, exc)

    async def compile(self, job: pb.Job) -> None:
        """Compile in the query worker, within ``compile_timeout_s`` (QUERY_COMPILE_ERROR
        with line and column; INVALID_ARGUMENT past the budget)."""
        await self.queries.compile(job, self.config, self.config.compile_timeout_s)

    # -- jobs --------------------------------------------------------------------------------
    async def start(self, name: str, mode: int, start_time: datetime | None, resuming: bool = False,
                    joining: bool = False) -> pb.Job:
        """Start a job (StartJob), resume it (``resuming``: the service restarted) or
        join it (``joining``: it runs on other replicas; its state is left as it is)."""

        job = self.catalog.get(name)
        if name in self.runners or name in self._starting:
            raise HeadwaterError(Reason.PRECONDITION_FAILED, f"job {name!r} is already running")
        if job.state in _ACTIVE and not (resuming or joining):
            raise HeadwaterError(Reason.PRECONDITION_FAILED, f"job {name!r} is already running")
        self._starting.add(name)
        try:
            return await self._start(job, mode, start_time, resuming, joining)
        finally:
            self._starting.discard(name)

    async def _start(self, job: pb.Job, mode: int, start_time: datetime | None, resuming: bool,
                     joining: bool) -> pb.Job:
        from headwater.v1 import sink_pb2_grpc

        name = job.name
        state_dir = self._checkpoint_root() / "jobs" / job_id(name)
        runner: JobRunner | JobWorker | ScaledJob
        if self.config.scale_out:
            runner = scaled = await self._scaled(job)
            scaled.joining = joining or resuming
        elif self.config.job_worker == "process":
            runner = JobWorker(job, self.config, state_dir, spare=self.queries.take)
        else:
            from headwater.services.processing import engine_adapter  # the engine: inline jobs only

            runtime = await asyncio.to_thread(engine_adapter.runtime_for, job, self.config)
            stream_inputs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE]
            conn = resolve(stream_inputs[0].connection_string, SecretStore(self.config.secrets_path()),
                           "connection_string") if stream_inputs else ""
            ingestion = ingestion_stub(self._channel(self.config.ingestion_address, conn))
            out_conn = resolve(job.outputs[0].connection_string, SecretStore(self.config.secrets_path()),
                               "connection_string") if job.outputs else ""
            sinks = sink_pb2_grpc.SinkServiceStub(self._channel(self.config.sink_address, out_conn))
            runner = JobRunner(job, runtime, state_dir, ingestion, sinks,
                               RunnerSettings.from_config(self.config))
        runner.on_failure = lambda msg, n=name: self._on_failure(n, msg)
        runner.on_degraded = lambda msg, n=name: self._on_degraded(n, msg)
        if joining:
            try:
                await runner.start(mode, start_time)
            except HeadwaterError:
                await runner.stop(final_checkpoint=False)
                raise
            self.runners[name] = runner
            self.joined.add(name)
            self.final_metrics.pop(name, None)
            log.info("job %s: joined (it runs on the replicas sharing the catalogue)", name)
            return self.catalog.get(name)
        if isinstance(runner, ScaledJob) and not resuming:
            runner.record_start(mode, start_time)  # before STARTING: the replicas joining read it
        self._set_state(name, pb.JOB_STATE_STARTING)
        try:
            await runner.start(mode, start_time)
        except HeadwaterError as exc:
            await runner.stop(final_checkpoint=False)
            self._set_state(name, pb.JOB_STATE_FAILED, str(exc))
            raise
        self.runners[name] = runner
        self.final_metrics.pop(name, None)
        return self._set_state(name, pb.JOB_STATE_RUNNING, started=True)

    def _checkpoint_root(self):
        from pathlib import Path

        return Path(self.config.checkpoint_dir) if self.config.checkpoint_dir else self.config.data_path()

    def _replica_id(self) -> str:
        """This replica's owner id: the setting, else one made once and kept in the data folder."""
        import uuid

        if self.config.replica_id:
            return self.config.replica_id
        # Per host too: compose's replicas share one volume (and data folder); each
        # container has its own host name, kept across its restarts.
        f = self.config.data_path() / f"replica_id.{socket.gethostname()}"
        if not f.exists():  # of two starting at once, one id wins and both read it
            write_new(f, f"processing-{uuid.uuid4().hex[:12]}".encode())
        return f.read_text().strip()

    async def _scaled(self, job: pb.Job) -> ScaledJob:
        from headwater.v1 import ingestion_pb2 as ipb

        stream_inputs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE]
        if not stream_inputs:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job {job.name!r} has no stream input to scale out")
        inp = stream_inputs[0]
        if any(i.path_pattern and not i.hub for i in stream_inputs):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job {job.name!r} reads files (path_pattern): a file input "
                                 "is read by one service, not split between scale_out replicas",
                                 metadata={"field": "job.inputs.path_pattern"})
        ingestion = ingestion_stub(self._channel(
            self.config.ingestion_address,
            resolve(inp.connection_string, SecretStore(self.config.secrets_path()), "connection_string")))
        hub = inp.hub if inp.hub.startswith("hubs/") else f"hubs/{inp.hub}"
        try:
            resp = await ingestion.GetHub(ipb.GetHubRequest(name=hub), timeout=self.config.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None
        parallel = len(stream_inputs) == 1 and await self.queries.partition_parallel(
            job, self.config, self.config.compile_timeout_s)
        return ScaledJob(job, self.config, ingestion, self._checkpoint_root(), self._replica_id(), parallel, hub,
                         inp.consumer_group or "$Default", list(resp.hub.partition_ids),
                         lambda parts, state_dir, suffix: JobWorker(job, self.config, state_dir, parts, suffix,
                                                                   spare=self.queries.take))

    def _on_degraded(self, name: str, message: str) -> None:
        """A running job's input or output is held by a transient error (``message``), or
        no longer (""): DEGRADED with the error, or RUNNING again (Stream Analytics' states)."""
        if name in self.catalog.jobs:
            self.catalog.set_state(name, pb.JOB_STATE_DEGRADED if message else pb.JOB_STATE_RUNNING, message,
                                   expect=(pb.JOB_STATE_RUNNING, pb.JOB_STATE_DEGRADED))

    def _on_failure(self, name: str, message: str) -> None:
        runner = self.runners.pop(name, None)
        self.joined.discard(name)
        self._set_state(name, pb.JOB_STATE_FAILED, message)
        if runner is not None:
            self._keep_metrics(name, runner.metrics())
            task = asyncio.get_event_loop().create_task(runner.stop(final_checkpoint=False))
            self._stopping.add(task)  # a reference, so the task is not collected mid-way
            task.add_done_callback(self._stopping.discard)

    # -- a stop whose replica died (shared catalogue) ---------------------------------
    def _stop_beats(self, name: str):
        return self._checkpoint_root() / "jobs" / job_id(name) / "stopping"

    def _stale_stop_s(self) -> float:
        return 10 * self.config.reconcile_interval_s

    def _end_abandoned_stops(self, jobs: dict[str, pb.Job]) -> None:
        """A job left STOPPING by a replica that died during the stop (kill -9 of it, or of
        every replica) is marked STOPPED: the stopping replica touches
        ``jobs/{job}/stopping/{replica}`` every reconcile interval while it stops, and a stop
        whose heartbeat has not moved for ten intervals (by this replica's clock: hosts'
        clocks may differ) is over. The job resumes from its last checkpoint."""
        import time

        now = time.monotonic()
        for name in [n for n in self._stopping_seen if n not in jobs or jobs[n].state != pb.JOB_STATE_STOPPING]:
            del self._stopping_seen[name]
        for name, job in jobs.items():
            if job.state != pb.JOB_STATE_STOPPING or name in self._stopping_here:
                continue
            beats = []
            folder = self._stop_beats(name)
            if folder.exists():
                for f in folder.iterdir():
                    with contextlib.suppress(OSError):
                        beats.append((f.name, f.stat().st_mtime_ns))
            beats.sort()
            seen = self._stopping_seen.get(name)
            if seen is None or seen[1] != beats:
                self._stopping_seen[name] = (now, beats)
                continue
            if now - seen[0] > self._stale_stop_s():
                log.warning("job %s: STOPPING for %.0f s with no replica stopping it (the one that was stopping it "
                            "died); marking it STOPPED", name, now - seen[0])
                self.catalog.set_state(name, pb.JOB_STATE_STOPPED, expect=(pb.JOB_STATE_STOPPING,))
                del self._stopping_seen[name]

    async def _beat_while_stopping(self, beat) -> None:
        while True:
            try:
                beat.touch()
            except OSError:
                log.warning("cannot touch %s", beat)
            await asyncio.sleep(self.config.reconcile_interval_s)

    async def stop(self, name: str) -> pb.Job:
        job = self.catalog.get(name)
        runner = self.runners.pop(name, None)
        self.joined.discard(name)
        if runner is None:
            if job.state in _ACTIVE:
                return self._set_state(name, pb.JOB_STATE_STOPPED)
            return job
        beating = None
        self._stopping_here.add(name)
        try:
            if self.catalog.shared:  # the other replicas see this stop alive (before STOPPING)
                beat = self._stop_beats(name) / self._replica_id()
                beat.parent.mkdir(parents=True, exist_ok=True)
                beat.touch()
                beating = asyncio.create_task(self._beat_while_stopping(beat), name=f"stopping {name}")
            self._set_state(name, pb.JOB_STATE_STOPPING)
            # Durable before anyone sees it (written in-line, a few ms on the loop): a crash while
            # the stop waits on its outputs must restart the job STOPPED, not resume it from the
            # RUNNING/DEGRADED record still on disk.
            self.catalog.flush()
            await runner.stop(final_checkpoint=True)
            self._keep_metrics(name, runner.metrics())
            return self._set_state(name, pb.JOB_STATE_FAILED if runner.error else pb.JOB_STATE_STOPPED,
                                   runner.error)
        finally:
            self._stopping_here.discard(name)
            if beating is not None:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
                with contextlib.suppress(OSError):
                    beat.unlink()

    def forget(self, name: str) -> None:
        """DeleteJob: drop the job's checkpoint and last metrics (not its epoch count)."""
        self.final_metrics.pop(name, None)
        forget_job(self._checkpoint_root() / "jobs" / job_id(name))

    def running_metrics(self, name: str) -> pb.JobMetrics | None:
        """Metrics of a running job only: alert rules do not sample stopped jobs."""
        runner = self.runners.get(name)
        return runner.metrics() if runner is not None else None

    def metrics(self, name: str) -> pb.JobMetrics | None:
        runner = self.runners.get(name)
        if runner is not None:
            return runner.metrics()
        if name not in self.final_metrics:  # a job that stopped before this process started
            f = self._metrics_file(name)
            if f.exists():
                self.final_metrics[name] = pb.JobMetrics.FromString(f.read_bytes())
        return self.final_metrics.get(name)

    def _metrics_file(self, name: str):
        return self.config.data_path() / "jobs" / job_id(name) / "metrics.pb"

    def _keep_metrics(self, name: str, metrics: pb.JobMetrics) -> None:
        """A stopped or failed job's last metrics, kept in memory and on disk (they
        survive a restart of the service)."""
        self.final_metrics[name] = metrics
        f = self._metrics_file(name)
        write_atomic(f, metrics.SerializeToString())

    def _state_dirs(self, name: str) -> list:
        """The job's checkpoint folders (one, or one per partition task when scaled out)."""
        base = self._checkpoint_root() / "jobs" / job_id(name)
        return sorted(p.parent for p in base.rglob("checkpoint.json")) if base.exists() else []

    async def carry_state(self, old: pb.Job, new: pb.Job) -> tuple[bool, str]:
        """UpdateJob of a stopped job: keep its checkpointed state for the new query when
        the two plans have the same operators, keys and windows (``explain`` alike);
        otherwise discard the state and keep the input positions. Says which, and why."""
        return await asyncio.to_thread(self._carry_state, old, new)

    def _carry_state(self, old: pb.Job, new: pb.Job) -> tuple[bool, str]:
        import json

        from headwater.services.processing import engine_adapter
        from headwater.services.processing.plan.explain import explain
        from headwater.services.processing.state import snapshot
        from headwater.services.processing.state.chain import collect, resolve

        dirs = [d for d in self._state_dirs(new.name)
                if json.loads((d / "checkpoint.json").read_text()).get("state_file")]
        if not dirs:
            return True, "the job has no checkpointed state: nothing to carry"
        if old.query == new.query and list(old.inputs) == list(new.inputs):
            return True, "the query is unchanged: the job resumes from its checkpoint"

        def plan_of(job: pb.Job):
            rt = engine_adapter.runtime_for(job, self.config).rt
            return rt, explain(rt.compiled.plan, rt.physical)

        try:
            _, before = plan_of(old)
        except Exception as exc:  # noqa: BLE001 - the old query no longer builds (a UDF removed, ...)
            before = f"(the old query does not build now: {exc})"
        _, after = plan_of(new)
        if before != after:
            for d in dirs:
                ckpt = json.loads((d / "checkpoint.json").read_text())
                (d / ckpt["state_file"]).unlink(missing_ok=True)
                ckpt["state_file"] = None
                write_atomic(d / "checkpoint.json", json.dumps(ckpt).encode())
            changed = [line for line in after.splitlines() if line not in before.splitlines()][:3]
            return False, ("the new query's plan differs from the checkpointed one's (" +
                           "; ".join(x.strip() for x in changed) + "): its state was discarded; started from "
                           "the last stop, the job reads on from the checkpoint's input positions with empty "
                           "windows and groups")
        for d in dirs:  # the same plan: the state is re-stamped with the new query's fingerprint
            ckpt = json.loads((d / "checkpoint.json").read_text())
            rt, _ = plan_of(new)
            snapshot.loads(rt, resolve((d / ckpt["state_file"]).read_bytes(), d), rt.compiled, check_plan=False)
            blob = rt.snapshot()  # whole: the earlier files it referred to are no longer needed
            write_atomic(d / ckpt["state_file"], blob)
            collect(d, ckpt["state_file"], blob)
        return True, ("the new query has the same operators, keys and windows: its state is kept and the job "
                      "resumes from its checkpoint")

    def verdicts(self, name: str, alias: str) -> tuple[int, list]:
        """One input's recent per-event verdicts (written by the job's runner(s) at each
        checkpoint) as rows (see exec.watermarks.verdict_rows)."""
        import json

        from headwater.services.processing.exec.watermarks import verdict_rows

        retained, rows = 0, []
        for d in self._state_dirs(name):
            f = d / "verdicts.json"
            if not f.exists():
                continue
            body = json.loads(f.read_bytes())
            retained = max(retained, body.get("retained", 0))
            for key in body.get("inputs", {}):
                if key.lower() == alias.lower():
                    rows.extend(verdict_rows(body, key))
        return retained, rows

    async def test_query(self, request: pb.TestQueryRequest) -> pb.TestQueryResponse:
        return await self.queries.test_query(request, self.config.test_query_timeout_s)
