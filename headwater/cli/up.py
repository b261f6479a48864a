"""``headwater up`` / ``headwater down``: compose.yaml's services as local processes.

``up`` starts each service of compose.yaml whose command is ``headwater ...``
with the environment the file gives it (``HEADWATER_HOME`` and
``HEADWATER_HOST`` are kept local: the caller's state folder and 127.0.0.1),
dependencies first, waiting for each to answer health; streams their logs
with a ``name |`` prefix; and stops them all (SIGTERM, then SIGKILL) on
Ctrl-C. Services that are only images (PostgreSQL, NATS) are skipped: the
machine's own servers stand in. The addresses are written to
``$HEADWATER_HOME/endpoints.json`` and later services get
``HEADWATER_<NAME>_ADDRESS`` for each earlier one. A service that exits is
restarted as its ``restart:`` policy says (see :mod:`headwater.supervisor`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from headwater.compose import load_compose
from headwater.config import headwater_home
from headwater.procs import ServiceProcess, headwater_cmd
from headwater.supervisor import Supervisor, compose_policies

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
    started: list[ServiceProcess] = []
    endpoints: dict[str, str] = {}
    width = max((len(s.name) for s in services), default=4)
    tty = sys.stdout.isatty()
    try:
        for i, svc in enumerate(services):
            if not svc.is_headwater:
                if not quiet:
                    print(f"{svc.name:<{width}} | skipped: image {svc.image or '?'} (use the machine's own server)")
                continue
            env = dict(svc.environment)
            env["HEADWATER_HOME"] = str(home)
            env["HEADWATER_HOST"] = "127.0.0.1"
            for name, addr in endpoints.items():
                env[f"HEADWATER_{name.upper()}_ADDRESS"] = addr
                env[f"HEADWATER_{svc.name.upper()}_{name.upper()}_ADDRESS"] = addr
            argv = headwater_cmd() + svc.command[1:]
            if ephemeral_ports:
                argv += ["--port", "0", "--metrics-port", "0"]
                env[f"HEADWATER_{svc.name.upper()}_HTTP_PORT"] = "0"
                env[f"HEADWATER_{svc.name.upper()}_DASHBOARD_PORT"] = "0"
            colour = _COLOURS[i % len(_COLOURS)]
            prefix = f"\x1b[{colour}m{svc.name:<{width}} |\x1b[0m " if tty else f"{svc.name:<{width}} | "
            proc = ServiceProcess(svc.name, argv, env=env, log_prefix=None if quiet else prefix)
            started.append(proc)
            proc.start(timeout)
            endpoints[svc.name] = proc.address
        (home / "endpoints.json").write_text(json.dumps(endpoints, indent=2))
        _pidfile().write_text("\n".join(str(p.pid) for p in started))
    except BaseException:
        stop_stack(started)
        raise
    return started


def stop_stack(procs: list[ServiceProcess]) -> None:
    for proc in reversed(procs):
        proc.terminate(timeout=15)
    for stale in (_pidfile(), headwater_home() / "endpoints.json"):
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
    endpoints = json.loads((headwater_home() / "endpoints.json").read_text())
    print("headwater up: " + ", ".join(f"{k} {v}" for k, v in endpoints.items()), flush=True)
    supervisor = Supervisor(procs, policies, stopped=lambda: not _pidfile().exists(),
                            on_restart=lambda _: _pidfile().write_text("\n".join(str(p.pid) for p in procs)))
    return _wait_forever(procs, supervisor)


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
