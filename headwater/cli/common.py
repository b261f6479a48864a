"""What every CLI area shares: reaching a service with a signed channel, typed errors, output."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from headwater.auth import ConnectionString
from headwater.channel import sync_channel
from headwater.config import DEFAULT_PORTS, default_address, local_root_policy
from headwater.errors import HeadwaterError

__all__ = ["Client", "add_connection_options", "connection", "print_result", "service_channel"]


def connection(args: argparse.Namespace, service: str) -> ConnectionString:
    """``--connection-string``, else ``$HEADWATER_<SERVICE>_CONNECTION_STRING``, else
    ``$HEADWATER_CONNECTION_STRING`` (the namespace's), else the local root policy for the
    local namespace (never created here: see :func:`headwater.config.local_root_policy`)."""
    text = getattr(args, "connection_string", None) or os.environ.get(
        f"HEADWATER_{service.upper()}_CONNECTION_STRING", "") or os.environ.get("HEADWATER_CONNECTION_STRING", "")
    if text:
        return ConnectionString.parse(text)
    address = getattr(args, "address", None) or default_address(service)
    root = local_root_policy()
    return ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=root.name,
                            shared_access_key=root.key)


def service_channel(args: argparse.Namespace, service: str) -> grpc.Channel:
    """A signed channel to ``service``: ``--address`` (or ``--registry``/``--sink``) when given,
    else ``$HEADWATER_<SERVICE>_ADDRESS``, else the address the connection string's namespace
    endpoint gives (GetNamespace), else endpoints.json / the default port."""
    conn = connection(args, service)
    flag = getattr(args, "address", None) or getattr(args, service, None)
    address = flag if isinstance(flag, str) and flag else os.environ.get(f"HEADWATER_{service.upper()}_ADDRESS", "")
    if not address and service != "ingestion" and conn.address != default_address(service):
        from headwater.namespace import service_address

        address = service_address(conn, service)
    return sync_channel(conn, address=address)


class Client:
    """A blocking stub whose calls raise :class:`HeadwaterError` (one line for a person)."""

    def __init__(self, args: argparse.Namespace, service: str, stub_class: type) -> None:
        self.channel = service_channel(args, service)
        self.stub = stub_class(self.channel)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)

        def call(request: Message, **kwargs: Any) -> Any:  # the generated stubs are untyped
            try:
                return method(request, timeout=kwargs.pop("timeout", 30), **kwargs)
            except grpc.RpcError as exc:
                raise HeadwaterError.from_rpc_error(exc) from None

        return call


def add_connection_options(p: argparse.ArgumentParser, service: str) -> argparse.ArgumentParser:
    p.add_argument("--connection-string",
                   help=f"connection string (default $HEADWATER_{service.upper()}_CONNECTION_STRING, "
                        "else the local root policy)")
    p.add_argument("--address", help=f"{service} host:port (default localhost:{DEFAULT_PORTS[service][0]})")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def print_result(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, default=str))
    elif isinstance(obj, list):
        for row in obj:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")
