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
processes (the extra ones on free ports, each with its own data folder). The
addresses are written to ``$HEADWATER_HOME/endpoints.json`` (replicas as
``a,b``, which clients balance round robin) and later services get
``HEADWATER_<NAME>_ADDRESS`` for each earlier one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

from headwater.compose import load_compose, profile_env
from headwater.config import headwater_home
from headwater.procs import ServiceProcess, headwater_cmd

__all__ = ["add_commands", "start_stack", "stop_stack"]

_COLOURS = ("36", "33", "35", "32", "34", "31")


def _pidfile() -> Path:
    return headwater_home() / "up.pids"


def start_stack(compose_file: str, profiles=(), ephemeral_ports: bool = False, quiet: bool = False,
                timeout: float = 60.0) -> list[ServiceProcess]:
    """Start compose_file's headwater services; returns the started processes."""
    home = headwater_home()
    home.mkdir(parents=True, exist_ok=True)
    services = load_compose(compose_file, tuple(profiles))
    variables = profile_env(compose_file, tuple(profiles))
    started: list = []
    endpoints: dict[str, str] = {}
    width = max((len(s.name) for s in services), default=4)
    tty = sys.stdout.isatty()
    local = {s.name for s in services if not s.is_headwater}  # container names that are this machine here
    try:
        nats = [s for s in services if not s.is_headwater and s.image.startswith("nats")]
        cluster = None
        if nats:
            from headwater.nats_cluster import NatsCluster

            cluster = NatsCluster(home / "nats", size=len(nats)).start(timeout)
            started.append(cluster)
            if not quiet:
                print(f"{'nats':<{width}} | {len(nats)}-node JetStream cluster: {cluster.url}", flush=True)
        for i, svc in enumerate(services):
            if not svc.is_headwater:
                if not quiet and svc not in nats:
                    print(f"{svc.name:<{width}} | skipped: image {svc.image or '?'} (use the machine's own server)")
                continue
            addresses = []
            for r in range(svc.replicas):
                env = {k: _localize(v, local) for k, v in svc.environment.items()}
                env["HEADWATER_HOME"] = str(home)
                env["HEADWATER_HOST"] = "127.0.0.1"
                if cluster is not None:
                    env["HEADWATER_INGESTION_NATS_URL"] = variables.get("HEADWATER_LOCAL_NATS_URL") or cluster.url
                for name, addr in endpoints.items():
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
                proc.start(timeout)
                addresses.append(proc.address)
            endpoints[svc.name] = ",".join(addresses)
        (home / "endpoints.json").write_text(json.dumps(endpoints, indent=2))
        _pidfile().write_text("\n".join(str(p.pid) for p in started if isinstance(p, ServiceProcess)))
    except BaseException:
        stop_stack(started)
        raise
    return started


def _localize(value: str, names: set[str]) -> str:
    """A container's address of another compose service (``postgres``, ``nats-1``) as this machine's."""
    for name in names:
        value = re.sub(rf"(?<=[/@]){re.escape(name)}(?=[:/]|$)", "127.0.0.1", value)
    return value


def stop_stack(procs: list) -> None:
    for proc in reversed(procs):
        if isinstance(proc, ServiceProcess):
            proc.terminate(timeout=15)
        else:  # the local NATS cluster, stopped last
            proc.stop()
    for stale in (_pidfile(), headwater_home() / "endpoints.json"):
        stale.unlink(missing_ok=True)


def _wait_forever(procs: list[ServiceProcess]) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        dead = [p for p in procs if isinstance(p, ServiceProcess) and not p.alive()]
        if dead:
            print(f"headwater up: {', '.join(p.name for p in dead)} exited; stopping the rest", flush=True)
            stop_stack(procs)
            return 1
    print("headwater up: stopping", flush=True)
    stop_stack(procs)
    return 0


def _up(args: argparse.Namespace) -> int:
    procs = start_stack(args.file, args.profile, ephemeral_ports=args.ephemeral_ports)
    endpoints = json.loads((headwater_home() / "endpoints.json").read_text())
    print("headwater up: " + ", ".join(f"{k} {v}" for k, v in endpoints.items()), flush=True)
    return _wait_forever(procs)


def _down(args: argparse.Namespace) -> int:
    path = _pidfile()
    if not path.exists():
        print("headwater down: nothing started by headwater up here")
        return 0
    for line in path.read_text().split():
        try:
            os.killpg(int(line), signal.SIGTERM)
        except (ProcessLookupError, PermissionError, ValueError):
            pass
    path.unlink()
    (headwater_home() / "endpoints.json").unlink(missing_ok=True)
    print("headwater down: sent SIGTERM to the services")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run compose.yaml's services as local processes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", default="compose.yaml", help="compose file (default compose.yaml)")
    p.add_argument("--profile", action="append", default=[], help="activate a compose profile")
    p.add_argument("--ephemeral-ports", action="store_true",
                   help="bind every port to 0 (a free one) instead of the defaults")
    p.set_defaults(func=_up)
    p = sub.add_parser("down", help="stop what headwater up started (from $HEADWATER_HOME/up.pids)")
    p.set_defaults(func=_down)
