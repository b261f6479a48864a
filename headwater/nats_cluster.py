"""A local NATS JetStream cluster of ``nats-server`` processes on loopback ports.

``headwater up --profile scaled`` and the replication tests start one: each node
its own config and store folder under ``root``, free client and route ports,
routes to every other node, and JetStream clustered (``server_name`` per node).
:meth:`NatsCluster.start` returns once JetStream answers with a meta leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["NatsCluster", "NatsNode", "find_nats_server", "free_port"]


def find_nats_server() -> str:
    """The ``nats-server`` binary: $HEADWATER_NATS_SERVER, PATH, or /usr/sbin."""
    for candidate in (os.environ.get("HEADWATER_NATS_SERVER"), shutil.which("nats-server"), "/usr/sbin/nats-server",
                      "/usr/bin/nats-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("nats-server not found: install it (apt-get install nats-server) or set "
                            "HEADWATER_NATS_SERVER")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsCluster:
    """``size`` nats-server processes forming one JetStream cluster."""

    def __init__(self, root: Path, size: int = 3, name: str = "headwater", binary: str | None = None,
                 client_ports: list[int] | None = None) -> None:
        self.root = Path(root)
        self.size = size
        self.name = name
        self.binary = binary or find_nats_server()
        self.client_ports = client_ports or [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def url(self) -> str:
        """Every node, comma-separated (the ``nats_url`` setting)."""
        return ",".join(self.urls)

    def _config(self, i: int) -> Path:
        store = self.root / f"n{i}"
        store.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for j, p in enumerate(self.route_ports) if j != i)
        conf = self.root / f"n{i}.conf"
        conf.write_text(
            f'server_name: "{self.name}-n{i}"\n'
            f'listen: "127.0.0.1:{self.client_ports[i]}"\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
            f'cluster {{ name: "{self.name}", listen: "127.0.0.1:{self.route_ports[i]}", routes: [{routes}] }}\n')
        return conf

    def start_node(self, i: int) -> None:
        argv = [self.binary, "-c", str(self._config(i))]
        if sys.platform == "linux" and shutil.which("setpriv"):
            argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]  # never outlive the starter
        log = open(self.root / f"n{i}.log", "ab")  # noqa: SIM115 - the process keeps it
        self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self, timeout: float = 30.0) -> NatsCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.size):
            self.start_node(i)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0, node: int | None = None) -> None:
        """Until JetStream on the cluster (through ``node`` only, when given) answers:
        a meta leader is elected and the node is part of the cluster."""
        asyncio.run(self._wait_ready(timeout, node))

    async def _wait_ready(self, timeout: float, node: int | None = None) -> None:
        import nats

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        urls = self.urls if node is None else [self.urls[node]]
        while time.monotonic() < deadline:
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None and (node is None or i == node):
                    log = (self.root / f"n{i}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"nats-server node {i} exited ({p.returncode}):\n{log}")
            try:
                nc = await nats.connect(urls, connect_timeout=1, max_reconnect_attempts=0)
                try:
                    info = await nc.jetstream(timeout=2).account_info()
                    if info is not None:
                        return
                finally:
                    await nc.close()
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            await asyncio.sleep(0.2)
        raise TimeoutError(f"NATS cluster not ready after {timeout:.0f}s: {last}")

    def kill(self, i: int) -> None:
        """kill -9 node ``i``."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in enumerate(self.procs):
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    self.kill(i)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class NatsNode:
    """One node of a :class:`NatsCluster` as :class:`headwater.supervisor.Supervisor`
    sees a service (``headwater up`` restarts it by its compose service's policy):
    the same store folder and ports when it comes back."""

    def __init__(self, cluster: NatsCluster, index: int, name: str) -> None:
        self.cluster = cluster
        self.index = index
        self.name = name
        self.argv: list[str] = []  # its ports are in its config file, not its argv

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.cluster.procs[self.index]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> str:
        return self.cluster.urls[self.index]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> NatsNode:
        """Start the node again; return once JetStream answers through it."""
        self.cluster.start_node(self.index)
        self.cluster.wait_ready(timeout, node=self.index)
        return self

    def kill(self) -> None:
        self.cluster.kill(self.index)
