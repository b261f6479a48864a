"""Scale-out replicas share one job catalogue (a file in the shared checkpoint folder)
and one start position per job (start.json)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.jobs import JobCatalog
from headwater.services.processing.server import catalog_for
from headwater.services.processing.slots import ScaledJob
from headwater.v1 import processing_pb2 as pb


def _job(name: str) -> pb.Job:
    return pb.Job(name=f"jobs/{name}", query="SELECT * INTO o FROM i", state=pb.JOB_STATE_STOPPED)


def test_a_change_through_one_replica_is_seen_by_the_other(tmp_path):
    a = JobCatalog(tmp_path / "jobs.json", shared=True)
    b = JobCatalog(tmp_path / "jobs.json", shared=True)
    a.create(_job("one"))
    assert b.get("jobs/one").query == "SELECT * INTO o FROM i"
    b.set_state("jobs/one", pb.JOB_STATE_RUNNING, started=True)
    assert a.jobs["jobs/one"].state == pb.JOB_STATE_RUNNING and a.jobs["jobs/one"].HasField("start_time")
    with pytest.raises(HeadwaterError) as info:  # created through A: B knows it exists
        b.create(_job("one"))
    assert info.value.reason == Reason.RESOURCE_ALREADY_EXISTS
    a.delete("jobs/one")
    assert "jobs/one" not in b.jobs


def test_an_unshared_catalogue_does_not_read_the_file_again(tmp_path):
    a = JobCatalog(tmp_path / "jobs.json")
    JobCatalog(tmp_path / "jobs.json").create(_job("late"))
    assert "jobs/late" not in a.jobs  # one process owns an unshared catalogue


def test_set_state_with_expect_leaves_a_changed_state_alone(tmp_path):
    a = JobCatalog(tmp_path / "jobs.json", shared=True)
    a.create(_job("j"))
    JobCatalog(tmp_path / "jobs.json", shared=True).set_state("jobs/j", pb.JOB_STATE_FAILED, "boom")
    got = a.set_state("jobs/j", pb.JOB_STATE_RUNNING, expect=(pb.JOB_STATE_STARTING,))
    assert got.state == pb.JOB_STATE_FAILED and a.get("jobs/j").error == "boom"


def _create_many(path: str, prefix: str, n: int) -> None:
    cat = JobCatalog(__import__("pathlib").Path(path), shared=True)
    for i in range(n):
        cat.create(_job(f"{prefix}{i}"))


def test_replicas_creating_at_once_keep_every_job(tmp_path):
    # Two processes writing the one file: the lock makes each change a read-modify-write.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create_many, args=(str(tmp_path / "jobs.json"), p, 25)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = set(JobCatalog(tmp_path / "jobs.json", shared=True).jobs)
    assert names == {f"jobs/{p}{i}" for p in "ab" for i in range(25)}


def test_the_service_shares_the_catalogue_only_in_scale_out_with_a_checkpoint_dir(tmp_path):
    shared = catalog_for(ProcessingConfig(data_dir=str(tmp_path / "d"), scale_out=True,
                                          checkpoint_dir=str(tmp_path / "ck")))
    assert shared.shared and shared.path == tmp_path / "ck" / "jobs.json"
    own = catalog_for(ProcessingConfig(data_dir=str(tmp_path / "d"), scale_out=True))
    assert not own.shared and own.path == tmp_path / "d" / "jobs.json"


def _scaled(tmp_path, replica: str, joining: bool) -> ScaledJob:
    job = ScaledJob(_job("s"), None, None, tmp_path, replica, True, "hubs/h", "$Default", ["0", "1"],
                    make_task=None)
    job.joining = joining
    return job


def test_start_now_is_recorded_as_a_time_that_a_joining_replica_starts_from(tmp_path):
    before = datetime.now(UTC)
    mode, at = _scaled(tmp_path, "a", False)._start_position(pb.JOB_START_MODE_NOW, None)
    assert mode == pb.JOB_START_MODE_CUSTOM_TIME and before <= at <= datetime.now(UTC)
    # B joins later (its StartJob mode is only "resume"): the same position.
    assert _scaled(tmp_path, "b", True)._start_position(pb.JOB_START_MODE_WHEN_LAST_STOPPED, None) == (mode, at)
    # A restarted replica resuming the job: the same position too.
    assert _scaled(tmp_path, "a", False)._start_position(pb.JOB_START_MODE_WHEN_LAST_STOPPED, None) == (mode, at)
    # A new StartJob (EARLIEST) records its own.
    assert _scaled(tmp_path, "a", False)._start_position(pb.JOB_START_MODE_EARLIEST, None)[0] == \
        pb.JOB_START_MODE_EARLIEST
    assert _scaled(tmp_path, "b", True)._start_position(pb.JOB_START_MODE_WHEN_LAST_STOPPED, None) == \
        (pb.JOB_START_MODE_EARLIEST, None)


def test_start_is_recorded_before_the_job_starts(tmp_path):
    # The manager records StartJob's position before it marks the job STARTING: a replica
    # joining on STARTING reads this start, not an older one.
    _scaled(tmp_path, "a", False)._start_position(pb.JOB_START_MODE_EARLIEST, None)  # an earlier run
    a = _scaled(tmp_path, "a", False)
    a.record_start(pb.JOB_START_MODE_NOW, None)
    joined = _scaled(tmp_path, "b", True)._start_position(pb.JOB_START_MODE_WHEN_LAST_STOPPED, None)
    assert joined[0] == pb.JOB_START_MODE_CUSTOM_TIME and joined == a._position
