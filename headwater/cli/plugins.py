"""``headwater plugins list``: each plugin and what it provides."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_commands"]


def _list(args: argparse.Namespace) -> int:
    from headwater.pluginmanager import get_plugin_manager

    pm = get_plugin_manager()
    provides = pm.provides()
    dists = {name: f"{dist.project_name} {dist.version}" for name, dist in
             ((pm.get_name(plugin), dist) for plugin, dist in pm.list_plugin_distinfo())}
    if args.json:
        print(json.dumps({name: {"distribution": dists.get(name, "builtin"), **what}
                          for name, what in provides.items()}, indent=2))
        return 0
    for name, what in provides.items():
        print(f"{name}  ({dists.get(name, 'builtin')})")
        if not what:
            print("    (registers nothing)")
        for kind, names in what.items():
            print(f"    {kind}: {', '.join(names)}")
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("plugins", help="list plugins", description="Inspect Headwater plugins.")
    psub = p.add_subparsers(dest="plugins_command", metavar="COMMAND")
    ls = psub.add_parser("list", help="each plugin (builtin or installed) and what it provides")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)
