"""Deadlines and the one retry layer per call path (docs/errors.md), every service a real process.

A peer stopped with SIGSTOP accepts connections but never answers: the job's calls
to it end at ``call_timeout_s`` with SERVICE_TIMEOUT, the job shows DEGRADED with
that error while its output (or input) is held, and it is RUNNING again, with every
event written exactly once, when the peer continues. A processing fault rule
(``faults_file``) makes the job's writes fail on purpose the same way.
"""

from __future__ import annotations

import collections
import json
import os
import signal

import pytest

from tests.integration.processing_support import Pipeline

pytestmark = pytest.mark.slow


def _trips(first: int, n: int) -> list[dict]:
    return [{"tripId": f"t{i:05d}"} for i in range(first, first + n)]


def test_a_hung_peer_surfaces_as_service_timeout_and_the_job_recovers(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    faults = tmp_path / "processing-faults.json"
    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.2,
                    extra_env={"HEADWATER_PROCESSING_CALL_TIMEOUT_S": "2",
                               "HEADWATER_PROCESSING_FAULTS_FILE": str(faults)})
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("mem", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Mem] FROM [Trips]", {"Trips": "trips"}, {"Mem": "mem"})
    pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)

    def rows() -> list[str]:
        return [r["tripId"] for r in pipe.read_table("mem")]

    def delivered(n: int) -> None:
        got = pipe.wait_rows(rows, lambda r: len(set(r)) >= n, timeout=30)
        dup = [k for k, c in collections.Counter(got).items() if c > 1]
        assert len(set(got)) == n and not dup, (len(got), dup[:5])

    pipe.publish("trips", _trips(0, 10))
    delivered(10)

    # The sink service hangs: WriteRows times out, the job holds its output, DEGRADED.
    os.kill(pipe.sink.pid, signal.SIGSTOP)
    try:
        pipe.publish("trips", _trips(10, 10))
        pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_DEGRADED
                      and "output Mem (sink sinks/mem): SERVICE_TIMEOUT" in j.error, what="DEGRADED (sink stopped)")
    finally:
        os.kill(pipe.sink.pid, signal.SIGCONT)
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING and not j.error, what="RUNNING again")
    delivered(20)

    # The ingestion service hangs: the reader's stream goes silent past call_timeout_s.
    os.kill(pipe.ingestion.pid, signal.SIGSTOP)
    try:
        pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_DEGRADED
                      and "input Trips partition 0: SERVICE_TIMEOUT" in j.error, what="DEGRADED (ingestion stopped)")
    finally:
        os.kill(pipe.ingestion.pid, signal.SIGCONT)
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after ingestion continued")
    pipe.publish("trips", _trips(20, 10))
    delivered(30)

    # A fault rule of the processing service: its next writes to the sink fail, and are retried
    # (the job is DEGRADED for the fraction of a second that takes: what stays is the count).
    retries = pipe.metrics("copy").output_retries
    faults.write_text(json.dumps([{"id": "sink-down", "operation": "write", "target": "mem",
                                   "reason": "SERVICE_BUSY", "count": 3}]))
    pipe.publish("trips", _trips(30, 10))
    pipe.wait_metrics("copy", lambda m: m.output_retries >= retries + 3, what="the three injected failures retried")
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after the rule's count")
    delivered(40)
    assert pipe.metrics("copy").output_errors == 0
