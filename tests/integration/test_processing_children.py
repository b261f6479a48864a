"""The processing service's helper processes (the query pool that compiles queries) do not
outlive it: killed with kill -9, it leaves no orphan behind."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.processing_support import Pipeline
from tests.wait import wait_until


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(c) for c in text)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_the_query_pool_leaves_with_a_killed_processing_service(service_process, root_policy, tmp_path):
    pipe = Pipeline(service_process, root_policy, tmp_path)
    pipe.create_hub("in", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_job("j", "SELECT * INTO [Out] FROM [In]", {"In": "in"}, {"Out": "out"})  # compiled in the pool
    service = pipe.processing.pid
    pool = {c for c in _children(service)
            if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()}
    assert pool, "the query pool's worker runs beside the service"
    os.kill(service, 9)
    wait_until(lambda: {p for p in pool if _alive(p)}, lambda left: not left, timeout=20,
               what="the query pool's processes to exit after the service was killed")
