"""pyproject's import-linter contracts hold over the whole tree: the SDK and server base import no
service, plugin, perf tool or CLI module; services never import each other; the CLI is outermost;
the processing engine's layers import one way (sql -> plan -> exec -> state -> engine -> runtime)."""

import tomllib

from tests.layers import ROOT, lint_imports


def test_every_import_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contracts)} kept, 0 broken" in result.stdout, result.stdout
    assert len(contracts) >= 3
