"""The processing service's worker template (services/processing/launcher.py): workers fork from
it with the engine imported, report their exit codes like a multiprocessing process, die with
it, and the service spawns workers again once it is gone.

The template is forked from the process that calls ``fork_template`` before it has threads, so
each scenario runs in a fresh interpreter of its own (``python -c``), not in the pytest worker."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]


def _scenario(name: str, prefix: tuple[str, ...] = ()) -> dict:
    done = subprocess.run([*prefix, sys.executable, "-c", f"import tests.unit.processing.test_launcher as t; t._{name}()"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- what the workers run (module level: the service sends the target by reference) ----------
def _report(conn) -> None:
    """Say who we are and whether the engine was imported before we ran."""
    conn.send({"pid": os.getpid(), "ppid": os.getppid(), "polars": "polars" in sys.modules,
               "engine": "headwater.services.processing.engine_adapter" in sys.modules,
               "comm": Path("/proc/self/comm").read_text().strip()})
    conn.recv()  # until told to go


def _exit_with(conn, code: int) -> None:
    conn.close()
    sys.exit(code)


def _hang(conn) -> None:
    conn.send("up")
    with contextlib.suppress(EOFError):
        conn.recv()  # nothing comes: runs until killed


# -- the scenarios (each in its own interpreter) --------------------------------------------
def _forks() -> None:
    from headwater.services.processing import launcher

    launcher.fork_template()
    out: dict = {"template": launcher.template_pid(), "service": os.getpid()}
    proc, conn = launcher.start_worker(_report, (), "headwater test worker")
    out["report"] = conn.recv()
    out["pid"] = proc.pid
    out["alive"] = proc.is_alive()
    conn.send("go")
    proc.join(30)
    out["exitcode"] = proc.exitcode
    proc, conn = launcher.start_worker(_exit_with, (3,), "headwater test worker")
    proc.join(30)
    out["exit3"] = proc.exitcode
    proc, conn = launcher.start_worker(_hang, (), "headwater test worker")
    assert conn.recv() == "up"
    t0 = time.monotonic()
    proc.join(0.2)
    out["join_waited"] = time.monotonic() - t0
    out["alive_after_join"] = proc.is_alive()
    joiner = threading.Thread(target=proc.join, args=(3,))
    joiner.start()
    t0 = time.monotonic()
    out["alive_beside_a_join"] = proc.is_alive()  # the event loop asks while a thread joins
    out["alive_waited"] = time.monotonic() - t0
    joiner.join()
    proc.kill()
    proc.join(30)
    out["killed"] = proc.exitcode
    os.kill(launcher.template_pid(), signal.SIGTERM)  # a stop of the process group: ignored
    os.kill(launcher.template_pid(), signal.SIGINT)
    proc, conn = launcher.start_worker(_exit_with, (0,), "headwater test worker")
    proc.join(30)
    out["after_sigterm"] = proc.exitcode
    print(json.dumps(out))


def _template_dies() -> None:
    from headwater.services.processing import launcher

    launcher.fork_template()
    proc, conn = launcher.start_worker(_hang, (), "headwater test worker")
    assert conn.recv() == "up"
    worker = proc.pid
    os.kill(launcher.template_pid(), signal.SIGKILL)
    os.waitpid(launcher.template_pid(), 0)  # gone: every socket of its closed
    proc.join(30)  # the worker dies with its template (PR_SET_PDEATHSIG)
    out: dict = {"exitcode": proc.exitcode}

    def gone() -> bool:
        try:
            return Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    out["worker_gone"] = wait_until(gone, timeout=10, every=0.01, fail=False)
    proc, conn = launcher.start_worker(_report, (), "headwater test worker")  # spawned now
    report = conn.recv()
    conn.send("go")
    proc.join(30)
    out.update(spawned_ppid=report["ppid"], service=os.getpid(), exit_spawned=proc.exitcode,
               template=launcher.template_pid())
    print(json.dumps(out))


def _as_pid_1() -> None:
    """The service as a container's PID 1: its template is not to take that for a dead parent."""
    from headwater.services.processing import launcher

    assert os.getpid() == 1
    launcher.fork_template()
    proc, conn = launcher.start_worker(_report, (), "headwater test worker")
    report = conn.recv()
    conn.send("go")
    proc.join(30)
    print(json.dumps({"template": launcher.template_pid(), "ppid": report["ppid"], "exitcode": proc.exitcode}))


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root, or user namespaces)")
def test_a_service_running_as_pid_1_keeps_its_template() -> None:
    out = _scenario("as_pid_1", ("unshare", "--pid", "--fork", "--mount-proc"))
    assert out["template"] is not None and out["ppid"] == out["template"] and out["exitcode"] == 0


def test_workers_fork_from_the_template_with_the_engine_imported() -> None:
    out = _scenario("forks")
    report = out["report"]
    assert out["template"] not in (None, out["service"])
    assert report["ppid"] == out["template"] and report["pid"] == out["pid"]
    assert report["polars"] and report["engine"], "the worker had to import the engine itself"
    assert out["alive"] and out["exitcode"] == 0
    assert out["exit3"] == 3


def test_join_kill_and_exit_codes_read_as_a_multiprocessing_process() -> None:
    out = _scenario("forks")
    assert 0.15 <= out["join_waited"] < 5 and out["alive_after_join"]
    assert out["alive_beside_a_join"] and out["alive_waited"] < 1, "is_alive() waited for another thread's join"
    assert out["killed"] == -signal.SIGKILL
    assert out["after_sigterm"] == 0, "SIGTERM or SIGINT stopped the template"


def test_workers_die_with_the_template_and_the_service_spawns_after() -> None:
    out = _scenario("template_dies")
    assert out["exitcode"] == -signal.SIGKILL and out["worker_gone"]
    assert out["template"] is None
    assert out["spawned_ppid"] == out["service"] and out["exit_spawned"] == 0
