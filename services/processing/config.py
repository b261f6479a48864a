"""Settings of the processing service."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.config import ServiceConfig

__all__ = ["ProcessingConfig"]


@dataclass
class ProcessingConfig(ServiceConfig):
    #: The ingestion service jobs read from (host:port), unless an input names its own.
    ingestion_address: str = "localhost:50051"
    #: The sink service jobs write to (host:port), unless an output names its own.
    sink_address: str = "localhost:50054"
    #: The schema registry the Avro serializer looks schemas up in (host:port).
    registry_address: str = "localhost:50052"
    #: Seconds between job checkpoints (and output writes) unless a job sets its own.
    checkpoint_interval_s: float = 1.0
    #: Seconds between samples of job metrics for alert rules.
    alert_sample_interval_s: float = 1.0
    #: Restart jobs that were running when the service stopped (or was killed).
    resume_jobs: bool = True
    #: Seconds a StopJob (or SIGTERM) waits for an epoch whose output is held by a sink
    #: that is down; then the epoch is left to be replayed at the next start.
    stop_hold_timeout_s: float = 10.0
    #: Where a running job's engine runs: ``process`` (a worker process per job, so the
    #: service's event loop only does I/O) or ``inline`` (in the service's process,
    #: the engine on a worker thread).
    job_worker: str = "process"
    #: Scale-out: split each job's partitions between the replicas of the service (and,
    #: for partition-parallel jobs, run a task per partition), through the ingestion
    #: service's ownership store. Replicas must share ``checkpoint_dir``.
    scale_out: bool = False
    #: Where jobs keep their checkpoints (default: the data folder). Replicas in
    #: scale-out share it (a shared volume), so one takes over another's partitions.
    checkpoint_dir: str = ""
    #: This replica's id in partition ownership (default: one kept in the data folder).
    replica_id: str = ""
    #: Seconds a query may take to compile (CreateJob, UpdateJob) before it is stopped.
    compile_timeout_s: float = 10.0
    #: Seconds a TestQuery may run before it is stopped.
    test_query_timeout_s: float = 30.0
    #: UDFs jobs may call, registered by the operator: ``{name: module:function}`` (or
    #: ``path/to/file.py:function``); a job calls ``UDF.name`` and may list the name in ``udfs``.
    udfs: dict[str, str] = field(default_factory=dict)
