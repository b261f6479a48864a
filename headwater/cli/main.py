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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; for ``argv`` naming a built-in command, without the plugins'
    commands (loading the plugins imports what they use: numpy, the engine's functions)."""
    parser = argparse.ArgumentParser(
        prog="headwater",
        description="Headwater: Event Hubs, Stream Analytics, Schema Registry and outputs, self-hosted.",
    )
    parser.add_argument("--version", action=_Version, help="show program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"headwater.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"headwater.cli.{name}":
                raise
            continue
        module.add_commands(sub)
    if argv and argv[0] in sub.choices:  # the command's own code loads the plugins it uses
        return parser
    try:
        from headwater.pluginmanager import get_plugin_manager

        get_plugin_manager().hook.register_commands(cli=sub)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        print(f"headwater: plugin commands not loaded: {exc}", file=sys.stderr)
    return parser


class _Version(argparse.Action):
    """``--version``: the installed version, read (importlib.metadata) only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(_version())
        parser.exit()


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"headwater {version('headwater')}"
    except Exception:  # noqa: BLE001
        return "headwater (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    from headwater.interpreter import tune_interpreter

    tune_interpreter()  # query test and perf query run the engine in this process
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:  # noqa: BLE001 - a person gets one line, not a traceback
        return _one_line(exc)


def _closed_pipe() -> int:
    """``headwater ... | head``: the reader left; stop quietly (no BrokenPipeError at exit either)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


def _one_line(exc: Exception) -> int:
    """Print what went wrong in one line; the traceback only with HEADWATER_DEBUG=1."""
    import os

    import grpc

    from headwater.errors import HeadwaterError

    if isinstance(exc, grpc.RpcError):
        exc = HeadwaterError.from_rpc_error(exc)
    if os.environ.get("HEADWATER_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, HeadwaterError):
        print(f"headwater: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, OSError) and exc.filename:
        print(f"headwater: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    if isinstance(exc, (OSError, ValueError, TimeoutError)):
        print(f"headwater: {exc}", file=sys.stderr)
        return 1
    print(f"headwater: unexpected {type(exc).__name__}: {exc} (HEADWATER_DEBUG=1 shows the traceback)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
