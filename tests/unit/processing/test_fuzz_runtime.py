"""Random (compiling) queries over events of mixed types: rows or a QueryRuntimeError, never a crash."""

from __future__ import annotations

import random

import pytest

from headwater.errors import QueryCompileError
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import QueryRuntimeError
from headwater.services.processing.testing import run_query

VALUES = [None, 0, 1, -7, 2.5, float("1e308"), "", "abc", "ABC", "12", "2024-01-01T00:00:05Z", True, False,
          {"a": 1}, [1, "x"], {"a": {"b": [1]}}, []]
EXPRS = ["a", "b", "c.a", "a + b", "a * 2", "a / b", "a % 3", "-a", "(a = b)", "a <> 'x'", "a LIKE '%b%'",
         "a IN (1, 'abc', NULL)", "a BETWEEN 0 AND 10", "a IS NULL", "NOT (a = 1)", "CASE a WHEN 1 THEN b ELSE NULL END",
         "CASE WHEN a > b THEN 'gt' ELSE 'le' END", "TRY_CAST(a AS bigint)", "TRY_CAST(b AS datetime)",
         "TRY_CAST(a AS float)", "TRY_CAST(c AS record)", "TRY_CAST(a AS bit)", "CONCAT(a, b)", "LEN(a)",
         "UPPER(b)", "SUBSTRING(a, 1, 2)", "ABS(a)", "ROUND(a, 1)", "GetArrayLength(b)",
         "GetArrayElement(b, 0)", "GetRecordPropertyValue(c, 'a')", "DATEADD(second, 1, t)",
         "DATEDIFF(second, t, b)", "DATEPART(minute, b)", "COALESCE(a, b, 0)", "GetType(a)",
         "LAG(a) OVER (LIMIT DURATION(second, 5))", "ISFIRST(second, 3)", "CAST(a AS nvarchar(max))",
         "CHARINDEX('b', a)", "a || b", "System.Timestamp()"]
AGGS = ["COUNT(*)", "COUNT(a)", "COUNT(DISTINCT b)", "SUM(a)", "AVG(a)", "MIN(b)", "MAX(a)", "STDEV(a)",
        "Collect(a)", "TopOne() OVER (ORDER BY a)"]
WINDOWS = ["TumblingWindow(second, 2)", "HoppingWindow(second, 4, 2)", "SlidingWindow(second, 3)",
           "SessionWindow(second, 2, 6)", "System.Timestamp()"]


def _events(rng: random.Random) -> list[dict]:
    out = []
    for _i in range(rng.randrange(0, 12)):
        ev = {"t": f"2024-01-01T00:00:{rng.randrange(0, 20):02d}Z"}
        for k in "abc":
            if rng.random() < 0.85:
                ev[k] = rng.choice(VALUES)
        out.append(ev)
    return out


def _query(rng: random.Random) -> str:
    if rng.random() < 0.5:
        items = ", ".join(f"{rng.choice(EXPRS)} AS x{i}" for i in range(rng.randrange(1, 4)))
        where = f" WHERE {rng.choice(EXPRS)}" if rng.random() < 0.5 else ""
        return f"SELECT {items} FROM i TIMESTAMP BY t{where}"
    items = ", ".join(f"{rng.choice(AGGS)} AS x{i}" for i in range(rng.randrange(1, 3)))
    key = rng.choice(["", "a, ", "b, "])
    having = f" HAVING {rng.choice(AGGS)} > 0" if rng.random() < 0.3 else ""
    return f"SELECT {key}{items} FROM i TIMESTAMP BY t GROUP BY {key}{rng.choice(WINDOWS)}{having}"


@pytest.mark.parametrize("seed", range(8))
def test_random_queries_never_crash(seed) -> None:
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rng = random.Random(seed)
    for _ in range(150):
        q = _query(rng)
        try:
            run_query(q, {"i": _events(rng)}, pm=pm)
        except QueryRuntimeError:
            pass
        except QueryCompileError as exc:
            assert "GROUP BY" in q or "LAG" in q, (q, exc)
