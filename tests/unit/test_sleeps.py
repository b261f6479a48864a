"""Tests wait on facts, not on time (issue 14): fewer than 10 ``time.sleep`` calls in tests/,
each with a comment on its line or just above saying why it is time and not a fact.

To wait for something, use :func:`tests.wait.wait_until` on what the contracts report (a job's
metrics: last checkpoint id, absolute watermark per input, input events; a hub's offsets; a
service's health; the rows in a sink), or the helpers built on it
(``tests.integration.processing_support.Pipeline.wait_settled``, ``wait_checkpoints``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
_SLEEP = re.compile(r"\btime\.sleep\(")
LIMIT = 10


def _sleeps() -> list[tuple[Path, int, bool]]:
    """Every ``time.sleep(`` in tests/: (file, line number, justified by a comment)."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not _SLEEP.search(line) or line.lstrip().startswith("#") or path == Path(__file__):
                continue
            justified = "#" in line.split("time.sleep(", 1)[1] or (i > 0 and lines[i - 1].lstrip().startswith("#"))
            found.append((path, i + 1, justified))
    return found


def test_tests_sleep_rarely_and_say_why() -> None:
    sleeps = _sleeps()
    where = [f"{p.relative_to(TESTS.parent)}:{n}" for p, n, _ in sleeps]
    assert len(sleeps) < LIMIT, f"{len(sleeps)} time.sleep calls in tests/ (under {LIMIT}): {where}"
    bare = [f"{p.relative_to(TESTS.parent)}:{n}" for p, n, ok in sleeps if not ok]
    assert not bare, f"time.sleep without a comment saying why it is not a wait on a fact: {bare}"
