"""Job metrics survive: they persist across kill -9 and restarts of the processing
service, a replayed epoch is not counted twice, and every job metric (with the
per-partition backlog) is on the service's /metrics."""

from __future__ import annotations

import urllib.request

import pytest

from headwater.procs import free_port
from tests.integration.processing_support import Pipeline

pytestmark = pytest.mark.slow


class _MetricsPipeline(Pipeline):
    """The processing service with its /metrics port on."""

    def start_processing(self):
        self.metrics_port = free_port()
        self.processing = self.sp("processing", "--data-dir", str(self.tmp / "proc"),
                                  "--metrics-port", str(self.metrics_port), env=self.env)
        return self.processing

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            return resp.read().decode()


def _sample(text: str, name: str, **labels) -> float | None:
    want = ",".join(f"{k}=\"{v}\"" for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


#: Where each JobMetrics field is on /metrics (headwater_processing_job_<name>), or why it is
#: not a metric. A new field fails the test until it is placed here.
_JOB = {"watermark_delay": "watermark_delay_seconds", "su_utilization_percent": "su_utilization_percent",
        "last_checkpoint_time": "last_checkpoint_time_seconds",
        "last_checkpoint_pause": "last_checkpoint_pause_seconds",
        "last_error_sample": None, "error_samples": None, "read_time": None,  # text, and when it was read
        "partitions": {"input": None, "partition_id": None, "backlog_events": "backlog_events",
                       "watermark_delay": "partition_watermark_delay_seconds",
                       "last_sequence_number": "partition_last_sequence_number", "starved": "partition_starved"},
        "input_watermarks": {"input": None, "watermark": "input_watermark_seconds"},
        "references": {"input": None, "refreshes": "reference_refreshes",
                       "refresh_failures": "reference_refresh_failures", "rows": "reference_rows",
                       "valid_from": "reference_valid_from_seconds", "last_error": None}}


def _every_metric_is_exported(text: str, m) -> None:
    """Every numeric field of JobMetrics (and of its partitions, watermarks and references)
    is a gauge on /metrics; the job's own values are there with the job label."""
    def names(desc, table):
        for f in desc.fields:
            assert f.name in table, f"JobMetrics.{f.name} is neither on /metrics nor marked as not a metric"
            if isinstance(table[f.name], dict):
                yield from names(f.message_type, table[f.name])
            elif table[f.name] is None:
                continue
            else:
                yield f.name, table[f.name]

    wanted = dict(names(type(m).DESCRIPTOR, {**{f.name: f.name for f in type(m).DESCRIPTOR.fields
                                                  if f.type == f.TYPE_INT64 and not f.is_repeated},
                                               **_JOB}))
    for field, metric in wanted.items():
        assert f"# TYPE headwater_processing_job_{metric} gauge" in text, (field, metric)
    labelled = {line.split("{", 1)[0] for line in text.splitlines() if 'job="jobs/copy"' in line}
    missing = {f"headwater_processing_job_{metric}" for metric in wanted.values()
               if not metric.startswith("reference_")} - labelled  # the job has no reference inputs
    assert not missing, missing


def test_metrics_persist_count_once_and_are_on_prometheus(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = _MetricsPipeline(service_process, root_policy, tmp_path, checkpoint_s=0.2)
    pipe.create_hub("trips", partitions=2)
    pipe.create_sink("mem", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Mem] FROM [Trips]", {"Trips": "trips"}, {"Mem": "mem"})
    pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)
    pipe.publish("trips", [{"tripId": f"a{i}"} for i in range(1000)])
    # An epoch's rows are written, and counted, before its checkpoint commits: wait for both.
    m = pipe.wait_metrics("copy", lambda m: m.output_events >= 1000 and m.last_checkpoint_id >= 1)
    assert m.input_events == 1000 and m.last_checkpoint_id >= 1 and m.last_checkpoint_time.seconds > 0
    assert {p.partition_id for p in m.partitions} == {"0", "1"}
    assert all(p.backlog_events == 0 for p in m.partitions)
    assert [w.input for w in m.input_watermarks] == ["Trips"]

    text = pipe.scrape()
    assert _sample(text, "headwater_processing_job_input_events", job="jobs/copy") == 1000
    assert _sample(text, "headwater_processing_job_output_events", job="jobs/copy") == 1000
    assert _sample(text, "headwater_processing_job_backlog_events", job="jobs/copy", input="Trips",
                   partition="0") == 0
    assert _sample(text, "headwater_processing_job_last_checkpoint_id", job="jobs/copy") >= 1
    _every_metric_is_exported(text, m)

    # kill -9 mid-stream and restart: the counts carry on from the checkpoint, and the
    # epoch replayed after the crash is counted once.
    pipe.publish("trips", [{"tripId": f"b{i}"} for i in range(500)])
    pipe.processing.kill()
    pipe.start_processing()
    pipe.publish("trips", [{"tripId": f"c{i}"} for i in range(500)])
    m = pipe.wait_metrics("copy", lambda m: m.output_events >= 2000)
    rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows: len(rows) >= 2000)
    assert len(rows) == 2000
    m = pipe.metrics("copy")
    assert (m.input_events, m.output_events) == (2000, 2000)

    # A stopped job's metrics survive a restart of the service too.
    pipe.stop_job("copy")
    pipe.processing.kill()
    pipe.start_processing()
    m = pipe.metrics("copy")
    assert (m.input_events, m.output_events) == (2000, 2000)
    assert _sample(pipe.scrape(), "headwater_processing_job_input_events", job="jobs/copy") == 2000
