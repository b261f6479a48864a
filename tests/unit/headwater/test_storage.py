"""headwater.storage: atomic, durable writes and the background writer of service metadata."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import threading

import pytest

from headwater import storage
from headwater.services.processing.jobs import JobCatalog
from headwater.v1 import processing_pb2 as pb


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_replaces_content_with_modes(tmp_path):
    path = tmp_path / "sub" / "a.json"
    storage.write_atomic(path, b"one")
    storage.write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    storage.write_atomic(path, b"three", private=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(path.parent) == []


def test_a_failed_write_keeps_the_old_content(tmp_path):
    path = tmp_path / "a.json"
    storage.write_atomic(path, b"old")
    with pytest.raises(RuntimeError), storage.atomic_file(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    storage.write_atomic(tmp_path / "a", b"x")
    assert synced == ["file", "dir"]  # the content before the rename, the rename after it


_WRITER = """
import json, sys
from headwater.storage import write_atomic
path = sys.argv[1]
i = 0
while True:
    i += 1
    write_atomic(path, json.dumps({"i": i, "pad": "x" * 200_000}).encode())
    if i == 3:
        print("writing", flush=True)
"""


def test_kill_9_mid_writes_leaves_a_whole_file(tmp_path):
    path = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        seen = set()
        for _ in range(50):  # every read during the writes is a whole version
            seen.add(json.loads(path.read_bytes())["i"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(json.loads(path.read_bytes())["pad"]) == 200_000
    assert min(seen) >= 3


def test_write_new_has_exactly_one_winner(tmp_path):
    path = tmp_path / "policies.json"
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda i=i: wins.append(storage.write_new(path, f"{i}".encode() * 1000)))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    body = path.read_bytes()
    assert body == body[:1] * 1000
    assert _leftovers(tmp_path) == []


def test_background_writer_coalesces_and_reports(tmp_path):
    path = tmp_path / "jobs.json"
    writer = storage.BackgroundWriter(path)
    gate, entered = threading.Event(), threading.Event()
    renders: list[int] = []

    def first() -> bytes:
        entered.set()
        gate.wait(10)
        renders.append(0)
        return b"0"

    f0 = writer.submit(first)
    assert entered.wait(10)  # the thread is inside the first write
    futures = [writer.submit(lambda i=i: (renders.append(i), str(i).encode())[1]) for i in range(1, 11)]
    assert threading.current_thread() is threading.main_thread()
    gate.set()
    for f in [f0, *futures]:
        f.result(10)
    assert renders == [0, 10]  # ten submissions while busy: one write, of the newest
    assert path.read_bytes() == b"10"
    writer.close()
    writer.submit(lambda: b"after close").result(0)  # written in the caller once closed
    assert path.read_bytes() == b"after close"


def test_background_writer_hands_errors_to_the_waiters(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    writer = storage.BackgroundWriter(tmp_path / "file" / "jobs.json")
    with pytest.raises(OSError):
        writer.submit(lambda: b"x").result(10)
    writer.close()


def test_job_catalog_writes_off_the_loop_and_flushes_on_close(tmp_path, monkeypatch):
    threads: list[str] = []
    real = storage.write_atomic

    def spy(path, data, **kw):
        threads.append(threading.current_thread().name)
        real(path, data, **kw)

    monkeypatch.setattr(storage, "write_atomic", spy)
    path = tmp_path / "jobs.json"

    async def main() -> None:
        catalog = JobCatalog(path)
        catalog.create(pb.Job(name="jobs/a", query="SELECT 1"))
        await catalog.synced()  # what CreateJob awaits before it answers
        assert [j["name"] for j in json.loads(path.read_text())["jobs"]] == ["jobs/a"]
        job = pb.Job()
        job.CopyFrom(catalog.get("jobs/a"))
        job.state = pb.JOB_STATE_RUNNING
        catalog.put(job)  # a state change, written behind
        catalog.close()

    asyncio.run(main())
    assert threads and all(name == "storage:jobs.json" for name in threads)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert JobCatalog(path).get("jobs/a").state == pb.JOB_STATE_RUNNING


def _stale(path, age_s: float = 3600.0) -> None:
    t = os.stat(path).st_mtime - age_s
    os.utime(path, (t, t))


def test_sweep_removes_only_stale_temporaries_of_interrupted_writes(tmp_path):
    (tmp_path / "jobs" / "a").mkdir(parents=True)
    done = tmp_path / "jobs" / "a" / "checkpoint.json"
    storage.write_atomic(done, b"{}")
    old = tmp_path / "jobs" / "a" / ".checkpoint.json.k3j2.tmp"  # a writer killed an hour ago
    fresh = tmp_path / ".jobs.json.x9.tmp"  # a write in progress in another process
    other = tmp_path / "notes.tmp"  # not one of this module's names
    for p in (old, fresh, other):
        p.write_bytes(b"partial")
    _stale(old)
    _stale(other)
    _stale(done)
    assert storage.sweep_temporaries(tmp_path) == [old]
    assert not old.exists() and fresh.exists() and other.exists() and done.read_bytes() == b"{}"
    assert storage.sweep_temporaries(tmp_path / "missing") == []


def test_a_service_sweeps_what_a_killed_writer_left_in_its_data_folder(tmp_path, service_process):
    """kill -9 in the middle of writes leaves a temporary file; the next start of a service
    over that folder removes it once it is stale, and keeps the whole file."""
    data = tmp_path / "registry-data"
    data.mkdir()
    path = data / "state.json"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        while not _leftovers(data) and proc.poll() is None:  # kill it while a temporary file is there
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = _leftovers(data)
    if not left:  # the write finished between the look and the kill: leave one as a kill would
        (data / ".state.json.abc.tmp").write_bytes(b"partial")
        left = _leftovers(data)
    for name in left:
        _stale(data / name)
    fresh = data / ".other.json.new.tmp"
    fresh.write_bytes(b"in progress")
    service_process("registry", "--data-dir", str(data))  # returns once the service is healthy
    assert _leftovers(data) == [fresh.name]
    assert len(json.loads(path.read_bytes())["pad"]) == 200_000
