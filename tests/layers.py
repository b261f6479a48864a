"""The import-linter contracts of pyproject.toml, run over the source tree.

``headwater.services`` lives in ``services/`` (setuptools ``package-dir``), which import-linter's
graph builder cannot see from the ``headwater`` folder; this mirrors the tree as one package
(``headwater/`` with ``services/`` and ``plugins/`` inside, files linked, not copied) and runs
``lint-imports`` over it.

    python -m tests.layers        # as `make lint` does; exit status of lint-imports
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mirror(src: Path, dst: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in filenames:
            if f.endswith((".py", ".pyi")):
                os.symlink(Path(dirpath) / f, dst / rel / f)


def mirror_tree(tmp: Path) -> Path:
    """``headwater/`` with ``services/`` and ``plugins/`` inside, as they install, under ``tmp``."""
    pkg = tmp / "headwater"
    _mirror(ROOT / "headwater", pkg)
    _mirror(ROOT / "services", pkg / "services")
    _mirror(ROOT / "plugins", pkg / "plugins")
    return pkg


def lint_imports() -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="hw-layers-") as tmp:
        mirror_tree(Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        exe = Path(sys.executable).with_name("lint-imports")
        return subprocess.run([str(exe), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp,
                              env=env, capture_output=True, text=True)


if __name__ == "__main__":
    result = lint_imports()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
