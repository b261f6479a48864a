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


def test_the_readme_lists_every_command():
    """README's "Command line" table names every leaf command in its first column
    (`headwater job dead-letters|replay-dead-letters NAME` counts for both)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("## Command line"):readme.index("\n## ", readme.index("## Command line") + 1)]
    cells = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `headwater ")]
    leaves = [p for p in COMMANDS if p and not any(len(q) > len(p) and q[:len(p)] == p for q in COMMANDS)]
    missing = [" ".join(p) for p in leaves
               if not any(f"`headwater {p[0]}" in c and set(p[1:]) <= set(re.findall(r"[a-z][a-z0-9-]*", c))
                          for c in cells)]
    assert not missing, f"README's Command line section does not list: {missing}"
