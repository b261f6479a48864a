"""`--help` works for every command and subcommand of the CLI (and each has a help line)."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from headwater.cli.main import build_parser, main


def walk(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


COMMANDS = [path for path, _ in walk(build_parser())]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "headwater")
def test_help_everywhere(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    assert "usage: headwater" in out.getvalue()


def test_the_designed_commands_exist():
    top = {p[0] for p in COMMANDS if p}
    assert {"up", "down", "demo", "serve", "health", "connection-string", "plugins", "job", "query",
            "perf"} <= top
    assert ("plugins", "list") in COMMANDS and ("job", "alert", "create") in COMMANDS
