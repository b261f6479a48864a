"""How the processing service starts its worker processes (query workers and job workers).

A worker runs the engine: Polars, Arrow, NumPy and the engine's own modules, about half a
CPU second to import in a fresh interpreter, paid again by every ``spawn``-ed worker. So the
service forks a *template* when it starts (:func:`fork_template`, from
:func:`headwater.server.run`, in the main thread before the service has threads, sockets or
gRPC state of its own); the template imports the engine once (:func:`preload`) and forks each
worker from itself. A worker then starts in milliseconds with the engine imported, and the
workers share the imported modules' memory (copy-on-write).

- service -> template: one message per worker on a ``SOCK_SEQPACKET`` socket, carrying two
  file descriptors: the worker's end of its pipe to the service and a status socket.
- template -> service, on the status socket: the worker's pid once forked, then its wait
  status once the template has reaped it (:class:`ForkedWorker` reads them: ``pid``,
  ``exitcode``, ``is_alive``, ``join``, ``kill``: what a ``multiprocessing`` process offers).
- service -> worker, on its pipe: ``(target, name, args)``; the worker runs
  ``target(conn, *args)`` and exits.

The template dies with the service (``PR_SET_PDEATHSIG``, and it leaves when the service's end
of its socket closes) and a worker with the template, so a kill -9 of the service leaves
nothing running. The template and the workers ignore SIGINT and SIGTERM (a worker is stopped
through its pipe): a stop of the service's process group (Ctrl-C, ``headwater down``) must
not take them from under the service's graceful stop, which stops each job first, with its
final checkpoint.

Where no template runs (a service embedded in another program's event loop,
``serve_in_process``; ``worker_template: false``; a template that died), workers are
``spawn``-ed as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Protocol

__all__ = ["ForkServer", "ForkedWorker", "WorkerProcess", "die_with_parent", "fork_template", "preload",
           "start_worker", "template_pid"]

log = logging.getLogger("headwater.processing.launcher")

_WORD = 8  # the status socket carries the pid, then the exit code: 8 bytes each, little-endian


class WorkerProcess(Protocol):
    """What the service uses of a worker process (a ``multiprocessing`` process has it too)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...


def preload() -> None:
    """Import what a worker imports to compile a query and run a job, so a forked worker has it."""
    import polars  # noqa: F401
    import pyarrow.compute  # noqa: F401

    import headwater.services.processing.engine_adapter  # noqa: F401
    import headwater.services.processing.runtime  # noqa: F401


def set_process_name(name: str) -> None:
    """The name ``ps -o comm``, ``top`` and /proc/PID/comm show (15 bytes at most)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL when the parent goes (``PR_SET_PDEATHSIG``); gone at once if it went already.
    ``parent`` is its pid; by default a spawned process's ``multiprocessing`` parent (a worker
    forked by the template has this done already: nothing to do). Compared with the pid, not
    with 1: in a container the service itself is PID 1."""
    if parent is None:
        spawner = multiprocessing.parent_process()
        if spawner is None:
            return
        parent = spawner.pid
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


class ForkedWorker:
    """A worker the template forked: the service's view of it through its status socket."""

    def __init__(self, status: socket.socket) -> None:
        self._status = status
        self._buf = b""
        self._pid: int | None = None
        self._exitcode: int | None = None
        self._kill_pending = False
        self._lock = threading.Lock()

    def _read(self, timeout: float | None, records: int) -> None:
        """Read what the template has sent until ``records`` of them have come (1: the pid,
        2: the exit code too), waiting up to ``timeout`` seconds (None: until they come; 0: not
        at all, nor for another thread's read)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return
        try:
            while self._exitcode is None and len(self._buf) < records * _WORD:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._status.settimeout(left)
                try:
                    data = self._status.recv(64)
                except (TimeoutError, BlockingIOError):
                    return
                except OSError:
                    data = b""
                if not data:  # the template is gone without a word: the worker dies with it
                    self._exitcode = -signal.SIGKILL
                    self._status.close()
                    return
                self._buf += data
                if self._pid is None and len(self._buf) >= _WORD:
                    self._pid = int.from_bytes(self._buf[:_WORD], "little")
                if len(self._buf) >= 2 * _WORD:
                    self._exitcode = int.from_bytes(self._buf[_WORD:2 * _WORD], "little", signed=True)
                    self._status.close()
                if self._kill_pending and self._pid is not None and self._exitcode is None:
                    self._kill_pending = False
                    self._signal(signal.SIGKILL)
        finally:
            self._lock.release()

    @property
    def pid(self) -> int | None:
        if self._pid is None:
            self._read(None, 1)  # forked in milliseconds (later only while the template imports the engine)
        return self._pid

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None:
            self._read(0, 2)
        return self._exitcode

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        if self._exitcode is None:
            self._read(timeout, 2)

    def kill(self) -> None:
        """SIGKILL, without waiting: a worker not forked yet (the template still importing the
        engine) is killed as soon as its pid is read (it also leaves when its pipe closes)."""
        self._read(0, 1)
        if self._exitcode is not None:
            return
        if self._pid is None:
            self._kill_pending = True
            return
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        # Not reaped yet (no exit code has come): the pid is still the worker's.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, sig)  # type: ignore[arg-type]


class _Template:
    """The service's handle on its template process."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid = pid
        self.control = control
        self.lock = threading.Lock()

    def start(self, conn_fd: int) -> ForkedWorker:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self.lock:
                socket.send_fds(self.control, [b"w"], [conn_fd, theirs.fileno()])
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        return ForkedWorker(mine)


