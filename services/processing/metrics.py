"""Every job metric on the processing service's /metrics (Prometheus).

A collector reads the job manager's metrics at scrape time: the values are the
ones GetJobMetrics returns (running jobs, and the last metrics of jobs that
stopped or failed in this process), labelled by job, and per input partition for
the backlog and the watermark delay.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

__all__ = ["JobMetricsCollector", "register"]

#: JobMetrics counters, exported as ``headwater_processing_job_<name>`` gauges
#: (they persist across restarts with the checkpoint, so they are not reset).
_COUNTERS = ("input_events", "input_bytes", "output_events", "late_input_events", "early_input_events",
             "out_of_order_events", "input_deserialization_errors", "data_conversion_errors", "runtime_errors",
             "output_errors", "poison_events", "last_checkpoint_id")


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
        util = GaugeMetricFamily("headwater_processing_job_su_utilization_percent",
                                 "CPU time of the job over wall time, percent", labels=["job"])
        delay = GaugeMetricFamily("headwater_processing_job_watermark_delay_seconds",
                                  "Wall clock minus the job's watermark", labels=["job"])
        ckpt = GaugeMetricFamily("headwater_processing_job_last_checkpoint_time_seconds",
                                 "When the last checkpoint was written (Unix time)", labels=["job"])
        backlog = GaugeMetricFamily("headwater_processing_job_backlog_events",
                                    "Input events not yet processed", labels=["job", "input", "partition"])
        pdelay = GaugeMetricFamily("headwater_processing_job_partition_watermark_delay_seconds",
                                   "Wall clock minus how far the partition has been read (arrival time)",
                                   labels=["job", "input", "partition"])
        wm = GaugeMetricFamily("headwater_processing_job_input_watermark_seconds",
                               "The event time each input has reached (Unix time)", labels=["job", "input"])
        for name, m in jobs.items():
            util.add_metric([name], m.su_utilization_percent)
            delay.add_metric([name], m.watermark_delay.ToNanoseconds() / 1e9)
            ckpt.add_metric([name], m.last_checkpoint_time.ToNanoseconds() / 1e9)
            for p in m.partitions:
                backlog.add_metric([name, p.input, p.partition_id], float(p.backlog_events))
                pdelay.add_metric([name, p.input, p.partition_id], p.watermark_delay.ToNanoseconds() / 1e9)
            for w in m.input_watermarks:
                wm.add_metric([name, w.input], w.watermark.ToNanoseconds() / 1e9)
        yield from (util, delay, ckpt, backlog, pdelay, wm)


def register(manager) -> JobMetricsCollector:
    collector = JobMetricsCollector(manager)
    REGISTRY.register(collector)
    return collector
