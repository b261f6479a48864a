"""Two processing replicas split a hub's partitions (scale-out) through the
ingestion service's ownership store; kill -9 of one and the other takes its
partitions over from the last checkpoint: every event exactly once in the sink."""

from __future__ import annotations

import collections
import time

import pytest

from tests.e2e.test_processing_faults import _exactly_once
from tests.integration.processing_support import Pipeline, Publisher

pytestmark = pytest.mark.slow


def _owners(pipe: Pipeline) -> dict[str, str]:
    from headwater.v1 import ingestion_pb2 as ipb

    resp = pipe.call("ingestion", "ListOwnerships", ipb.ListOwnershipsRequest(hub="trips", consumer_group="$Default"))
    now = time.time()
    return {o.partition_id: o.owner_id for o in resp.ownerships
            if o.owner_id and o.expire_time.ToNanoseconds() / 1e9 > now}


def _wait_owners(pipe: Pipeline, ok, timeout: float = 60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    owners = _owners(pipe)
    while not ok(owners) and time.monotonic() < deadline:
        time.sleep(0.2)
        owners = _owners(pipe)
    assert ok(owners), owners
    return owners


def test_two_replicas_split_partitions_and_take_over_after_kill_9(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    shared = tmp_path / "checkpoints"
    env = {"HEADWATER_PROCESSING_SCALE_OUT": "true", "HEADWATER_PROCESSING_CHECKPOINT_DIR": str(shared)}
    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3, extra_env=env)
    # Claims lapse 3 s after their owner stops renewing them (a killed replica).
    pipe.ingestion.kill()
    pipe.ingestion = service_process("ingestion", "--data-dir", str(tmp_path / "ing"), "--port",
                                     pipe.ingestion.address.rsplit(":", 1)[1],
                                     env={"HEADWATER_INGESTION_OWNERSHIP_EXPIRY_S": "3"})
    pipe.create_hub("trips", partitions=4)
    pipe.create_sink("mem", "memory")
    query = "SELECT tripId INTO [Mem] FROM [Trips]"
    replica_a = pipe.processing
    replica_b = service_process("processing", "--data-dir", str(tmp_path / "proc-b"), env=pipe.env)

    for replica in (replica_a, replica_b):  # the same job on both replicas
        pipe.processing = replica
        pipe.create_job("copy", query, {"Trips": "trips"}, {"Mem": "mem"})
        pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)

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
    time.sleep(1.0)  # a duplicate written late would show now
    _exactly_once(want, mem(), "after kill -9 of a replica")
