"""mypy over the whole tree, as `make lint` and tests/unit/test_types.py run it.

* ``headwater/`` (the SDK, the server base, the plugin API, the CLI, the perf tools): pyproject's
  [tool.mypy], strict, every module; must be clean.
* ``services/`` and ``plugins/`` (they install as ``headwater.services`` and ``headwater.plugins``,
  so they are checked in tests/layers.py's mirror of the package): checked (function bodies
  included), not strict; must be clean too.

    python -m tests.types        # exit status 0 when both are clean
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.layers import ROOT, mirror_tree

#: mypy's cache, in the user's cache folder (``HEADWATER_MYPY_CACHE`` to move it), not in the
#: checkout: a new clone (CI's) starts warm too, about 45 CPU s less on a cold one. mypy checks
#: each cached module against its source's size and hash, not its path (the services check runs
#: in a new temporary mirror each time and finds its cache warm), so clones share it safely.
CACHE = Path(os.environ.get("HEADWATER_MYPY_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headwater" / "mypy")
#: One cache per check: both hold modules named ``headwater.*`` (the checkout's and the
#: mirror's), so with one cache each run threw the other's away (21 s a run instead of ~1 warm).
SERVICES_CACHE = CACHE / "services"


def _mypy(args: list[str], cwd: Path, cache: Path = CACHE) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mypy")
    return subprocess.run([str(exe), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
                           *args], cwd=cwd, capture_output=True, text=True)


def check_headwater() -> subprocess.CompletedProcess[str]:
    return _mypy(["headwater"], ROOT)


def check_services() -> subprocess.CompletedProcess[str]:
    """services/ and plugins/ (without plugins/examples, packages of their own) in the mirror."""
    with tempfile.TemporaryDirectory(prefix="hw-mypy-") as tmp:
        mirror_tree(Path(tmp))
        return _mypy(["--follow-imports=silent", "--exclude", "examples", "headwater/services", "headwater/plugins"],
                     Path(tmp), SERVICES_CACHE)


def main() -> int:
    status = 0
    for what, result in (("headwater/", check_headwater()), ("services/ plugins/", check_services())):
        sys.stdout.write(f"mypy {what}: " + (result.stdout.strip().splitlines() or ["?"])[-1] + "\n")
        if result.returncode != 0:
            sys.stdout.write(result.stdout + result.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
