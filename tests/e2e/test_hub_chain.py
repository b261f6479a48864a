"""Two jobs chained through a hub (a `hub` sink feeding the next job's input), exactly once
across kill -9 of the processing service that runs both, every service a real process.

The processing service (which replays its epoch in doubt) and the sink service (whose
restart forgets which writes it applied, so that only the hub sink's own state and the
hub's idempotent producer stand between a retried write and duplicated events) are
killed in turn while events stream through."""

from __future__ import annotations

import pytest

from tests.e2e.test_processing_faults import _exactly_once
from tests.integration.processing_support import Pipeline, Publisher

# Four kill -9 and restarts of real processes: 128 s alone at load average 13 (past the default 120 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_chain_of_two_jobs_through_a_hub_keeps_exactly_once_under_kill_9(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=2)
    pipe.create_hub("mid", partitions=2)
    pipe.create_sink("tomid", "hub", {"hub": "mid", "partition_key_column": "tripId"})
    pipe.create_sink("mem", "memory")
    pipe.create_job("first", "SELECT tripId, fare * 2 AS fare2 INTO [Mid] FROM [Trips]",
                    {"Trips": "trips"}, {"Mid": "tomid"})
    pipe.create_job("second", "SELECT tripId, fare2 INTO [Mem] FROM [Mid]", {"Mid": "mid"}, {"Mem": "mem"})
    pipe.start_job("first", ppb.JOB_START_MODE_EARLIEST)
    pipe.start_job("second", ppb.JOB_START_MODE_EARLIEST)
    with Publisher(pipe, "trips", per_batch=20, interval_s=0.05) as pub:
        for victim in ("processing", "sink", "processing", "sink"):
            # Kill -9 only once rows have gone through the whole chain since the last restart.
            seen = len(pipe.read_table("mem"))
            pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows, s=seen: len(rows) > s + 40, timeout=20)
            if victim == "sink":
                pipe.sink.kill()
                pipe.restart_sink()
            else:
                pipe.processing.kill()
                pipe.start_processing()
            for job in ("first", "second"):
                pipe.wait_job(job, lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after restart")
        sent = pub.stop()
    assert len(sent) > 200

    def mem():
        return [r["tripId"] for r in pipe.read_table("mem")]

    pipe.wait_rows(mem, lambda rows: len(set(rows)) >= len(sent), timeout=30)
    for job in ("first", "second"):  # a duplicate written late (into mid, then by the second job) would show now
        pipe.wait_settled(job)
    rows = pipe.read_table("mem")
    _exactly_once(sent, [r["tripId"] for r in rows], "memory sink at the end of the chain")
    assert all(r["fare2"] == 3.0 for r in rows)
