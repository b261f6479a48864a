"""Scale-out: a job left STOPPING by a replica that died during the stop (kill -9 of it, or
of every replica) becomes STOPPED; a stop still under way on a live replica is left alone."""

from __future__ import annotations

import asyncio
import time

from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.manager import JobManager
from headwater.services.processing.server import catalog_for
from headwater.v1 import processing_pb2 as pb

NAME = "jobs/j"


def _replica(tmp_path, rid: str) -> JobManager:
    config = ProcessingConfig(data_dir=str(tmp_path / rid), scale_out=True, checkpoint_dir=str(tmp_path / "ck"),
                              replica_id=rid, reconcile_interval_s=0.05)
    return JobManager(config, catalog_for(config))


async def _reconcile_until(replica: JobManager, ok, timeout: float) -> pb.Job:
    deadline = time.monotonic() + timeout
    while True:
        await replica.reconcile()
        job = replica.catalog.get(NAME)
        if ok(job) or time.monotonic() > deadline:
            return job
        await asyncio.sleep(replica.config.reconcile_interval_s)


class _SlowStop:
    """A running job whose final checkpoint waits until ``done`` is set."""

    error = ""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    async def stop(self, final_checkpoint: bool = True) -> None:
        await self.done.wait()

    def metrics(self) -> pb.JobMetrics:
        return pb.JobMetrics()


async def test_a_stop_whose_replica_died_ends_stopped(tmp_path):
    a = _replica(tmp_path, "a")
    a.catalog.create(pb.Job(name=NAME, query="SELECT * INTO o FROM i", state=pb.JOB_STATE_STOPPED))
    # Replica "a" marked the job STOPPING and was killed before it wrote STOPPED (no heartbeat).
    a.catalog.set_state(NAME, pb.JOB_STATE_STOPPING)
    b = _replica(tmp_path, "b")  # a replica started after all died, or one that outlived "a"
    started = time.monotonic()
    job = await _reconcile_until(b, lambda j: j.state != pb.JOB_STATE_STOPPING, timeout=30)
    assert job.state == pb.JOB_STATE_STOPPED
    assert time.monotonic() - started >= b._stale_stop_s()  # not before the heartbeat window


async def test_a_live_stop_is_not_taken_for_a_dead_one(tmp_path):
    a, b = _replica(tmp_path, "a"), _replica(tmp_path, "b")
    a.catalog.create(pb.Job(name=NAME, query="SELECT * INTO o FROM i", state=pb.JOB_STATE_RUNNING))
    slow = _SlowStop()
    a.runners[NAME] = slow
    stopping = asyncio.create_task(a.stop(NAME))
    await _reconcile_until(b, lambda j: j.state == pb.JOB_STATE_STOPPING, timeout=10)
    # Three heartbeat windows later, "a" is still stopping and says so.
    job = await _reconcile_until(b, lambda j: j.state != pb.JOB_STATE_STOPPING, timeout=3 * b._stale_stop_s())
    assert job.state == pb.JOB_STATE_STOPPING
    slow.done.set()
    assert (await stopping).state == pb.JOB_STATE_STOPPED
    assert not list((tmp_path / "ck" / "jobs").rglob("stopping/*"))  # the heartbeat is gone
