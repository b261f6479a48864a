"""``headwater policy``: shared access policies (Send / Listen / Manage, two keys each).

Every command calls the AccessService of the ingestion service (the namespace)
with a Manage connection (``--connection-string``, ``$HEADWATER_CONNECTION_STRING``,
else the local root policy for ``--address``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from headwater.auth import ConnectionString
from headwater.cli.common import Client, add_connection_options, connection, print_result
from headwater.v1 import access_pb2, access_pb2_grpc

__all__ = ["add_commands"]

_RIGHT_NAMES = {access_pb2.ACCESS_RIGHT_SEND: "Send", access_pb2.ACCESS_RIGHT_LISTEN: "Listen",
                access_pb2.ACCESS_RIGHT_MANAGE: "Manage"}
_RIGHTS = {v.lower(): k for k, v in _RIGHT_NAMES.items()}


def _client(args: argparse.Namespace) -> Client:
    return Client(args, "ingestion", access_pb2_grpc.AccessServiceStub)


def _name(args: argparse.Namespace) -> str:
    return f"hubs/{args.hub}/policies/{args.name}" if args.hub else f"policies/{args.name}"


def _row(p: access_pb2.AccessPolicy) -> dict[str, Any]:
    return {"name": p.name.rsplit("/", 1)[-1], "hub": p.hub.removeprefix("hubs/") or "(namespace)",
            "rights": ",".join(_RIGHT_NAMES.get(r, str(r)) for r in p.rights),
            "created": p.create_time.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")}


def _conn_string(args: argparse.Namespace, keys: access_pb2.AccessKeys, hub: str, secondary: bool = False) -> str:
    base = connection(args, "ingestion")
    return str(ConnectionString(endpoint=base.endpoint, shared_access_key_name=keys.key_name,
                                shared_access_key=keys.secondary_key if secondary else keys.primary_key,
                                entity_path=hub))


def _keys_out(args: argparse.Namespace, keys: access_pb2.AccessKeys, hub: str) -> dict[str, Any]:
    return {"primary_key": keys.primary_key, "secondary_key": keys.secondary_key,
            "primary_connection_string": _conn_string(args, keys, hub),
            "secondary_connection_string": _conn_string(args, keys, hub, secondary=True)}


def _create(args: argparse.Namespace) -> int:
    rights = []
    for item in args.rights.split(","):
        key = item.strip().lower()
        if key not in _RIGHTS:
            print(f"headwater policy create: unknown right {item!r}: use send, listen, manage (comma-separated)")
            return 2
        rights.append(_RIGHTS[key])
    resp = _client(args).CreatePolicy(access_pb2.CreatePolicyRequest(
        parent=f"hubs/{args.hub}" if args.hub else "", policy_id=args.name, rights=rights))
    print_result({**_row(resp.policy), **_keys_out(args, resp.keys, args.hub or "")}, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    client, rows, token = _client(args), [], ""
    while True:
        resp = client.ListPolicies(access_pb2.ListPoliciesRequest(
            parent=f"hubs/{args.hub}" if args.hub else "", page_token=token))
        rows += [_row(p) for p in resp.policies]
        token = resp.next_page_token
        if not token:
            break
    print_result(rows, args.json)
    return 0


def _delete(args: argparse.Namespace) -> int:
    _client(args).DeletePolicy(access_pb2.DeletePolicyRequest(name=_name(args)))
    print(f"deleted {_name(args)}")
    return 0


def _renew(args: argparse.Namespace) -> int:
    key_type = access_pb2.KEY_TYPE_PRIMARY if args.key == "primary" else access_pb2.KEY_TYPE_SECONDARY
    resp = _client(args).RegenerateKey(access_pb2.RegenerateKeyRequest(name=_name(args), key_type=key_type))
    print_result({"name": args.name, **_keys_out(args, resp.keys, args.hub or "")}, args.json)
    return 0


def policy_connection_string(args: argparse.Namespace) -> str:
    """A policy's connection string from the service (GetPolicyKeys, needs Manage)."""
    keys = _client(args).GetPolicyKeys(access_pb2.GetPolicyKeysRequest(name=_name(args))).keys
    return _conn_string(args, keys, args.hub or "", secondary=args.secondary)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("policy", help="shared access policies: create, list, delete, renew keys",
                       description="Manage shared access policies (Send, Listen, Manage; a primary and a "
                                   "secondary key each) through the ingestion service. Needs Manage.")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    c = add_connection_options(psub.add_parser("create", help="create a policy and print its keys"), "ingestion")
    c.add_argument("name")
    c.add_argument("--rights", required=True, help="send, listen, manage, comma-separated (manage brings all)")
    c.add_argument("--hub", help="a hub-level policy, valid only for HUB")
    c.set_defaults(func=_create)

    c = add_connection_options(psub.add_parser("list", help="list policies (never their keys)"), "ingestion")
    c.add_argument("--hub", help="only HUB's policies")
    c.set_defaults(func=_list)

    c = add_connection_options(psub.add_parser("delete", help="delete a policy (its tokens stop working)"),
                               "ingestion")
    c.add_argument("name")
    c.add_argument("--hub", help="the policy belongs to HUB")
    c.set_defaults(func=_delete)

    c = add_connection_options(psub.add_parser("renew", help="regenerate a policy's primary or secondary key"),
                               "ingestion")
    c.add_argument("name")
    c.add_argument("--key", required=True, choices=("primary", "secondary"))
    c.add_argument("--hub", help="the policy belongs to HUB")
    c.set_defaults(func=_renew)
