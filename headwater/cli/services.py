"""``headwater serve NAME`` and ``headwater connection-string``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from headwater.auth import ConnectionString
from headwater.config import default_address, headwater_home

__all__ = ["add_commands", "SERVICE_NAMES", "service_class"]

SERVICE_NAMES = ("ingestion", "registry", "processing", "sink")


def service_class(name: str):
    """The Service subclass of ``headwater.services.<name>``."""
    return importlib.import_module(f"headwater.services.{name}.server").SERVICE


def _serve(args: argparse.Namespace) -> int:
    from headwater.server import run

    return run(service_class(args.service), args.rest)


def _connection_string(args: argparse.Namespace) -> int:
    from headwater.auth import PolicyStore
    from headwater.config import local_root_policy

    root = local_root_policy(args.auth_file)  # never creates a key the services do not know
    if args.policy:
        store = PolicyStore(Path(args.auth_file) if args.auth_file else headwater_home() / "auth.json")
        policy = store.get(args.policy)
        if policy is None:
            print(f"headwater: no policy named {args.policy!r} in {store.path}", file=sys.stderr)
            return 1
    else:
        policy = root
    if args.port:
        address = f"{args.host}:{args.port}"
    else:  # the namespace endpoint (ingestion), or the service asked for
        address = default_address(args.service)
    conn = ConnectionString(endpoint=f"headwater://{address}/",
                            shared_access_key_name=policy.name, shared_access_key=policy.key,
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


def add_commands(sub: argparse._SubParsersAction) -> None:
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
                       description="Print the namespace connection string for the SDK and for people: the "
                                   "ingestion endpoint (which tells clients where the registry, processing and "
                                   "sink are: GetNamespace) and the root policy of $HEADWATER_HOME/auth.json. "
                                   "Never creates a key: the services create auth.json when they start.")
    p.add_argument("--hub", help="add EntityPath=HUB")
    p.add_argument("--policy", help="policy name (default RootManageSharedAccessKey)")
    p.add_argument("--service", default="ingestion", choices=SERVICE_NAMES,
                   help="endpoint of this service instead of the namespace (default ingestion, the namespace)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, help="override the port")
    p.add_argument("--auth-file", help="policies file (default $HEADWATER_HOME/auth.json)")
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


def add_health_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("health", help="check a service's gRPC health (compose healthchecks use this)")
    p.add_argument("address", help="host:port")
    p.add_argument("--service-name", default="", help="a service name to check (default: the server)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=_health)
