"""mypy: headwater/ is strict-clean, services/ and plugins/ are clean (pyproject's [tool.mypy],
tests/types.py)."""

import pytest

from tests.types import check_headwater, check_services

# A cache per check (tests/types.py): never two runs of one at once.
pytestmark = [pytest.mark.xdist_group("mypy"), pytest.mark.timeout(600)]


def test_headwater_is_strict_clean() -> None:
    result = check_headwater()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_services_and_plugins_are_clean() -> None:
    result = check_services()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    # mypy ran over the mirror (a run that checks nothing would pass too)
    assert "Success: no issues found in" in result.stdout and " 0 source files" not in result.stdout, result.stdout
