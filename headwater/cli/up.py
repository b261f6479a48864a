"""``headwater up`` / ``headwater down``: compose.yaml's services as local processes.

``up`` starts each service of compose.yaml whose command is ``headwater ...``
with the environment the file gives it (``HEADWATER_HOME`` and
``HEADWATER_HOST`` are kept local: the caller's state folder and 127.0.0.1),
dependencies first, waiting for each to answer health; streams their logs
with a ``name |`` prefix; and stops them all (SIGTERM, then SIGKILL) on
Ctrl-C. Services that are only images (PostgreSQL) are skipped: the
machine's own servers stand in (their service names in settings become
127.0.0.1), except NATS: the ``nats-*`` services of a profile become a local
JetStream cluster of ``nats-server`` processes on free ports (under
``$HEADWATER_HOME/nats``), given to ingestion as ``nats_url``. A profile reads
``<profile>.env`` next to the compose file; ``deploy.replicas`` starts that many
processes (the extra ones on free ports, each with its own data folder; paths under the
container's ``HEADWATER_HOME``, the shared volume, become the same paths under
the local home). The
addresses are written to ``$HEADWATER_HOME/endpoints.json`` (replicas as
``a,b``, which clients balance round robin) and later services get
``HEADWATER_<NAME>_ADDRESS`` for each earlier one. A service that exits is
restarted as its ``restart:`` policy says (see :mod:`headwater.supervisor`):
replicas by their service's, local NATS nodes by their ``nats-N`` service's, on the
same ports and store. ``up.pids`` names every process (``ingestion-2``, ``nats-1``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import headwater_home, read_endpoints
from headwater.errors import HeadwaterError, Reason
from headwater.procs import ServiceProcess, headwater_cmd
from headwater.storage import write_atomic
from headwater.supervisor import Supervisor, compose_policies

if TYPE_CHECKING:
    from collections.abc import Iterable

    from headwater.compose import ComposeService
    from headwater.nats_cluster import NatsCluster

SERVICE_NAMES = ("ingestion", "registry", "processing", "sink")

__all__ = ["PortBusy", "add_commands", "path_hint", "start_stack", "stop_stack"]

_COLOURS = ("36", "33", "35", "32", "34", "31")


def _pidfile() -> Path:
    return headwater_home() / "up.pids"


class PortBusy(HeadwaterError):
    """A port the stack needs is taken (one line naming the service and the port)."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def planned_ports(svc: ComposeService, env: dict[str, str]) -> list[tuple[str, int]]:
    """``(what, port)`` each fixed port ``svc`` will bind, from its settings (file defaults, env)."""
    from headwater.cli.services import service_class
    from headwater.config import load_config

    name = svc.command[2] if len(svc.command) > 2 else svc.name
    argv = svc.command[3:]
    try:
        cfg = load_config(service_class(name).config_class, name, None, env=env)
    except HeadwaterError:
        return []  # the service itself reports its bad setting
    ports = [("gRPC", cfg.grpc_port), ("metrics", cfg.metrics_port),
             ("HTTP ingest", getattr(cfg, "http_port", -1)), ("dashboard", getattr(cfg, "dashboard_port", -1))]
    if "--port" in argv:
        ports[0] = ("gRPC", int(argv[argv.index("--port") + 1]))
    return [(what, port) for what, port in ports if port and port > 0]


def live_stack(home: Path) -> dict[str, int]:
    """The processes of the stack ``headwater up`` started from ``home`` that still run ({} when none)."""
    alive = {}
    for name, pid in read_pids(home / "up.pids").items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        alive[name] = pid
    return alive


