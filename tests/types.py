"""mypy over the whole tree, as `make lint` and tests/unit/test_types.py run it.

* ``headwater/`` (the SDK, the server base, the plugin API, the CLI, the perf tools): pyproject's
  [tool.mypy], strict, every module; must be clean.
* ``services/`` and ``plugins/`` (they install as ``headwater.services`` and ``headwater.plugins``,
  so they are checked in tests/layers.py's mirror of the package): checked, not strict. They are
  not clean yet: tests/mypy_services_baseline.txt counts the known errors per file and error code,
  and a count above it (a new error) fails. Lower the baseline when you fix some
  (``python -m tests.types --update-baseline``).

    python -m tests.types        # exit status 0 when both hold
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.layers import ROOT, mirror_tree

BASELINE = ROOT / "tests" / "mypy_services_baseline.txt"
CACHE = ROOT / ".mypy_cache"
_ERROR = re.compile(r"^(?P<path>[^:]+):\d+: error: .*\[(?P<code>[a-z-]+)\]$")


def _mypy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mypy")
    return subprocess.run([str(exe), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(CACHE),
                           *args], cwd=cwd, capture_output=True, text=True)


def check_headwater() -> subprocess.CompletedProcess[str]:
    return _mypy(["headwater"], ROOT)


def services_errors() -> tuple[collections.Counter[str], str]:
    """Errors in services/ and plugins/ as ``path [code]`` -> count, and mypy's output."""
    with tempfile.TemporaryDirectory(prefix="hw-mypy-") as tmp:
        mirror_tree(Path(tmp))
        out = _mypy(["--follow-imports=silent", "--exclude", "examples", "headwater/services", "headwater/plugins"],
                    Path(tmp)).stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        m = _ERROR.match(line)
        if m:
            counts[f"{m['path']} [{m['code']}]"] += 1
    return counts, out


def read_baseline() -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in BASELINE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            n, key = line.split(" ", 1)
            counts[key] = int(n)
    return counts


def new_errors(counts: collections.Counter[str], baseline: collections.Counter[str]) -> dict[str, tuple[int, int]]:
    return {k: (baseline.get(k, 0), n) for k, n in counts.items() if n > baseline.get(k, 0)}


def main(argv: list[str]) -> int:
    status = 0
    sdk = check_headwater()
    sys.stdout.write("mypy headwater/: " + (sdk.stdout.strip().splitlines() or ["?"])[-1] + "\n")
    if sdk.returncode != 0:
        sys.stdout.write(sdk.stdout + sdk.stderr)
        status = 1
    counts, out = services_errors()
    if "--update-baseline" in argv:
        BASELINE.write_text("# mypy errors of services/ and plugins/ known at the time (count, file, code);"
                            " lower it as they are fixed\n"
                            + "".join(f"{n} {k}\n" for k, n in sorted(counts.items())))
    new = new_errors(counts, read_baseline())
    sys.stdout.write(f"mypy services/ plugins/: {sum(counts.values())} errors "
                     f"(baseline {sum(read_baseline().values())}), {len(new)} above the baseline\n")
    if new:
        for key, (was, now) in sorted(new.items()):
            sys.stdout.write(f"  {key}: {was} -> {now}\n")
        sys.stdout.write("\n".join(ln for ln in out.splitlines() if any(ln.startswith(k.split(" ")[0]) for k in new))
                         + "\n")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
