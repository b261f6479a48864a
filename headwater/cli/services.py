"""``headwater serve NAME`` and ``headwater connection-string``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.auth import ConnectionString
from headwater.config import default_address, headwater_home

if TYPE_CHECKING:
    from headwater.server import Service

__all__ = ["add_commands", "SERVICE_NAMES", "service_class"]

SERVICE_NAMES = ("ingestion", "registry", "processing", "sink")


def service_class(name: str) -> type[Service]:
    """The Service subclass of ``headwater.services.<name>``."""
    cls: type[Service] = importlib.import_module(f"headwater.services.{name}.server").SERVICE
    return cls


def _serve(args: argparse.Namespace) -> int:
    from headwater.server import run

    return run(service_class(args.service), args.rest)


def _connection_string(args: argparse.Namespace) -> int:
    """From the local policies file (never created here: only a service creates it), or, given a
    Manage ``--connection-string``, from the service."""
    if args.policy and (args.connection_string or os.environ.get("HEADWATER_CONNECTION_STRING")):
        from headwater.cli.policy import policy_connection_string

        args.name, args.address, args.json = args.policy, None, False
        print(policy_connection_string(args))
        return 0
    from headwater.auth import Policy, PolicyStore
    from headwater.config import local_root_policy

    root = local_root_policy(args.auth_file)  # says where it looked when there is none
    store = PolicyStore(Path(args.auth_file) if args.auth_file else headwater_home() / "auth.json").ensure()
    policy: Policy | None = root
    if args.policy:  # the hub's own policy of that name first, else the namespace's (as tokens resolve)
        policy = (store.get(args.policy, args.hub) if args.hub else None) or store.get(args.policy)
        if policy is None and not args.hub:  # a hub-level policy, named without --hub
            found = [p for p in store.all() if p.name == args.policy]
            policy = found[0] if len(found) == 1 else None
    if policy is None:
        print(f"headwater: no policy named {args.policy!r}" + (f" for hub {args.hub!r}" if args.hub else ""),
              file=sys.stderr)
        return 1
    if policy.hub and not args.hub:
        args.hub = policy.hub
    # The namespace endpoint (ingestion), or the service asked for.
    address = f"{args.host}:{args.port}" if args.port else default_address(args.service)
    conn = ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=policy.name,
                            shared_access_key=policy.secondary_key if args.secondary else policy.key,
                            entity_path=args.hub or "")
    print(conn)
    return 0


def _namespace(args: argparse.Namespace) -> int:
    import json

    from headwater.namespace import discover, local_connection_string

    conn = ConnectionString.parse(args.connection_string) if args.connection_string else local_connection_string()
    ns = discover(conn)
    data = {"uri": ns.uri, "ingestion": ns.ingestion, "registry": ns.registry, "processing": ns.processing,
            "sink": ns.sink, "http_ingest_url": ns.http_ingest_url, "dashboard_url": ns.dashboard_url}
    if args.json:
        print(json.dumps(data))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("namespace", help="where every service of the namespace listens (GetNamespace)",
                       description="Ask the namespace endpoint (the connection string's, default the local "
                                   "stack's) for the address of every service, HTTP ingest and the dashboard.")
    p.add_argument("--connection-string", help="default $HEADWATER_CONNECTION_STRING, else the local stack")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_namespace)

    p = sub.add_parser("serve", help="run one service in the foreground",
                       description="Run one Headwater service until SIGTERM. "
                                   "Options after the name go to the service (--config, --port, ...).")
    p.add_argument("service", choices=SERVICE_NAMES)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="service options (see headwater serve NAME --help)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("connection-string", help="print the namespace connection string (reaches every service)",
                       description="Print a policy's connection string (default the root policy) for the SDK and "
                                   "for people: the namespace endpoint (ingestion, which tells clients where the "
                                   "registry, processing and sink are: GetNamespace) and the policy's key from "
                                   "$HEADWATER_HOME/auth.json. Never creates a key: the services create auth.json.")
    p.add_argument("--hub", help="add EntityPath=HUB")
    p.add_argument("--policy", help="policy name (default RootManageSharedAccessKey)")
    p.add_argument("--service", default="ingestion", choices=SERVICE_NAMES,
                   help="endpoint of this service instead of the namespace (default ingestion, the namespace)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, help="override the port")
    p.add_argument("--auth-file", help="policies file (default $HEADWATER_HOME/auth.json)")
    p.add_argument("--secondary", action="store_true", help="use the policy's secondary key")
    p.add_argument("--connection-string",
                   help="a Manage connection string: ask the service for --policy's keys instead of reading "
                        "the local policies file (default $HEADWATER_CONNECTION_STRING)")
    p.set_defaults(func=_connection_string)
    add_health_command(sub)


def _health(args: argparse.Namespace) -> int:
    from headwater.procs import wait_healthy

    try:
        wait_healthy(args.address, timeout=args.timeout, service=args.service_name)
    except TimeoutError as exc:
        print(f"headwater health: {exc}")
        return 1
    print(f"{args.address}: SERVING")
    return 0


def add_health_command(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("health", help="check a service's gRPC health (compose healthchecks use this)")
    p.add_argument("address", help="host:port")
    p.add_argument("--service-name", default="", help="a service name to check (default: the server)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=_health)
