"""Two processing replicas share one job catalogue (scale-out): the job is created
and started once, through one replica, and the other joins it; they split the
hub's partitions through the ingestion service's ownership store; kill -9 of one
and the other takes its partitions over from the last checkpoint: every event
exactly once in the sink. A job stopped through one replica stops on both."""

from __future__ import annotations

import collections
import time

import pytest

from tests.e2e.test_processing_faults import _exactly_once
from tests.integration.processing_support import Pipeline, Publisher
from tests.wait import wait_until

pytestmark = pytest.mark.slow


def _owners(pipe: Pipeline) -> dict[str, str]:
    from headwater.v1 import ingestion_pb2 as ipb

    resp = pipe.call("ingestion", "ListOwnerships", ipb.ListOwnershipsRequest(hub="trips", consumer_group="$Default"))
    now = time.time()
    return {o.partition_id: o.owner_id for o in resp.ownerships
            if o.owner_id and o.expire_time.ToNanoseconds() / 1e9 > now}


def _wait_owners(pipe: Pipeline, ok, timeout: float = 60.0) -> dict[str, str]:
    return wait_until(lambda: _owners(pipe), ok, timeout=timeout, every=0.2, what="partition owners")


def _scale_out_pipeline(service_process, root_policy, tmp_path, **replica_env: str):
    """Processing with scale-out on a shared checkpoint folder, a 4-partition hub ``trips`` and a
    memory sink ``mem``; ingestion's claims lapse 3 s after their owner stops renewing them (a
    killed replica)."""
    shared = tmp_path / "checkpoints"
    env = {"HEADWATER_PROCESSING_SCALE_OUT": "true", "HEADWATER_PROCESSING_CHECKPOINT_DIR": str(shared),
           **replica_env}
    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3, extra_env=env)
    pipe.ingestion.kill()
    pipe.ingestion = service_process("ingestion", "--data-dir", str(tmp_path / "ing"), "--port",
                                     pipe.ingestion.address.rsplit(":", 1)[1],
                                     env={"HEADWATER_INGESTION_OWNERSHIP_EXPIRY_S": "3"})
    pipe.create_hub("trips", partitions=4)
    pipe.create_sink("mem", "memory")
    return pipe


def test_two_replicas_split_partitions_and_take_over_after_kill_9(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = _scale_out_pipeline(service_process, root_policy, tmp_path)
    query = "SELECT tripId INTO [Mem] FROM [Trips]"
    replica_a = pipe.processing
    replica_b = service_process("processing", "--data-dir", str(tmp_path / "proc-b"), env=pipe.env)

    # Created and started once, through A: B sees it in the shared catalogue and joins.
    pipe.create_job("copy", query, {"Trips": "trips"}, {"Mem": "mem"})
    pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)
    pipe.processing = replica_b
    got = pipe.call("processing", "GetJob", ppb.GetJobRequest(name="jobs/copy")).job
    assert got.state == ppb.JOB_STATE_RUNNING, got

    try:
        owners = _wait_owners(pipe, lambda o: len(o) == 4 and sorted(collections.Counter(o.values()).values()) == [2, 2])
    except AssertionError as exc:
        logs = [line for r in (replica_a, replica_b) for line in list(r.lines)[-40:]]
        raise AssertionError(f"{exc}; replica logs:\n" + "\n".join(logs)) from None
    assert len(set(owners.values())) == 2

    def mem():
        return [r["tripId"] for r in pipe.read_table("mem")]

    sent = [f"t{i}" for i in range(2000)]
    pipe.publish("trips", [{"tripId": t} for t in sent])
    pipe.wait_rows(mem, lambda rows: len(set(rows)) >= len(sent), timeout=30)
    _exactly_once(sent, mem(), "two replicas")

    # kill -9 of replica A while events stream in: B takes A's partitions over.
    pipe.processing = replica_b
    with Publisher(pipe, "trips", per_batch=20, interval_s=0.02) as pub:
        pipe.wait_rows(mem, lambda rows: len(rows) >= len(sent) + 200)
        replica_a.kill()
        pipe.wait_rows(mem, lambda rows: len(rows) >= len(sent) + 600, timeout=30)
        more = pub.stop()
    _wait_owners(pipe, lambda o: len(o) == 4 and len(set(o.values())) == 1)
    want = sent + list(more)
    pipe.wait_rows(mem, lambda rows: len(set(rows)) >= len(want), timeout=40)
    pipe.wait_settled("copy")  # a duplicate written late would show now
    _exactly_once(want, mem(), "after kill -9 of a replica")

    # Stopped through B (the survivor): its tasks stop and release every claim.
    pipe.call("processing", "StopJob", ppb.StopJobRequest(name="jobs/copy"))
    _wait_owners(pipe, lambda o: not o)


def test_a_windowed_job_fails_over_to_the_standby_replica_exactly_once(service_process, root_policy, tmp_path):
    """A job that is not partition-parallel (a window over every partition) runs as one task
    on one replica, the other stands by; kill -9 of the one running it and the standby takes
    every partition over from the last checkpoint: each window comes out once, and the counts
    of all windows add up to the events sent (0 lost, 0 duplicated)."""
    from headwater.v1 import processing_pb2 as ppb

    pipe = _scale_out_pipeline(service_process, root_policy, tmp_path,
                               HEADWATER_PROCESSING_REPLICA_ID="replica-a")
    replicas = {"replica-a": pipe.processing,
                "replica-b": service_process("processing", "--data-dir", str(tmp_path / "proc-b"),
                                             env={**pipe.env, "HEADWATER_PROCESSING_REPLICA_ID": "replica-b"})}
    query = ("SELECT COUNT(*) AS n, System.Timestamp() AS WindowEnd INTO [Mem] FROM [Trips] "
             "GROUP BY TumblingWindow(second, 1)")
    pipe.create_job("win", query, {"Trips": "trips"}, {"Mem": "mem"})
    pipe.start_job("win", ppb.JOB_START_MODE_EARLIEST)
    owners = _wait_owners(pipe, lambda o: len(o) == 4 and len(set(o.values())) == 1)  # one task, every partition
    running = next(iter(owners.values()))
    standby = next(r for r in replicas if r != running)

    def total() -> int:
        return sum(r["n"] for r in pipe.read_table("mem"))

    pipe.processing = replicas[standby]  # calls go to the survivor
    with Publisher(pipe, "trips", per_batch=20, interval_s=0.02) as pub:
        pipe.wait_rows(total, lambda n: n >= 400)
        replicas[running].kill()
        _wait_owners(pipe, lambda o: len(o) == 4 and set(o.values()) == {standby})
        pipe.wait_rows(total, lambda n: n >= 1200, timeout=40)
        sent = pub.stop()
    pipe.wait_rows(total, lambda n: n >= len(sent), timeout=40)
    pipe.wait_checkpoints("win", 3)  # a window emitted twice would show now
    rows = pipe.read_table("mem")
    ends = collections.Counter(str(r["WindowEnd"]) for r in rows)
    assert sum(r["n"] for r in rows) == len(sent), (sum(r["n"] for r in rows), len(sent))
    assert all(v == 1 for v in ends.values()), [k for k, v in ends.items() if v > 1]
