"""``headwater schema ...``: schema groups, registration and lookup against the registry service.

The registry is ``--registry HOST:PORT`` (or ``$HEADWATER_REGISTRY_ADDRESS``,
default ``localhost:50052``). The key comes from ``--connection-string`` (or
``$HEADWATER_REGISTRY_CONNECTION_STRING``), else from the local policies file
(the root policy in ``$HEADWATER_HOME/auth.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from headwater.config import default_address
from headwater.errors import HeadwaterError, Reason

if TYPE_CHECKING:
    from headwater.schemaregistry import SchemaGroup, SchemaProperties, SchemaRegistryClient

__all__ = ["add_commands"]

_MODES = ["none", "backward", "backward-transitive", "forward", "forward-transitive", "full", "full-transitive"]


def _client(args: argparse.Namespace) -> SchemaRegistryClient:
    from headwater.schemaregistry import DefaultAzureCredential, SchemaRegistryClient

    conn = (args.connection_string or os.environ.get("HEADWATER_REGISTRY_CONNECTION_STRING", "")
            or os.environ.get("HEADWATER_CONNECTION_STRING", ""))  # the namespace's: it finds the registry
    if conn:
        return SchemaRegistryClient.from_connection_string(conn)
    address = args.registry or default_address("registry")
    return SchemaRegistryClient(address, DefaultAzureCredential())


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _group_dict(g: SchemaGroup) -> dict[str, Any]:
    return {"name": g.name, "format": g.format.value, "compatibility": g.compatibility.value,
            "created_on": g.created_on, "updated_on": g.updated_on}


def _props_dict(p: SchemaProperties) -> dict[str, Any]:
    return {"id": p.id, "group_name": p.group_name, "name": p.name, "version": p.version, "format": p.format.value}


def _group_text(g: SchemaGroup) -> str:
    return f"{g.name}\tformat={g.format.value}\tcompatibility={g.compatibility.value.lower().replace('_', '-')}"


def _group_create(args: argparse.Namespace) -> int:
    with _client(args) as c:
        g = c.create_schema_group(args.name, args.format, args.compatibility)
    _print(args, _group_dict(g), f"created schema group {_group_text(g)}")
    return 0


def _group_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        g = c.get_schema_group(args.name)
    _print(args, _group_dict(g), _group_text(g))
    return 0


def _group_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        groups = list(c.list_schema_groups())
    _print(args, [_group_dict(g) for g in groups], "\n".join(_group_text(g) for g in groups) or "(no groups)")
    return 0


def _group_set(args: argparse.Namespace) -> int:
    with _client(args) as c:
        g = c.set_compatibility(args.name, args.compatibility)
    _print(args, _group_dict(g), _group_text(g))
    return 0


def _read_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"cannot read schema file {path!r}: {exc.strerror}") from None


def _register(args: argparse.Namespace) -> int:
    definition = _read_file(args.file)
    with _client(args) as c:
        fmt = args.format
        if not fmt:
            try:
                fmt = c.get_schema_group(args.group).format.value
            except HeadwaterError as exc:
                if exc.reason is not Reason.RESOURCE_NOT_FOUND:
                    raise
                fmt = "json" if args.file.endswith(".json") and '"$schema"' in definition else "avro"
        p = c.register_schema(args.group, args.name, definition, fmt)
    _print(args, _props_dict(p), f"{p.id}\t{p.group_name}/{p.name} version {p.version} ({p.format.value})")
    return 0


def _get(args: argparse.Namespace) -> int:
    with _client(args) as c:
        s = c.get_schema(args.id)
    if args.json:
        _print(args, {**_props_dict(s.properties), "definition": s.definition}, "")
    else:
        p = s.properties
        print(f"# {p.id} {p.group_name}/{p.name} version {p.version} ({p.format.value})")
        print(s.definition)
    return 0


def _versions(args: argparse.Namespace) -> int:
    with _client(args) as c:
        versions = list(c.list_schema_versions(args.group, args.name))
    _print(args, [_props_dict(p) for p in versions],
           "\n".join(f"{p.version}\t{p.id}" for p in versions))
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _client(args) as c:
        p = c.delete_schema_version(args.group, args.name, args.version)
    _print(args, _props_dict(p), f"deleted {p.group_name}/{p.name} version {p.version} ({p.id})")
    return 0



def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="HOST:PORT",
                        help="registry address (default $HEADWATER_REGISTRY_ADDRESS, else $HEADWATER_HOME/endpoints.json, else localhost:50052)")
    common.add_argument("--connection-string",
                        help="Endpoint=headwater://host:port/;SharedAccessKeyName=..;SharedAccessKey=.. "
                             "(default $HEADWATER_REGISTRY_CONNECTION_STRING, else the local root key)")
    common.add_argument("--json", action="store_true", help="print JSON")

    schema = sub.add_parser("schema", help="schema groups and schemas in the registry",
                            description="Manage schema groups, register and fetch schemas.")
    ssub = schema.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)

    group = ssub.add_parser("group", help="schema groups")
    gsub = group.add_subparsers(dest="group_command", metavar="COMMAND", required=True)
    p = gsub.add_parser("create", parents=[common], help="create a group with a format and a compatibility mode")
    p.add_argument("name")
    p.add_argument("--format", choices=["avro", "json"], required=True)
    p.add_argument("--compatibility", choices=_MODES, default="backward", help="default backward")
    p.set_defaults(func=_group_create)
    p = gsub.add_parser("show", parents=[common], help="show one group")
    p.add_argument("name")
    p.set_defaults(func=_group_show)
    p = gsub.add_parser("list", parents=[common], help="list groups")
    p.set_defaults(func=_group_list)
    p = gsub.add_parser("set-compatibility", parents=[common], help="change a group's compatibility mode")
    p.add_argument("name")
    p.add_argument("compatibility", choices=_MODES)
    p.set_defaults(func=_group_set)

    p = ssub.add_parser("register", parents=[common], help="register a schema file (same definition: same id)")
    p.add_argument("group")
    p.add_argument("name")
    p.add_argument("file", help="the definition (.avsc, .json); - reads standard input")
    p.add_argument("--format", choices=["avro", "json"],
                   help="default: the group's format (avro for a new group)")
    p.set_defaults(func=_register)
    p = ssub.add_parser("get", parents=[common], help="print a schema by id")
    p.add_argument("id")
    p.set_defaults(func=_get)
    p = ssub.add_parser("versions", parents=[common], help="list a schema's versions")
    p.add_argument("group")
    p.add_argument("name")
    p.set_defaults(func=_versions)
    p = ssub.add_parser("delete", parents=[common], help="delete one version of a schema")
    p.add_argument("group")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.set_defaults(func=_delete)