def read_pids(path: Path) -> dict[str, int]:
    """``name pid`` lines (older files: bare pids)."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for i, line in enumerate(text.splitlines()):
        parts = line.split()
        try:
            if len(parts) == 2:
                out[parts[0]] = int(parts[1])
            elif len(parts) == 1:
                out[f"service{i}"] = int(parts[0])
        except ValueError:
            continue
    return out


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode())


def _write_pids(procs: list[ServiceProcess]) -> None:
    """up.pids: ``driver PID`` (this process) and ``name PID`` per service (rewritten after a restart)."""
    _write_atomic(_pidfile(), "\n".join([f"driver {os.getpid()}", *(f"{p.name} {p.pid}" for p in procs)]))


def start_stack(compose_file: str, profiles: Iterable[str] = (), ephemeral_ports: bool = False, quiet: bool = False,
                timeout: float = 60.0) -> list[ServiceProcess]:
    """Start compose_file's headwater services; returns the started processes.

    Refuses at once (:class:`PortBusy`, one line) when this home already has a running
    stack or a port the services need is taken; never touches another stack's
    endpoints.json or up.pids (they are written only when every service is healthy).
    """
    home = headwater_home()
    home.mkdir(parents=True, exist_ok=True)
    running = live_stack(home)
    if running:
        raise PortBusy(Reason.SERVICE_BUSY,
                       f"a stack started by headwater up is already running from {home} "
                       f"(pids {', '.join(map(str, running.values()))}): `headwater down` stops it")
    from headwater.compose import load_compose, profile_env  # YAML: only for `headwater up`

    services = load_compose(compose_file, tuple(profiles))
    variables = profile_env(compose_file, tuple(profiles))
    local = {s.name for s in services if not s.is_headwater}  # container names that are this machine here
    envs = {}
    for svc in services:
        if svc.is_headwater:
            inside = svc.environment.get("HEADWATER_HOME", "")
            env = {k: _home_path(_localize(v, local), inside, home) for k, v in svc.environment.items()}
            env["HEADWATER_HOME"] = str(home)
            env["HEADWATER_HOST"] = "127.0.0.1"
            envs[svc.name] = env
            if not ephemeral_ports:
                for what, port in planned_ports(svc, {**os.environ, **env}):
                    if not _port_free("127.0.0.1", port):
                        raise PortBusy(Reason.SERVICE_BUSY,
                                       f"{svc.name}: {what} port {port} is in use (another stack or program); "
                                       "stop it, or run with --ephemeral-ports")
    started = Stack()
    endpoints: dict[str, str] = {}
    width = max((len(s.name) for s in services), default=4)
    tty = sys.stdout.isatty()
    wrote = False
    try:
        nats = [s for s in services if not s.is_headwater and s.image.startswith("nats")]
        if nats:
            from headwater.nats_cluster import NatsCluster, NatsNode

            cluster = started.cluster = NatsCluster(home / "nats", size=len(nats)).start(timeout)
            started.nodes = [NatsNode(cluster, i, svc.name) for i, svc in enumerate(nats)]
            if not quiet:
                print(f"{'nats':<{width}} | {len(nats)}-node JetStream cluster: {cluster.url}", flush=True)
        for i, svc in enumerate(services):
            if not svc.is_headwater:
                if not quiet and svc not in nats:
                    print(f"{svc.name:<{width}} | skipped: image {svc.image or '?'} (use the machine's own server)")
                continue
            addresses = []
            for r in range(svc.replicas):
                env = dict(envs[svc.name])
                if started.cluster is not None:
                    env["HEADWATER_INGESTION_NATS_URL"] = (variables.get("HEADWATER_LOCAL_NATS_URL")
                                                           or started.cluster.url)
                for name, addr in endpoints.items():
                    if name in SERVICE_NAMES:
                        env[f"HEADWATER_{name.upper()}_ADDRESS"] = addr
                        env[f"HEADWATER_{svc.name.upper()}_{name.upper()}_ADDRESS"] = addr
                argv = headwater_cmd() + svc.command[1:]
                if ephemeral_ports or r > 0:
                    argv += ["--port", "0", "--metrics-port", "0"]
                    env[f"HEADWATER_{svc.name.upper()}_HTTP_PORT"] = "0"
                    env[f"HEADWATER_{svc.name.upper()}_DASHBOARD_PORT"] = "0"
                if r > 0:  # a replica's own state folder (its own volume, as in a container)
                    env[f"HEADWATER_{svc.name.upper()}_DATA_DIR"] = str(home / f"{svc.name}-{r}")
                name = svc.name if svc.replicas == 1 else f"{svc.name}-{r + 1}"
                colour = _COLOURS[i % len(_COLOURS)]
                prefix = f"\x1b[{colour}m{name:<{width}} |\x1b[0m " if tty else f"{name:<{width}} | "
                proc = ServiceProcess(name, argv, env=env, log_prefix=None if quiet else prefix)
                started.append(proc)
                try:
                    proc.start(timeout)
                except (RuntimeError, TimeoutError):
                    raise PortBusy(Reason.SERVICE_BUSY, f"{name} did not start: {proc.failure()}") from None
                addresses.append(proc.address)
                for line in proc.lines:
                    if " http on " in line and svc.name == "ingestion" and "http_ingest_url" not in endpoints:
                        endpoints["http_ingest_url"] = "http://" + line.rsplit(" on ", 1)[1].replace(
                            "127.0.0.1", "localhost")
                    if "sink dashboard on " in line and "dashboard_url" not in endpoints:
                        endpoints["dashboard_url"] = line.split(" on ", 1)[1]
            endpoints[svc.name] = ",".join(addresses)
        if live_stack(home):  # another `up` won the race for this home while we started
            raise PortBusy(Reason.SERVICE_BUSY, f"another headwater up started a stack from {home} meanwhile")
        _write_atomic(home / "endpoints.json", json.dumps(endpoints, indent=2))
        _write_pids([*started, *started.nodes])
        wrote = True
    except BaseException:
        stop_stack(started, remove_state=wrote)
        raise
    return started


class Stack(list[Any]):
    """The started service processes, and the local NATS cluster of a profile (stopped last)."""

    cluster: NatsCluster | None = None
    #: The cluster's nodes by compose service name (``nats-1`` ...), supervised as services.
    nodes: list[Any] = []


def _localize(value: str, names: set[str]) -> str:
    """A container's address of another compose service (``postgres``, ``nats-1``) as this machine's."""
    for name in names:
        value = re.sub(rf"(?<=[/@]){re.escape(name)}(?=[:/]|$)", "127.0.0.1", value)
    return value


def _home_path(value: str, inside: str, home: Path) -> str:
    """A path under the container's ``HEADWATER_HOME`` (the shared volume) as the same
    path under the local home (the processing replicas' shared checkpoint folder)."""
    inside = inside.rstrip("/")
    if inside and (value == inside or value.startswith(inside + "/")):
        return str(home) + value[len(inside):]
    return value


def stop_stack(procs: list[ServiceProcess], remove_state: bool = True) -> None:
    """Stop ``procs`` (SIGTERM, then SIGKILL); remove endpoints.json and up.pids when this process wrote them."""
    for proc in reversed(procs):
        proc.terminate(timeout=15)
    cluster = getattr(procs, "cluster", None)
    if cluster is not None:
        cluster.stop()
    if not remove_state:
        return
    home = headwater_home()
    pids = read_pids(_pidfile())
    if pids.get("driver") in (None, os.getpid()):
        for stale in (_pidfile(), home / "endpoints.json"):
            stale.unlink(missing_ok=True)


def _wait_forever(procs: list[ServiceProcess], supervisor: Supervisor) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if supervisor.stopped():  # `headwater down` signalled the services: no restarts
            break
        supervisor.check()
        if not supervisor.running():
            print("headwater up: every service exited and none is to be restarted", flush=True)
            stop_stack(procs)
            return 1
    print("headwater up: stopping", flush=True)
    stop_stack(procs)
    return 0


def _up(args: argparse.Namespace) -> int:
    # Restart policies are checked before anything starts: a bad value is an error up front.
    policies = compose_policies(args.file, tuple(args.profile))
    procs = start_stack(args.file, args.profile, ephemeral_ports=args.ephemeral_ports)
    endpoints = read_endpoints()
    print("headwater up: " + ", ".join(f"{k} {v}" for k, v in endpoints.items() if k in SERVICE_NAMES),
          flush=True)
    print(path_hint(), flush=True)
    # The local NATS nodes are supervised too (compose's nats-N services' restart policy).
    supervised = [*procs, *getattr(procs, "nodes", [])]
    supervisor = Supervisor(supervised, policies, stopped=lambda: not _pidfile().exists(),
                            on_restart=lambda _: _write_pids(supervised))
    return _wait_forever(procs, supervisor)


def path_hint() -> str:
    """How to reach this environment's ``headwater`` from any directory (empty when it is on PATH)."""
    exe = Path(headwater_cmd()[0])
    if exe.name != "headwater":
        return ""
    on_path = shutil.which("headwater")
    if on_path and Path(on_path).resolve() == exe.resolve():
        return f"headwater up: the CLI works from any directory (state in {headwater_home()})"
    return (f"headwater up: to use the CLI from any directory: export PATH=\"{exe.parent}:$PATH\" "
            f"(state in {headwater_home()}; other directories find it through HEADWATER_HOME or ~/.headwater)")


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by its parent, counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _down(args: argparse.Namespace) -> int:
    home = headwater_home()
    path = _pidfile()
    pids = read_pids(path)
    if not pids:
        print(f"headwater down: nothing started by headwater up in {home}")
        return 0
    # No pid file: the supervisor of `headwater up` restarts nothing from now on. Then the
    # driver (`headwater up` / `headwater demo`: it stops its services and trip generator
    # itself), then every service's process group.
    path.unlink(missing_ok=True)
    for name, pid in sorted(pids.items(), key=lambda kv: kv[0] != "driver"):
        if pid == os.getpid():
            continue
        try:
            if name == "driver":
                os.kill(pid, signal.SIGTERM)
            else:
                os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.1)
    killed = [n for n, p in pids.items() if _alive(p)]
    for name in killed:
        try:
            (os.kill if name == "driver" else os.killpg)(pids[name], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    path.unlink(missing_ok=True)
    (home / "endpoints.json").unlink(missing_ok=True)
    names = ", ".join(n for n in pids if n != "driver") or "the services"
    extra = f" (killed after {args.timeout:g}s: {', '.join(killed)})" if killed else ""
    print(f"headwater down: stopped {names}{' and headwater up/demo' if 'driver' in pids else ''}{extra}")
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("up", help="run compose.yaml's services as local processes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", default="compose.yaml", help="compose file (default compose.yaml)")
    p.add_argument("--profile", action="append", default=[], help="activate a compose profile")
    p.add_argument("--ephemeral-ports", action="store_true",
                   help="bind every port to 0 (a free one) instead of the defaults")
    p.set_defaults(func=_up)
    p = sub.add_parser("down", help="stop what headwater up / demo started (from $HEADWATER_HOME/up.pids)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait before SIGKILL (default 20)")
    p.set_defaults(func=_down)
