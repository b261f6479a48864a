"""What every CLI area shares: reaching a service with a signed channel, typed errors, output."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import grpc

from headwater.auth import ConnectionString, PolicyStore
from headwater.channel import sync_channel
from headwater.config import DEFAULT_PORTS, default_address, headwater_home
from headwater.errors import HeadwaterError

__all__ = ["Client", "add_connection_options", "connection", "print_result"]


def connection(args: argparse.Namespace, service: str) -> ConnectionString:
    """``--connection-string``, else ``$HEADWATER_<SERVICE>_CONNECTION_STRING``, else the
    local root policy for ``--address`` (default: the service's default port)."""
    text = getattr(args, "connection_string", None) or os.environ.get(
        f"HEADWATER_{service.upper()}_CONNECTION_STRING", "")
    if not text and service == "ingestion":  # the hub's, as the Azure samples name it
        text = os.environ.get("HEADWATER_CONNECTION_STRING", "")
    if text:
        return ConnectionString.parse(text)
    address = getattr(args, "address", None) or default_address(service)
    root = PolicyStore(headwater_home() / "auth.json").ensure().root()
    return ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=root.name,
                            shared_access_key=root.key)


class Client:
    """A blocking stub whose calls raise :class:`HeadwaterError` (one line for a person)."""

    def __init__(self, args: argparse.Namespace, service: str, stub_class: type) -> None:
        self.channel = sync_channel(connection(args, service))
        self.stub = stub_class(self.channel)

    def __getattr__(self, name: str):
        method = getattr(self.stub, name)

        def call(request, **kwargs):
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
