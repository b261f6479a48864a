"""The tests' zygote (tests/zygote.py): a forked service is a process like ``headwater serve``
makes, with its own session, environment and exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from headwater.procs import headwater_cmd
from tests.wait import wait_until
from tests.zygote import ForkedPopen, ForkedServiceProcess, Zygote, enabled, run_headwater

pytestmark = pytest.mark.skipif(not enabled(), reason="HEADWATER_TEST_FORK=0")


def _service(tmp_path, name: str = "registry", env: dict[str, str] | None = None) -> ForkedServiceProcess:
    argv = [*headwater_cmd(), "serve", name, "--port", "0", "--metrics-port", "-1",
            "--data-dir", str(tmp_path / name)]
    return ForkedServiceProcess(name, argv, env={"HEADWATER_HOME": str(tmp_path / "home"), **(env or {})},
                                cwd=str(tmp_path))


def test_a_forked_service_has_its_session_environment_and_directory(tmp_path) -> None:
    svc = _service(tmp_path).start()
    try:
        assert isinstance(svc.proc, ForkedPopen)
        assert os.getsid(svc.pid) == svc.pid and os.getpgid(svc.pid) == svc.pid
        assert os.readlink(f"/proc/{svc.pid}/cwd") == str(tmp_path)
        assert (tmp_path / "home" / "auth.json").is_file()  # its HEADWATER_HOME, not the zygote's
        assert (tmp_path / "registry").is_dir()
        assert svc.proc.poll() is None
    finally:
        svc.kill()
    assert svc.proc.returncode == -signal.SIGKILL


def test_a_forked_service_starts_in_the_callers_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    svc = _service(tmp_path)
    svc.cwd = None
    svc.start()
    try:
        assert os.readlink(f"/proc/{svc.pid}/cwd") == str(tmp_path)
    finally:
        svc.kill()


def test_poll_answers_while_another_thread_waits(tmp_path) -> None:
    svc = _service(tmp_path).start()
    try:
        waiter = threading.Thread(target=lambda: svc.proc.wait(30), daemon=True)
        waiter.start()
        wait_until(lambda: svc.proc._lock.locked(), timeout=10, what="the waiter in wait()")
        started = time.monotonic()
        assert svc.proc.poll() is None
        assert time.monotonic() - started < 1.0  # not until the wait ends
        with pytest.raises(subprocess.TimeoutExpired):  # a timed wait behind it keeps its timeout
            svc.proc.wait(0.5)
        assert time.monotonic() - started < 5.0
    finally:
        svc.kill()
    waiter.join(10)
    assert svc.proc.poll() == -signal.SIGKILL


def test_sigterm_drains_and_the_exit_status_comes_back(tmp_path) -> None:
    svc = _service(tmp_path).start()
    assert svc.terminate() == 0  # a graceful stop exits 0, as the console script's would
    assert svc.proc.poll() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(svc.pid, 0)


def test_a_service_that_fails_to_start_reports_its_exit_code(tmp_path) -> None:
    svc = _service(tmp_path, env={"HEADWATER_REGISTRY_STORE": "no-such-store"})
    with pytest.raises(RuntimeError, match="did not start"):
        svc.start(timeout=20)
    assert svc.proc.wait(10) not in (None, 0)


def test_an_import_time_setting_is_not_forked(tmp_path) -> None:
    """A setting a module reads when imported would be the zygote's: such a service is started
    by subprocess."""
    svc = _service(tmp_path, env={"HEADWATER_JIT_AOT": "0" if os.environ.get("HEADWATER_JIT_AOT") != "0" else "1"})
    svc.start()
    try:
        assert isinstance(svc.proc, subprocess.Popen)
    finally:
        svc.kill()


def test_children_die_with_the_zygote(tmp_path) -> None:
    z = Zygote()
    argv = [*headwater_cmd(), "serve", "registry", "--port", "0", "--metrics-port", "-1",
            "--data-dir", str(tmp_path / "r")]
    child = z.spawn(argv, {**os.environ, "HEADWATER_HOME": str(tmp_path)})
    assert child.stdout.readline()  # it runs
    z._proc.kill()
    z._proc.wait(10)
    assert child.wait(10) == -signal.SIGKILL  # the zygote's word never came: PR_SET_PDEATHSIG
    wait_until(lambda: _state(child.pid), lambda state: state in ("", "Z"), timeout=10, what="the child gone")


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def test_a_forked_command_gives_what_subprocess_run_gives(tmp_path) -> None:
    """A command run forked gives what subprocess.run gives: exit code, stdout and stderr apart."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "nowhere")
    forked = run_headwater(["connection-string"], env=env, cwd=tmp_path, input="ignored\n", timeout=60)
    plain = subprocess.run([*headwater_cmd(), "connection-string"], env=env, cwd=tmp_path, input="ignored\n",
                           capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert forked.returncode != 0 and forked.stderr and not forked.stdout
    version = run_headwater(["--version"], timeout=60)
    assert version.returncode == 0 and version.stdout.strip() and not version.stderr
