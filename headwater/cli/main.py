"""``headwater``: one command, one subcommand per area.

Each area lives in its own module of this package and exposes
``add_commands(subparsers)``, which adds its parsers and sets ``func`` on each
(``func(args) -> int``). Plugins add commands through the ``register_commands``
hook.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: Modules of headwater.cli that add commands, in --help order.
COMMAND_MODULES: tuple[str, ...] = (
    "up",
    "demo",
    "services",
    "hub",
    "policy",
    "schema",
    "job",
    "query",
    "sink",
    "secret",
    "plugins",
    "perf",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headwater",
        description="Headwater: Event Hubs, Stream Analytics, Schema Registry and outputs, self-hosted.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"headwater.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"headwater.cli.{name}":
                raise
            continue
        module.add_commands(sub)
    try:
        from headwater.pluginmanager import get_plugin_manager

        get_plugin_manager().hook.register_commands(cli=sub)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        print(f"headwater: plugin commands not loaded: {exc}", file=sys.stderr)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"headwater {version('headwater')}"
    except Exception:  # noqa: BLE001
        return "headwater (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a person gets one line, not a traceback
        from headwater.errors import HeadwaterError

        if isinstance(exc, HeadwaterError):
            print(f"headwater: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