_template: _Template | None = None


def template_pid() -> int | None:
    """The template's pid (None when workers are spawned)."""
    return _template.pid if _template is not None else None


def fork_template() -> None:
    """Fork the template. Call it in the service's main thread before the service starts
    threads, binds ports or makes gRPC channels: the template keeps none of them."""
    global _template
    if _template is not None:
        return
    control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    service = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            control.close()
            _template_main(theirs, service)
        except BaseException:  # noqa: BLE001 - the template's end is its exit code
            with contextlib.suppress(Exception):
                traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    _template = _Template(pid, control)


def start_worker(target: Callable[..., Any], args: tuple, name: str) -> tuple[WorkerProcess, Connection]:
    """Start a worker running ``target(conn, *args)``: forked from the template when there is
    one, else spawned. Returns the process and the service's end of its pipe."""
    global _template
    parent, child = multiprocessing.Pipe()
    try:
        if _template is not None:
            try:
                proc: WorkerProcess = _template.start(child.fileno())
            except OSError as exc:  # the template died (killed on its own): spawn from now on
                log.warning("the worker template is gone (%s); spawning workers instead", exc)
                with contextlib.suppress(OSError):
                    _template.control.close()
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(_template.pid, os.WNOHANG)
                _template = None
            else:
                parent.send((target, name, args))
                return proc, parent
        ctx = multiprocessing.get_context("spawn")
        spawned = ctx.Process(target=target, name=name, daemon=True, args=(child, *args))
        spawned.start()
        return spawned, parent
    finally:
        child.close()


# -- the template's side ----------------------------------------------------------------
def _template_main(control: socket.socket, service: int) -> None:
    set_process_name("hw-workers")
    die_with_parent(service)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # a worker reads its pipe, never the service's stdin
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    try:
        preload()
    except Exception:  # noqa: BLE001 - a worker imports what it needs itself
        log.exception("the worker template could not import the engine")
    template = os.getpid()
    server = ForkServer(control, 16, 2)
    for _msg, fds in server.requests():
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        conn_fd, status_fd = fds
        try:
            pid = server.fork(status_fd)
        except OSError as exc:  # EAGAIN, ENOMEM: this worker fails (its status socket closes), not the others
            log.error("the worker template cannot fork a worker: %s", exc)
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            _worker_main(conn_fd, template)  # never returns
        os.close(conn_fd)


class ForkServer:
    """The loop of a process that forks a child per request on ``control`` (this template; the
    tests' zygote): it reaps its children as they exit and sends each child's pid, then its exit
    code, on the status socket its request carried (8 bytes each, little-endian, signed: -N for
    signal N, as ``Popen.returncode``)."""

    def __init__(self, control: socket.socket, bufsize: int, maxfds: int) -> None:
        self.control, self.bufsize, self.maxfds = control, bufsize, maxfds
        self.status: dict[int, socket.socket] = {}  # child pid -> where its exit code goes
        self.wake_r, self.wake_w = os.pipe()  # SIGCHLD wakes the selector through it
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel = selectors.DefaultSelector()
        self.sel.register(control, selectors.EVENT_READ)
        self.sel.register(self.wake_r, selectors.EVENT_READ)

    def requests(self) -> Iterator[tuple[bytes, list[int]]]:
        """Each request (its message and file descriptors) until the control socket closes."""
        while True:
            for key, _ in self.sel.select():
                if key.fileobj is self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                else:
                    msg, fds, _flags, _addr = socket.recv_fds(self.control, self.bufsize, self.maxfds)
                    if not msg:  # the client is gone
                        return
                    yield msg, fds
                self.reap()

    def fork(self, status_fd: int) -> int:
        """Fork the child of the request whose status socket is ``status_fd``: its pid in this
        process (sent on that socket), 0 in the child, where nothing of the loop is left open.
        OSError when it cannot fork (the caller closes the request's descriptors)."""
        pid = os.fork()
        if pid == 0:
            self.sel.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self.wake_r, self.wake_w, status_fd):
                os.close(fd)
            for sock in self.status.values():
                sock.close()
            self.control.close()
            return 0
        sock = self.status[pid] = socket.socket(fileno=status_fd)
        with contextlib.suppress(OSError):  # the client gave up on it: it is reaped all the same
            sock.sendall(pid.to_bytes(_WORD, "little"))
        return pid

    def reap(self) -> None:
        """Reap every child that has exited and send its exit code."""
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sock = self.status.pop(pid, None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.sendall(os.waitstatus_to_exitcode(wstatus).to_bytes(_WORD, "little", signed=True))
                sock.close()


def _worker_main(conn_fd: int, template: int) -> None:
    code = 0
    try:
        die_with_parent(template)  # it goes when the service goes
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        conn = Connection(conn_fd)
        try:
            target, name, args = conn.recv()
        except (EOFError, OSError):  # the service gave up on it before it ran
            return
        multiprocessing.current_process().name = name
        target(conn, *args)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"), as the interpreter does it
            with contextlib.suppress(Exception):
                print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - the worker's end is its exit code
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
