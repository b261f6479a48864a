"""Every job metric on the processing service's /metrics (Prometheus).

A collector reads the job manager's metrics at scrape time: the values are the
ones GetJobMetrics returns (running jobs, and the last metrics of jobs that
stopped or failed in this process), labelled by job, and per input partition for
the backlog and the watermark delay.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

from headwater.v1 import processing_pb2 as pb

__all__ = ["JobMetricsCollector", "register"]

#: JobMetrics counters, exported as ``headwater_processing_job_<name>`` gauges
#: (they persist across restarts with the checkpoint, so they are not reset): every
#: integer field of JobMetrics (tests/e2e/test_processing_metrics.py checks none is missing).
_COUNTERS = tuple(f.name for f in pb.JobMetrics.DESCRIPTOR.fields
                  if f.type == f.TYPE_INT64 and not f.is_repeated)


def _seconds(v) -> float:
    """A Duration or Timestamp in seconds."""
    return v.ToNanoseconds() / 1e9


#: The other gauges: (name, help, labels beyond ``job``, where the values are, value of one).
#: ``where`` gives the messages of one job's metrics and their extra label values.
def _JOB(m):
    return [(m, ())]


def _PARTITIONS(m):
    return [(p, (p.input, p.partition_id)) for p in m.partitions]


def _WATERMARKS(m):
    return [(w, (w.input,)) for w in m.input_watermarks]


def _REFERENCES(m):
    return [(r, (r.input,)) for r in m.references]


_GAUGES = (
    ("su_utilization_percent", "CPU time of the job over wall time, percent", (), _JOB,
     lambda m: m.su_utilization_percent),
    ("watermark_delay_seconds", "Wall clock minus the job's watermark", (), _JOB,
     lambda m: _seconds(m.watermark_delay)),
    ("last_checkpoint_time_seconds", "When the last checkpoint was written (Unix time)", (), _JOB,
     lambda m: _seconds(m.last_checkpoint_time)),
    ("last_checkpoint_pause_seconds", "How long the last checkpoint held the job's engine", (), _JOB,
     lambda m: _seconds(m.last_checkpoint_pause)),
    ("backlog_events", "Input events not yet processed", ("input", "partition"), _PARTITIONS,
     lambda p: float(p.backlog_events)),
    ("partition_watermark_delay_seconds", "Wall clock minus how far the partition has been read (arrival time)",
     ("input", "partition"), _PARTITIONS, lambda p: _seconds(p.watermark_delay)),
    ("partition_last_sequence_number", "The partition's last enqueued sequence number the job knows of",
     ("input", "partition"), _PARTITIONS, lambda p: float(p.last_sequence_number)),
    ("partition_starved", "1 when the partition has a backlog the job has not advanced in for a while",
     ("input", "partition"), _PARTITIONS, lambda p: float(p.starved)),
    ("input_watermark_seconds", "The event time each input has reached (Unix time)", ("input",), _WATERMARKS,
     lambda w: _seconds(w.watermark)),
    ("reference_refreshes", "Snapshots a refreshed reference input has loaded", ("input",), _REFERENCES,
     lambda r: float(r.refreshes)),
    ("reference_refresh_failures", "Refreshes of a reference input that failed (the last good snapshot stayed)",
     ("input",), _REFERENCES, lambda r: float(r.refresh_failures)),
    ("reference_rows", "Rows of a refreshed reference input's newest snapshot", ("input",), _REFERENCES,
     lambda r: float(r.rows)),
    ("reference_valid_from_seconds", "When a refreshed reference input's newest snapshot is valid from (Unix time)",
     ("input",), _REFERENCES, lambda r: _seconds(r.valid_from)),
)


class JobMetricsCollector:
    def __init__(self, manager) -> None:
        self.manager = manager

    def collect(self):
        jobs = {name: self.manager.metrics(name) for name in list(self.manager.catalog.jobs)}
        jobs = {k: v for k, v in jobs.items() if v is not None}
        for field in _COUNTERS:
            g = GaugeMetricFamily(f"headwater_processing_job_{field}", f"JobMetrics.{field} of the job",
                                  labels=["job"])
            for name, m in jobs.items():
                g.add_metric([name], float(getattr(m, field)))
            yield g
        for metric, help_text, labels, where, value in _GAUGES:
            g = GaugeMetricFamily(f"headwater_processing_job_{metric}", help_text, labels=["job", *labels])
            for name, m in jobs.items():
                for msg, extra in where(m):
                    g.add_metric([name, *extra], value(msg))
            yield g


def register(manager) -> JobMetricsCollector:
    collector = JobMetricsCollector(manager)
    REGISTRY.register(collector)
    return collector
