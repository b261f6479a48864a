"""Services for the tests, forked from a process that has already imported them.

A service started as ``headwater serve NAME`` spends 0.2-0.4 CPU seconds importing gRPC,
protobuf, NumPy, Arrow and its own modules before it listens, and the suite starts some 400
of them on two cores. The zygote is one process per pytest worker (``python -m
tests.zygote``) that imports what the four services import at start, then forks a child per
service the tests start. The child is a real process like the one ``headwater serve`` makes,
only with the imports done:

- its own session (``kill -9`` of its process group kills it, as ``start_new_session``),
  its output on a pipe the test reads, and the environment, working directory and argv
  the test gave;
- it runs ``headwater.cli.main.main`` and exits as the console script does (``sys.exit``:
  atexit handlers and thread joins as usual), its ``__main__`` the console script (what a
  ``spawn`` job worker re-runs);
- it dies with the zygote, and the zygote with the pytest worker (``PR_SET_PDEATHSIG``);
- the zygote reaps it and sends its wait status back, so ``poll``, ``wait`` and
  ``returncode`` mean what they mean for a ``subprocess.Popen``.

Nothing is imported that starts a thread other than NumPy's BLAS pool and jemalloc's
background thread (both re-made in a forked child), and no gRPC channel, server or event
loop exists before the fork. A module that reads the environment when imported
(``IMPORT_TIME_ENV``) would see the zygote's: a service started with one of those set
differently is started with ``subprocess`` instead. ``HEADWATER_TEST_FORK=0`` turns the
zygote off (every service a fresh interpreter, as before).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

from headwater.procs import ServiceProcess

__all__ = ["Zygote", "ForkedPopen", "ForkedServiceProcess", "enabled", "zygote"]

ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1
#: environment variables read when a module is imported (headwater.jit, the JSON kernels, the
#: JavaScript UDFs) or by the interpreter and libraries at start: a service given a value that
#: differs from the zygote's is not forked
IMPORT_TIME_ENV = ("HEADWATER_JIT_AOT", "HEADWATER_PROCESSING_JSON_KERNELS", "HEADWATER_JS_TIME_LIMIT")
IMPORT_TIME_PREFIXES = ("PYTHON", "OPENBLAS", "OMP_", "POLARS", "ARROW", "GRPC", "NUMBA", "MALLOC", "LD_")


def enabled() -> bool:
    return os.environ.get("HEADWATER_TEST_FORK", "1").strip().lower() not in ("0", "false", "no", "off")


def _pdeathsig() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# -- the zygote ----------------------------------------------------------------------------
def _preload() -> None:
    """What ``headwater serve`` imports before it listens, for each service."""
    import headwater.cli.main
    import headwater.cli.services
    import headwater.server  # noqa: F401

    for name in headwater.cli.services.SERVICE_NAMES:
        headwater.cli.services.service_class(name)


def _serve(control: socket.socket) -> tuple[list[str], dict[str, str], str | None] | None:
    """Fork a child per request until the control socket closes. Returns in the child (its
    request), and ``None`` in the zygote when the client has gone."""
    zygote_pid = os.getpid()
    status: dict[int, socket.socket] = {}  # child pid -> where its exit status goes
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is wake_r:
                os.read(wake_r, 4096)
                _reap(status)
                continue
            msg, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 2)
            if not msg:
                return None
            out_fd, status_fd = fds
            request = pickle.loads(msg)
            pid = os.fork()
            if pid == 0:
                # the child: nothing of the zygote's but the imports
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sel.close()
                control.close()
                for fd in (wake_r, wake_w, status_fd):
                    os.close(fd)
                for sock in status.values():
                    sock.close()
                os.setsid()
                _pdeathsig()
                if os.getppid() != zygote_pid:
                    os._exit(1)
                os.dup2(out_fd, 1)
                os.dup2(out_fd, 2)
                os.close(out_fd)
                return request
            os.close(out_fd)
            sock = socket.socket(fileno=status_fd)
            sock.sendall(pid.to_bytes(8, "little"))
            status[pid] = sock
            _reap(status)


def _reap(status: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, wstatus = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock = status.pop(pid, None)
        if sock is not None:
            try:
                sock.sendall(os.waitstatus_to_exitcode(wstatus).to_bytes(8, "little", signed=True))
            except OSError:
                pass
            sock.close()


def _run_child(request: tuple[list[str], dict[str, str], str | None]) -> None:
    """Become ``headwater ...`` with the request's argv, environment and directory."""
    argv, env, cwd = request
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)
    # ``__main__`` is the console script, as for ``headwater serve``: a ``spawn`` child
    # (a job worker) re-runs it, not this module and its imports
    main_module = types.ModuleType("__main__")
    main_module.__file__ = argv[0]
    main_module.__builtins__ = __builtins__
    sys.modules["__main__"] = main_module
    sys.argv = list(argv)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    from headwater.cli.main import main

    sys.exit(main(argv[1:]))


