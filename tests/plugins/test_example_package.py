"""plugins/examples/headwater-count-window, pip-installed into this venv and used end to end.

The install runs once per test session (and is skipped when the same version is already
installed), under a file lock so parallel workers do not race.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "examples" / "headwater-count-window"


def _installed_version() -> str | None:
    try:
        return metadata.version("headwater-count-window")
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="session")
def installed_plugin() -> str:
    wanted = next(line.split("=", 1)[1].strip().strip('"') for line in
                  (PACKAGE / "pyproject.toml").read_text().splitlines() if line.startswith("version"))
    lock = Path(sys.prefix) / ".headwater-count-window.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if _installed_version() != wanted:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            str(PACKAGE)], check=True, timeout=300)
    assert _installed_version() == wanted
    return wanted


def test_entry_point_is_discovered(installed_plugin) -> None:
    # a fresh interpreter: the normal plugin manager, entry points loaded
    code = ("from headwater.pluginmanager import get_plugin_manager\n"
            "pm = get_plugin_manager(load_entrypoints=True).collect()\n"
            "print(pm.windows.owners['countwindow'], pm.functions.owners['haversine'])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout.split()
    assert out == ["count_window", "count_window"]


def test_query_test_uses_the_plugin(installed_plugin, tmp_path) -> None:
    events = [{"t": f"2024-01-01T00:00:{s:02d}Z", "a": 59.91, "b": 10.75, "c": 60.39, "d": 5.32, "city": "Oslo"}
              for s in range(1, 8)]
    (tmp_path / "in.json").write_text(json.dumps(events))
    (tmp_path / "q.asaql").write_text(
        "SELECT city, System.Timestamp() AS e, COUNT(*) AS n, ROUND(SUM(Haversine(a, b, c, d)), 1) AS km\n"
        "FROM trips TIMESTAMP BY t\nGROUP BY city, CountWindow(2)")
    headwater = Path(sys.executable).with_name("headwater")
    subprocess.run([str(headwater), "query", "test", "--query", str(tmp_path / "q.asaql"), "--input",
                    f"trips={tmp_path / 'in.json'}", "--output-dir", str(tmp_path / "out")],
                   check=True, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    rows = json.loads((tmp_path / "out" / "output.json").read_text())
    assert [r["e"][17:19] for r in rows] == ["02", "04", "06"]
    assert all(r["n"] == 2 and r["city"] == "Oslo" and 609 < r["km"] < 612 for r in rows)


def test_plugins_list_shows_builtins_and_the_installed_package(installed_plugin) -> None:
    """`headwater plugins list` names each plugin, its distribution and what it provides."""
    headwater = Path(sys.executable).with_name("headwater")
    out = subprocess.run([str(headwater), "plugins", "list", "--json"], check=True, capture_output=True,
                         text=True).stdout
    plugins = json.loads(out)
    assert plugins["count_window"]["distribution"] == f"headwater-count-window {installed_plugin}"
    assert "CountWindow" in plugins["count_window"]["windows"]
    assert "Haversine" in plugins["count_window"]["functions"]
    assert plugins["headwater.plugins.windows"]["distribution"] == "builtin"
    assert {"TumblingWindow", "HoppingWindow", "SlidingWindow", "SessionWindow"} <= set(
        plugins["headwater.plugins.windows"]["windows"])
    assert "memory" in plugins["headwater.plugins.sinks"]["sinks"]
    assert "avro" in plugins["headwater.plugins.avro"]["serializers"]
    text = subprocess.run([str(headwater), "plugins", "list"], check=True, capture_output=True, text=True).stdout
    assert "count_window  (headwater-count-window" in text
