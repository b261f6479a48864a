"""The job manager: compiles, starts, stops and watches the service's jobs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import grpc

from headwater.auth import ConnectionString, PolicyStore
from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.secrets import SecretStore, resolve
from headwater.services.processing import engine_adapter
from headwater.services.processing.alerts import AlertEvaluator
from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.jobs import JobCatalog, job_id
from headwater.services.processing.querypool import QueryPool
from headwater.services.processing.runtime import JobRunner, RunnerSettings, forget_job
from headwater.services.processing.slots import ScaledJob
from headwater.services.processing.worker import JobWorker
from headwater.v1 import processing_pb2 as pb

__all__ = ["JobManager"]

log = logging.getLogger("headwater.processing.jobs")

_ACTIVE = (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STARTING, pb.JOB_STATE_DEGRADED)


class JobManager:
    def __init__(self, config: ProcessingConfig, catalog: JobCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.runners: dict[str, JobRunner | JobWorker] = {}
        #: The last metrics of jobs that stopped or failed in this process: a FAILED
        #: job still shows the runtime error that failed it.
        self.final_metrics: dict[str, pb.JobMetrics] = {}
        self._stopping: set[asyncio.Task] = set()
        #: Compile and TestQuery run here, off the event loop, within a time budget.
        self.queries = QueryPool()
        self.channels: dict[str, object] = {}
        self.alerts = AlertEvaluator(rules=lambda: list(self.catalog.rules.values()),
                                     metrics_of=self.running_metrics, sample_interval_s=config.alert_sample_interval_s)

    # -- lifecycle of the service ------------------------------------------------------
    async def open(self) -> None:
        self.queries.warm()
        self.alerts.start()
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
    def _channel(self, address: str, conn_str: str = ""):
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

    def _set_state(self, name: str, state: int, error: str = "", started: bool = False) -> pb.Job:
        job = pb.Job()
        job.CopyFrom(self.catalog.get(name))
        job.state, job.error = state, error
        if started:
            job.start_time.GetCurrentTime()
        return self.catalog.put(job)

    async def compile(self, job: pb.Job) -> None:
        """Compile in the query worker, within ``compile_timeout_s`` (QUERY_COMPILE_ERROR
        with line and column; INVALID_ARGUMENT past the budget)."""
        await self.queries.compile(job, self.config, self.config.compile_timeout_s)

    # -- jobs --------------------------------------------------------------------------------
    async def start(self, name: str, mode: int, start_time: datetime | None, resuming: bool = False) -> pb.Job:
        from headwater.v1 import ingestion_pb2_grpc, sink_pb2_grpc

        job = self.catalog.get(name)
        if name in self.runners:
            raise HeadwaterError(Reason.PRECONDITION_FAILED, f"job {name!r} is already running")
        if job.state in _ACTIVE and not resuming:
            raise HeadwaterError(Reason.PRECONDITION_FAILED, f"job {name!r} is already running")
        state_dir = self._checkpoint_root() / "jobs" / job_id(name)
        if self.config.scale_out:
            runner = await self._scaled(job)
        elif self.config.job_worker == "process":
            runner = JobWorker(job, self.config, state_dir)
        else:
            runtime = await asyncio.to_thread(engine_adapter.runtime_for, job, self.config)
            stream_inputs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE]
            conn = resolve(stream_inputs[0].connection_string, SecretStore(self.config.secrets_path()),
                           "connection_string") if stream_inputs else ""
            ingestion = ingestion_pb2_grpc.IngestionServiceStub(self._channel(self.config.ingestion_address, conn))
            out_conn = resolve(job.outputs[0].connection_string, SecretStore(self.config.secrets_path()),
                               "connection_string") if job.outputs else ""
            sinks = sink_pb2_grpc.SinkServiceStub(self._channel(self.config.sink_address, out_conn))
            runner = JobRunner(job, runtime, state_dir, ingestion, sinks,
                               RunnerSettings(checkpoint_interval_s=self.config.checkpoint_interval_s,
                                              stop_hold_timeout_s=self.config.stop_hold_timeout_s))
        runner.on_failure = lambda msg, n=name: self._on_failure(n, msg)
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
        f = self.config.data_path() / "replica_id"
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"processing-{uuid.uuid4().hex[:12]}")
        return f.read_text().strip()

    async def _scaled(self, job: pb.Job) -> ScaledJob:
        from headwater.v1 import ingestion_pb2 as ipb
        from headwater.v1 import ingestion_pb2_grpc

        stream_inputs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE]
        if not stream_inputs:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job {job.name!r} has no stream input to scale out")
        inp = stream_inputs[0]
        ingestion = ingestion_pb2_grpc.IngestionServiceStub(self._channel(
            self.config.ingestion_address,
            resolve(inp.connection_string, SecretStore(self.config.secrets_path()), "connection_string")))
        hub = inp.hub if inp.hub.startswith("hubs/") else f"hubs/{inp.hub}"
        try:
            resp = await ingestion.GetHub(ipb.GetHubRequest(name=hub), timeout=10)
        except grpc.aio.AioRpcError as exc:
            raise await HeadwaterError.from_aio_call(exc) from None
        parallel = len(stream_inputs) == 1 and await self.queries.partition_parallel(
            job, self.config, self.config.compile_timeout_s)
        return ScaledJob(job, self.config, ingestion, self._checkpoint_root(), self._replica_id(), parallel, hub,
                         inp.consumer_group or "$Default", list(resp.hub.partition_ids),
                         lambda parts, state_dir, suffix: JobWorker(job, self.config, state_dir, parts, suffix))

    def _on_failure(self, name: str, message: str) -> None:
        runner = self.runners.pop(name, None)
        self._set_state(name, pb.JOB_STATE_FAILED, message)
        if runner is not None:
            self._keep_metrics(name, runner.metrics())
            task = asyncio.get_event_loop().create_task(runner.stop(final_checkpoint=False))
            self._stopping.add(task)  # a reference, so the task is not collected mid-way
            task.add_done_callback(self._stopping.discard)

    async def stop(self, name: str) -> pb.Job:
        job = self.catalog.get(name)
        runner = self.runners.pop(name, None)
        if runner is None:
            if job.state in _ACTIVE:
                return self._set_state(name, pb.JOB_STATE_STOPPED)
            return job
        self._set_state(name, pb.JOB_STATE_STOPPING)
        await runner.stop(final_checkpoint=True)
        self._keep_metrics(name, runner.metrics())
        return self._set_state(name, pb.JOB_STATE_FAILED if runner.error else pb.JOB_STATE_STOPPED, runner.error)

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
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_bytes(metrics.SerializeToString())
        tmp.replace(f)

    async def test_query(self, request: pb.TestQueryRequest) -> pb.TestQueryResponse:
        return await self.queries.test_query(request, self.config.test_query_timeout_s)
