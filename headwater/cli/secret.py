"""``headwater secret ...``: named secrets that jobs and sinks refer to as ``secret:NAME``.

    headwater secret set NAME [--value V]     # without --value: the value from stdin
    headwater secret list                     # names only: values are never returned
    headwater secret delete NAME

Secrets are kept by the sink service in the store it shares with the processing
service (``secrets_dir``, default ``$HEADWATER_HOME/secrets``); every command
needs a Manage key. The sink service is ``--address`` (or
``$HEADWATER_SINK_ADDRESS``), the key ``--connection-string`` (or
``$HEADWATER_SINK_CONNECTION_STRING``), else the local root policy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from headwater.cli.common import Client, add_connection_options, print_result
from headwater.errors import HeadwaterError, Reason

__all__ = ["add_commands"]


def _client(args: argparse.Namespace) -> Client:
    from headwater.v1 import secrets_pb2_grpc

    return Client(args, "sink", secrets_pb2_grpc.SecretServiceStub)


def _name(name: str) -> str:
    return name if name.startswith("secrets/") else f"secrets/{name}"


def _set(args: argparse.Namespace) -> int:
    from headwater.v1 import secrets_pb2

    value = args.value
    if value is None:
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"value of {args.name}: ")
        else:
            value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "the secret's value is empty (--value V, or pipe it in)")
    resp = _client(args).SetSecret(secrets_pb2.SetSecretRequest(name=_name(args.name), value=value))
    print_result({"name": resp.name, "use_as": f"secret:{resp.name.removeprefix('secrets/')}"}, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    from headwater.v1 import secrets_pb2

    client, names, token = _client(args), [], ""
    while True:
        resp = client.ListSecrets(secrets_pb2.ListSecretsRequest(page_size=1000, page_token=token))
        names += list(resp.names)
        token = resp.next_page_token
        if not token:
            break
    if args.json:
        print_result([{"name": n} for n in names], True)
    else:
        for n in names:
            print(n.removeprefix("secrets/"))
    return 0


def _delete(args: argparse.Namespace) -> int:
    from headwater.v1 import secrets_pb2

    _client(args).DeleteSecret(secrets_pb2.DeleteSecretRequest(name=_name(args.name)))
    print(f"deleted {_name(args.name)}")
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    sec = sub.add_parser("secret", help="set, list and delete secrets (secret:NAME in jobs and sinks)")
    ss = sec.add_subparsers(dest="secret_command", metavar="COMMAND", required=True)
    p = add_connection_options(ss.add_parser("set", help="create or replace a secret"), "sink")
    p.add_argument("name")
    p.add_argument("--value", help="the value (default: read from stdin, so it stays out of shell history)")
    p.set_defaults(func=_set)
    p = add_connection_options(ss.add_parser("list", help="the secrets' names (never their values)"), "sink")
    p.set_defaults(func=_list)
    p = add_connection_options(ss.add_parser("delete", help="delete a secret"), "sink")
    p.add_argument("name")
    p.set_defaults(func=_delete)
