"""The processing engine's layers import one way (pyproject's import-linter contract)."""

from tests.layers import lint_imports


def test_engine_layers_import_one_way() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
