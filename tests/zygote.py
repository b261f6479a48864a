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

The zygote runs no thread of its own but jemalloc's background purgers (Arrow's and Polars'
allocators; a forked child purges inline instead) and Polars' idle spill-folder cleaner, and no
gRPC channel, server or event loop exists before the fork. It imports the engine too (what the
processing service's worker template imports, ``services/processing/launcher.py``), so a
forked processing service's template, and every query and job worker forked from it, starts
with the engine imported. A setting read when a module is imported or the interpreter starts
(``IMPORT_TIME_ENV``, ``IMPORT_TIME_PREFIXES``) would be the zygote's: a service given one
that differs is started with ``subprocess`` instead. The child's ``sys.path[0]`` is the
console script's folder, its multiprocessing ``authkey`` its own and ``ORIGINAL_DIR`` its
working directory, as a fresh ``headwater`` has them. A request the zygote cannot serve is
answered by closing the child's status socket (the test sees the start fail), never by the
zygote dying. ``HEADWATER_TEST_FORK=0`` turns the zygote off (every service a fresh
interpreter, as before).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

from headwater.procs import ServiceProcess, headwater_cmd
from headwater.services.processing.launcher import ForkServer, die_with_parent

__all__ = ["Zygote", "ForkedPopen", "ForkedServiceProcess", "enabled", "run_headwater", "zygote"]

ROOT = Path(__file__).resolve().parents[1]
#: environment variables read when the zygote's modules are imported (headwater.jit; traced
#: with os.environ during the preload) or by the interpreter and libraries at start: a service
#: given a value that differs from the zygote's is not forked
IMPORT_TIME_ENV = ("HEADWATER_JIT_AOT", "TZ", "LANG", "LANGUAGE")
IMPORT_TIME_PREFIXES = ("PYTHON", "OPENBLAS", "OMP_", "POLARS", "ARROW", "GRPC", "NUMBA", "MALLOC", "LD_",
                        "LC_", "PROMETHEUS_", "PROTOCOL_BUFFERS_", "NPY_", "NUMPY_", "CRAMJAM_")


def enabled() -> bool:
    return os.environ.get("HEADWATER_TEST_FORK", "1").strip().lower() not in ("0", "false", "no", "off")


# -- the zygote ----------------------------------------------------------------------------
def _preload() -> None:
    """What ``headwater serve`` imports before it listens, for each service."""
    import headwater.cli.main
    import headwater.cli.services
    import headwater.server  # noqa: F401

    for name in headwater.cli.services.SERVICE_NAMES:
        headwater.cli.services.service_class(name)
    # What the processing service's worker template imports (its workers fork from it).
    from headwater.services.processing.launcher import preload

    preload()


def _serve(control: socket.socket) -> tuple[list[str], dict[str, str], str | None] | None:
    """Fork a child per request until the control socket closes. Returns in the child (its
    request), and ``None`` in the zygote when the client has gone."""
    zygote_pid = os.getpid()
    server = ForkServer(control, 1 << 20, 4)
    for msg, fds in server.requests():
        try:
            in_fd, out_fd, err_fd, status_fd = fds
            request = pickle.loads(msg)
            pid = server.fork(status_fd)
        except Exception as exc:  # the child's status socket closes unanswered: its start fails
            print(f"zygote: cannot fork a child: {exc!r}", file=sys.stderr, flush=True)
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:  # the child: nothing of the zygote's but the imports
            os.setsid()
            die_with_parent(zygote_pid)
            for target, fd in enumerate((in_fd, out_fd, err_fd)):
                os.dup2(fd, target)
            for fd in {in_fd, out_fd, err_fd}:
                os.close(fd)
            return request
        for fd in {in_fd, out_fd, err_fd}:
            os.close(fd)
    return None


def _run_child(request: tuple[list[str], dict[str, str], str | None]) -> None:
    """Become ``headwater ...`` with the request's argv, environment and directory."""
    import multiprocessing.process

    argv, env, cwd = request
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    # what a fresh interpreter running the console script has: its folder first on the path
    # (not the zygote's ``-m`` working directory), its own authkey, its own start directory
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    multiprocessing.process.current_process().authkey = os.urandom(32)
    multiprocessing.process.ORIGINAL_DIR = os.getcwd()
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
        # as Popen: a poll while another thread waits says "running" at once, and a wait with a
        # timeout behind another thread's wait ends at its own timeout
        if not self._lock.acquire(timeout != 0, -1 if timeout is None or timeout == 0 else timeout):
            return self.returncode
        try:
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
        finally:
            self._lock.release()

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

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._control is not None

    def _start(self) -> socket.socket:
        if self.running():
            assert self._control is not None
            return self._control
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._env = dict(os.environ)
        # its own session (a Ctrl-C of the run reaches the tests, which stop their services)
        argv = [sys.executable, "-u", "-m", "tests.zygote", str(theirs.fileno()), str(os.getpid())]
        self._proc = subprocess.Popen(argv, cwd=ROOT, pass_fds=(theirs.fileno(),), env=self._env,
                                      start_new_session=True)
        theirs.close()
        self._control = ours
        return ours

    def can_fork(self, argv: list[str], env: dict[str, str]) -> bool:
        """A ``headwater`` command whose import-time environment is the zygote's. The zygote
        dies with the thread that started it (PR_SET_PDEATHSIG): only the main thread does."""
        if not argv or Path(argv[0]).name != "headwater":
            return False
        if not self.running() and threading.current_thread() is not threading.main_thread():
            return False
        base = self._env or os.environ
        for key in set(env) | set(base):
            if key in IMPORT_TIME_ENV or key.startswith(IMPORT_TIME_PREFIXES):
                if key != "PYTHONUNBUFFERED" and env.get(key) != base.get(key):
                    return False
        return True

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None = None,
              stdin: int | None = None, stdout: int | None = None, stderr: int | None = None) -> ForkedPopen:
        """Fork ``argv`` with ``env`` and ``cwd``: its standard streams are the given descriptors
        (``None``: stdin from /dev/null, stdout and stderr together on a pipe, ``.stdout``)."""
        cwd = os.getcwd() if cwd is None else cwd  # as Popen: the caller's directory
        opened: list[int] = []
        out_r = None
        if stdin is None:
            stdin = os.open(os.devnull, os.O_RDONLY)
            opened.append(stdin)
        if stdout is None:
            out_r, stdout = os.pipe()
            opened.append(stdout)
        if stderr is None:
            stderr = stdout
        mine, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                control = self._start()
                socket.send_fds(control, [pickle.dumps((list(argv), dict(env), cwd))],
                                [stdin, stdout, stderr, child.fileno()])
        finally:
            for fd in opened:
                os.close(fd)
            child.close()
        mine.settimeout(30)
        try:
            got = mine.recv(8, socket.MSG_WAITALL)
        except OSError:
            got = b""
        if len(got) != 8:
            mine.close()
            if out_r is not None:
                os.close(out_r)
            raise RuntimeError(f"the zygote did not fork {argv!r}")
        lines = os.fdopen(out_r, "r", buffering=1, errors="replace") if out_r is not None else None
        return ForkedPopen(int.from_bytes(got, "little"), mine, lines)

    def run(self, argv: list[str], env: dict[str, str], cwd: str | None = None, input: str | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(argv, env=env, cwd=cwd, input=input, capture_output=True, text=True,
        timeout=timeout)``, forked (stdin empty when ``input`` is None)."""
        fds = [*os.pipe(), *os.pipe(), *os.pipe()]
        in_r, in_w, out_r, out_w, err_r, err_w = fds
        try:
            proc = self.spawn(argv, env, cwd, stdin=in_r, stdout=out_w, stderr=err_w)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        got: dict[int, bytes] = {}

        def read(fd: int) -> None:
            with os.fdopen(fd, "rb") as f:
                got[fd] = f.read()

        def write() -> None:
            with os.fdopen(in_w, "wb") as f, contextlib.suppress(BrokenPipeError):
                f.write((input or "").encode())

        threads = [threading.Thread(target=read, args=(out_r,), daemon=True),
                   threading.Thread(target=read, args=(err_r,), daemon=True),
                   threading.Thread(target=write, daemon=True)]
        for t in threads:
            t.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            code = proc.wait(timeout)
            for t in threads:  # a grandchild may hold the output open: the same deadline
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    raise subprocess.TimeoutExpired(argv, timeout or 0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(argv, timeout or 0, output=_text(got.get(out_r, b"")),
                                            stderr=_text(got.get(err_r, b""))) from None
        return subprocess.CompletedProcess(argv, code, _text(got[out_r]), _text(got[err_r]))


def _text(data: bytes) -> str:
    """As ``text=True`` decodes: universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


_ZYGOTE = Zygote()


def run_headwater(args: list[str], env: dict[str, str] | None = None, cwd=None, input: str | None = None,
                  timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``headwater ARGS`` as ``subprocess.run(..., capture_output=True, text=True)`` does it, forked
    from the zygote where it can be (a process like the console script's, imports done)."""
    argv = [*headwater_cmd(), *args]
    env = dict(os.environ if env is None else env)
    cwd = None if cwd is None else str(cwd)
    z = zygote()
    if enabled() and z.can_fork(argv, env):
        return z.run(argv, env, cwd, input, timeout)
    return subprocess.run(argv, env=env, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout)


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
    die_with_parent(int(sys.argv[2]))  # dies with the test process (the thread that started it: the main one)
    control = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    request = _serve(control)
    if request is None:
        sys.exit(0)
    _run_child(request)
