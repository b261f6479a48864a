"""The plugin's own tests: registered without installing, through extra=[...]."""

from __future__ import annotations

import headwater_count_window as plugin
import pytest

from headwater.errors import QueryCompileError
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.testing import run_query

EVENTS = [{"t": f"2024-01-01T00:00:{s:02d}Z", "lat": 59.91, "lon": 10.75, "lat2": 60.39, "lon2": 5.32}
          for s in range(1, 8)]


@pytest.fixture
def pm():
    return get_plugin_manager([("count_window", plugin)], load_entrypoints=False)


def test_logic_timeline() -> None:
    # n=3:  x@1 x@2 x@3 | x@4 x@5 x@6 | x@7
    logic = plugin.CountConfig(3).build()
    assert [logic.assign(t) for t in range(1, 8)] == [[0], [0], [0], [1], [1], [1], [2]]
    assert logic.close_for(4) == [(0, 3)]
    restored = plugin.CountConfig(3).build(logic.snapshot())
    assert restored.close_for(100) == [(1, 6)]


def test_query_uses_window_and_function(pm) -> None:
    out = run_query("SELECT System.Timestamp() AS e, COUNT(*) AS n, ROUND(AVG(Haversine(lat, lon, lat2, lon2)), 0) AS km "
                    "FROM i TIMESTAMP BY t GROUP BY CountWindow(3)", {"i": EVENTS}, pm=pm)
    assert out["output"] == [{"e": "2024-01-01T00:00:03.0000000Z", "n": 3, "km": 305.0},
                             {"e": "2024-01-01T00:00:06.0000000Z", "n": 3, "km": 305.0}]


def test_bad_arguments_are_compile_errors(pm) -> None:
    with pytest.raises(QueryCompileError, match="positive integer"):
        run_query("SELECT COUNT(*) FROM i TIMESTAMP BY t GROUP BY CountWindow(0)", {"i": EVENTS}, pm=pm)
