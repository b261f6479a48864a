"""The processing service's helper processes (the query pool that compiles queries) do not
outlive it: killed with kill -9, it leaves no orphan behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.processing_support import Pipeline
from tests.wait import wait_until


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(c) for c in text)
    return out


def workers(service: int) -> set[int]:
    """The service's query and job workers: its children, or the children of the template it
    forks them from (``services/processing/launcher.py``), by the names they give themselves."""
    out: set[int] = set()
    for child in _children(service):
        for pid in {child} | (_children(child) if _comm(child) == "hw-workers" else set()):
            if _comm(pid) in ("hw-query", "hw-job"):
                out.add(pid)
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.parametrize("template", [True, False], ids=["template", "spawn"])
def test_the_workers_leave_with_a_killed_processing_service(service_process, root_policy, tmp_path, template):
    """Query and job workers fork from the service's template (``worker_template``), or are
    spawned by the service itself without it; either way a kill -9 of the service leaves none."""
    pipe = Pipeline(service_process, root_policy, tmp_path,
                    extra_env={"HEADWATER_PROCESSING_WORKER_TEMPLATE": str(template).lower()})
    pipe.create_hub("in", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_job("j", "SELECT * INTO [Out] FROM [In]", {"In": "in"}, {"Out": "out"})  # compiled in the pool
    pipe.start_job("j")
    pipe.publish("in", [{"v": i} for i in range(5)])
    pipe.wait_rows(lambda: pipe.read_table("out"), lambda r: len(r) == 5)
    pipe.create_job("k", "SELECT * INTO [Out] FROM [In]", {"In": "in"}, {"Out": "out"})  # a new query worker
    service = pipe.processing.pid
    found = workers(service)
    assert len(found) == 2, "the job's worker and the query worker"
    templates = {c for c in _children(service) if _comm(c) == "hw-workers"}
    direct = found & _children(service)
    if template:
        assert len(templates) == 1 and not direct, "the workers fork from the template"
    else:
        assert not templates and direct == found, "the workers are the service's own children"
    # Both run below the service's priority, once (the job's worker was a query worker first).
    nice = {p: int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[16]) for p in (service, *found)}
    assert all(nice[p] == nice[service] + 3 for p in found), nice
    # A stop of the whole process group (`headwater down`, Ctrl-C) leaves the job's worker to
    # the service, which stops it with its final checkpoint.
    (job,) = [p for p in found if _comm(p) == "hw-job"]
    ignored = int(next(line for line in Path(f"/proc/{job}/status").read_text().splitlines()
                       if line.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (signal.SIGTERM - 1)) and ignored & (1 << (signal.SIGINT - 1)), hex(ignored)
    # A job's worker killed on its own fails the job, naming how it ended.
    from headwater.v1 import processing_pb2 as ppb

    os.kill(job, 9)
    failed = pipe.wait_job("j", lambda j: j.state == ppb.JOB_STATE_FAILED, what="FAILED after its worker's kill -9")
    assert "worker process exited (code -9)" in failed.error, failed.error
    os.kill(service, 9)
    wait_until(lambda: {p for p in found | templates if _alive(p)}, lambda left: not left, timeout=20,
               what="the workers to exit after the service was killed")