# -- the tests' side ----------------------------------------------------------------------------
class ForkedPopen:
    """What the tests use of a :class:`subprocess.Popen`, for a child of the zygote."""

    def __init__(self, pid: int, status: socket.socket, stdout) -> None:
        self.pid, self._status, self.stdout = pid, status, stdout
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _read_status(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            self._status.settimeout(timeout)
            try:
                data = self._status.recv(8, socket.MSG_WAITALL)
            except (BlockingIOError, TimeoutError):
                return None
            except OSError:
                data = b""
            # the zygote gone without a word: the child died with it (PR_SET_PDEATHSIG)
            self.returncode = int.from_bytes(data, "little", signed=True) if len(data) == 8 else -signal.SIGKILL
            self._status.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._read_status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The client: one zygote process, started at the first :meth:`spawn`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._env: dict[str, str] = {}

    def _start(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._control is not None:
            return self._control
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._env = dict(os.environ)
        argv = [sys.executable, "-u", "-m", "tests.zygote", str(theirs.fileno())]
        self._proc = subprocess.Popen(argv, cwd=ROOT, pass_fds=(theirs.fileno(),), env=self._env,
                                      preexec_fn=_pdeathsig)
        theirs.close()
        self._control = ours
        return ours

    def can_fork(self, argv: list[str], env: dict[str, str]) -> bool:
        """A ``headwater`` command whose import-time environment is the zygote's. The zygote
        dies with the thread that started it (PR_SET_PDEATHSIG): only the main thread does."""
        if not argv or Path(argv[0]).name != "headwater":
            return False
        if self._proc is None and threading.current_thread() is not threading.main_thread():
            return False
        base = self._env or os.environ
        for key in set(env) | set(base):
            if key in IMPORT_TIME_ENV or key.startswith(IMPORT_TIME_PREFIXES):
                if key != "PYTHONUNBUFFERED" and env.get(key) != base.get(key):
                    return False
        return True

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> ForkedPopen:
        out_r, out_w = os.pipe()
        mine, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                control = self._start()
                socket.send_fds(control, [pickle.dumps((list(argv), dict(env), cwd))], [out_w, child.fileno()])
        finally:
            os.close(out_w)
            child.close()
        mine.settimeout(30)
        pid = int.from_bytes(mine.recv(8, socket.MSG_WAITALL), "little")
        stdout = os.fdopen(out_r, "r", buffering=1, errors="replace")
        return ForkedPopen(pid, mine, stdout)


_ZYGOTE = Zygote()


@dataclass
class ForkedServiceProcess(ServiceProcess):
    """A :class:`~headwater.procs.ServiceProcess` forked from the zygote where it can be."""

    def _popen(self, env: dict[str, str]):
        z = zygote()
        if enabled() and self.die_with_parent and z.can_fork(list(self.argv), env):
            return z.spawn(list(self.argv), env, self.cwd)
        return super()._popen(env)


def zygote() -> Zygote:
    """This process's zygote."""
    return _ZYGOTE


if __name__ == "__main__":
    _pdeathsig()
    control = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    request = _serve(control)
    if request is None:
        sys.exit(0)
    _run_child(request)
