"""mypy: headwater/ is strict-clean (pyproject's [tool.mypy]); services/ and plugins/ gain no error
beyond tests/mypy_services_baseline.txt (tests/types.py)."""

import pytest

from tests.types import check_headwater, new_errors, read_baseline, services_errors

# One mypy cache (.mypy_cache) for both: never two runs at once.
pytestmark = [pytest.mark.xdist_group("mypy"), pytest.mark.timeout(600)]


def test_headwater_is_strict_clean() -> None:
    result = check_headwater()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_services_and_plugins_add_no_type_error_beyond_the_baseline() -> None:
    counts, out = services_errors()
    assert counts, out[-2000:]  # mypy ran over the mirror (a run that checks nothing would pass)
    new = new_errors(counts, read_baseline())
    assert not new, (f"new mypy errors (file [code]: baseline -> now): {new}; fix them (docs/development.md), "
                     f"or, to accept known ones, python -m tests.types --update-baseline\n{out[-4000:]}")
