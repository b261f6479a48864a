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
    #: Most bytes of input events one epoch takes: an epoch ends at its checkpoint interval
    #: or once it holds this much, whichever comes first, so a job catching up on a backlog
    #: works through it in bounded steps (its memory stays a few times this).
    max_epoch_bytes: int = 16 * 2**20
    #: Bytes of input events a job's readers hold ahead of the epoch being gathered,
    #: shared evenly by its stream partitions (at least 1 MiB each); a partition's reader
    #: that holds its share waits until the job takes them (backpressure, no loss).
    read_ahead_bytes: int = 32 * 2**20
    #: Seconds between samples of job metrics for alert rules.
    alert_sample_interval_s: float = 1.0
    #: Restart jobs that were running when the service stopped (or was killed).
    resume_jobs: bool = True
    #: Seconds an input partition with a backlog may go without the job advancing in it
    #: before the job reports it starved (metric, log line, ``job show`` warning).
    starvation_after_s: float = 30.0
    #: Seconds a StopJob (or SIGTERM) waits for an epoch whose output is held by a sink
    #: that is down; then the epoch is left to be replayed at the next start.
    stop_hold_timeout_s: float = 10.0
    #: Where a running job's engine runs: ``process`` (a worker process per job, so the
    #: service's event loop only does I/O) or ``inline`` (in the service's process,
    #: the engine on a worker thread).
    job_worker: str = "process"
    #: Fork the query and job workers from a template process that imported the engine once
    #: (started with the service): a worker starts in milliseconds instead of the half CPU
    #: second an interpreter takes to import it (``false``: spawn each worker).
    worker_template: bool = True
    #: In a job's worker process, write checkpoints from a fork (copy-on-write image of
    #: the process): the job pauses only to take its vectorised state and fork, not for
    #: the serialization and the file (``false``: the worker's thread writes them).
    checkpoint_fork: bool = True
    #: Scale-out: split each job's partitions between the replicas of the service (and,
    #: for partition-parallel jobs, run a task per partition), through the ingestion
    #: service's ownership store. Replicas must share ``checkpoint_dir``.
    scale_out: bool = False
    #: Where jobs keep their checkpoints (default: the data folder). Replicas in
    #: scale-out share it (a shared volume), so one takes over another's partitions.
    checkpoint_dir: str = ""
    #: Scale-out: seconds between this replica's looks at the shared job catalogue
    #: (``<checkpoint_dir>/jobs.json``): it joins jobs started through another replica
    #: and leaves the ones stopped or deleted there.
    reconcile_interval_s: float = 1.0
    #: This replica's id in partition ownership (default: one kept in the data folder).
    replica_id: str = ""
    #: Deadline of every call to another service (ingestion, sink, registry): a peer that
    #: does not answer in time (hung, stopped) fails the call with SERVICE_TIMEOUT, and the
    #: caller's one retry layer takes over (docs/errors.md). A read stream fails when no
    #: answer (events or an empty one, sent every 250 ms) comes within it.
    call_timeout_s: float = 10.0
    #: A JSON file of fault rules (headwater.faults), read again when it changes: tests make
    #: a job's reads (``read``, target the hub) or writes (``write``, target the sink)
    #: slow or failing. Empty: none.
    faults_file: str = ""
    #: Seconds a query may take to compile (CreateJob, UpdateJob) before it is stopped.
    compile_timeout_s: float = 10.0
    #: Seconds a TestQuery may run before it is stopped.
    test_query_timeout_s: float = 30.0
    #: UDFs jobs may call, registered by the operator: ``{name: module:function}`` (or
    #: ``path/to/file.py:function``); a job calls ``UDF.name`` and may list the name in ``udfs``.
    udfs: dict[str, str] = field(default_factory=dict)
    #: Largest snapshot of a refreshed reference input (PostgreSQL rows as JSON, or a file),
    #: in bytes: a bigger one is refused with this limit named (a refresh keeps the last good).
    max_reference_bytes: int = 100 * 2**20
    #: Seconds a reference query (snapshot or delta) may run (PostgreSQL statement_timeout).
    reference_query_timeout_s: float = 30.0
    #: Largest file a file stream input takes, in bytes (a bigger one fails the job, naming it).
    max_input_file_bytes: int = 256 * 2**20
    #: Seconds between looks for new files of a file stream input.
    file_poll_interval_s: float = 1.0
