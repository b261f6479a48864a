"""Services as local processes: start, wait for health, stream logs, stop or kill.

Used by ``headwater up`` (compose.yaml's services without containers) and by
the end-to-end and fault tests, which run every service as a real process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["ServiceProcess", "wait_healthy", "free_port"]

_LISTENING = re.compile(r"(\w+) listening on (\S+)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(address: str, timeout: float = 30.0, service: str = "") -> None:
    """Block until the gRPC health service at ``address`` says SERVING."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(address) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                resp = stub.Check(  # type: ignore[attr-defined]  # types-grpcio-health-checking's stub has no methods
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{address} not healthy after {timeout:.0f}s: {last}")


@dataclass
class ServiceProcess:
    """One service process. ``argv`` runs it; ``address`` is learnt from its
    ``<name> listening on host:port`` line when not given."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    address: str = ""
    log_prefix: str | None = None
    on_line: Callable[[str], None] | None = None
    #: Kill the service when the process that started it dies (Linux parent-death
    #: signal through util-linux's setpriv), so a killed test run or perf command
    #: never leaves services behind.
    die_with_parent: bool = True
    proc: subprocess.Popen[str] | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=2000))

    def start(self, timeout: float = 30.0, check_health: bool = True) -> ServiceProcess:
        """Start, wait for the ``listening on`` line, then (unless told not to) for gRPC health."""
        self.proc = self._popen({**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        found = threading.Event()
        listening = threading.Event()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                m = _LISTENING.search(line)
                if m and not found.is_set():
                    if not self.address:
                        self.address = m.group(2)
                    listening.set()
                    found.set()
                if self.on_line:
                    self.on_line(line)
                elif self.log_prefix is not None:
                    sys.stdout.write(f"{self.log_prefix}{line}\n")
                    sys.stdout.flush()
            found.set()

        threading.Thread(target=pump, name=f"log-{self.name}", daemon=True).start()
        # The output ending without a listening line means the process is exiting.
        if not found.wait(timeout) or not listening.is_set() or self.proc.poll() is not None:
            out = "\n".join(self.lines)
            self.kill()
            raise RuntimeError(f"service {self.name} did not start:\n{out}")
        if self.address and check_health:
            wait_healthy(self.address, timeout)
        return self

    def _popen(self, env: dict[str, str]) -> subprocess.Popen[str]:
        """The process, in its own session, its output (stdout and stderr) on a pipe."""
        argv = list(self.argv)
        if self.die_with_parent and sys.platform == "linux" and shutil.which("setpriv"):
            argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
        return subprocess.Popen(
            argv, env=env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no drain, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def output(self) -> str:
        return "\n".join(self.lines)

    def failure(self) -> str:
        """One line saying why the service stopped or never started (for a person)."""
        import json

        for line in reversed(self.lines):
            text = line.strip()
            if text.startswith(f"headwater serve {self.name}:") or text.startswith(f"headwater {self.name}:"):
                return text.split(":", 1)[1].strip()
            if text.startswith("{"):
                try:
                    rec = json.loads(text)
                except ValueError:
                    continue
                if rec.get("level") in ("ERROR", "CRITICAL") and rec.get("msg"):
                    return str(rec["msg"]).split(": ", 1)[-1] if ": " in str(rec["msg"]) else str(rec["msg"])
        for line in reversed(self.lines):  # the last line of a traceback names the exception
            if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", line.strip()):
                return line.strip()
        code = self.proc.poll() if self.proc else None
        return f"exited with code {code}" if code is not None else "no 'listening on' line in time"


def headwater_cmd() -> list[str]:
    """The ``headwater`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("headwater")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "headwater.cli.main"]


def start_local_services(names: Sequence[str], home: Path | str, env: dict[str, str] | None = None,
                         quiet: bool = True) -> dict[str, ServiceProcess]:
    """Start services as processes on free ports sharing ``home`` (state and policies).

    Processing is told the addresses of the others started before it. Stop them
    with :func:`stop_local_services`.
    """
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            e = {"HEADWATER_HOME": str(home), "HEADWATER_INGESTION_HTTP_PORT": "0",
                 "HEADWATER_SINK_DASHBOARD_PORT": "0", **(env or {})}
            for other, proc in started.items():
                e[f"HEADWATER_{name.upper()}_{other.upper()}_ADDRESS"] = proc.address
            proc = ServiceProcess(name, [*headwater_cmd(), "serve", name, "--port", "0", "--metrics-port", "-1"],
                                  env=e, log_prefix=None if quiet else f"{name} | ",
                                  on_line=(lambda line: None) if quiet else None)
            started[name] = proc.start()
    except BaseException:
        stop_local_services(started)
        raise
    return started


def stop_local_services(procs: dict[str, ServiceProcess]) -> None:
    for proc in reversed(list(procs.values())):
        proc.terminate(timeout=15)
