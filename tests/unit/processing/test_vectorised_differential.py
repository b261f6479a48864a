"""Differential test: random supported queries over random batches, columnar vs row path."""

from __future__ import annotations

import random

import orjson
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, QueryRuntimeError, compile_query, format_rows

AGGS = ["COUNT(*)", "COUNT(v)", "COUNT(DISTINCT k)", "COUNT(DISTINCT v)", "SUM(v)", "AVG(v)",
        "SUM(CAST(v AS float))", "MIN(CAST(v AS float))", "MAX(CAST(v AS bigint))", "MIN(k)", "MAX(k)"]
WINDOWS = ["TumblingWindow(second, 3)", "HoppingWindow(second, 6, 2)", "Tumbling(ms, 1500, -1)",
           "SessionWindow(second, 2, 5) OVER (PARTITION BY k)",
           # hopping windows aggregate per pane of gcd(size, hop): hops that do not divide the size, offsets
           "HoppingWindow(second, 5, 2)", "HoppingWindow(Duration(second, 6), Hop(second, 4), Offset(millisecond, 500))"]


def _query(rng: random.Random) -> str:
    aggs = ", ".join(f"{a} AS a{i}" for i, a in enumerate(rng.sample(AGGS, rng.randrange(1, 4))))
    win = rng.choice(WINDOWS)
    keyed = "PARTITION BY k" in win or rng.random() < 0.6
    key = "k, " if keyed else ""
    where = rng.choice(["", "", " WHERE v > 1", " WHERE k = 'A' OR v <= 2.5", " WHERE NOT (V <> 2) OR k IS NULL",
                        " WHERE v IS NOT NULL AND k <> 'b'", " WHERE 3 > v", " WHERE k = 2", " WHERE v = '10'"])
    having = rng.choice(["", "", " HAVING COUNT(*) > 2", " HAVING a0 >= 1 OR SUM(v) < 0",
                         " HAVING AVG(v) > 1 AND COUNT(DISTINCT k) >= 1"] + ([" HAVING k <> 'a'"] if keyed else []))
    return f"SELECT {key}{aggs}, System.Timestamp() AS e FROM s TIMESTAMP BY t{where} GROUP BY {key}{win}{having}"


def _batches(rng: random.Random):
    base = 1_704_067_200
    t = 0.0
    out = []
    for _ in range(rng.randrange(1, 5)):
        bodies, arrivals = [], []
        for _ in range(rng.randrange(0, 40)):
            t += rng.random() * 0.8
            et = t - (rng.random() * 4 if rng.random() < 0.2 else 0)
            ev = {"t": f"2024-01-01T00:{int(et // 60):02d}:{et % 60:09.6f}Z"}
            if rng.random() < 0.03:
                ev["t"] = "garbage"
            if rng.random() < 0.9:
                ev["k"] = rng.choice(["a", "b", "c", None])
            if rng.random() < 0.9:
                ev["v"] = rng.choice([1, 2, 3, 2.5, -4, None, 10])
            bodies.append(orjson.dumps(ev))
            arrivals.append(int((base + t + rng.random() * 3) * 1e6))
        out.append((bodies, arrivals))
    return out


def _outcome(pm, sql, batches, columnar, with_arrivals, policy, partitions=False):
    compiled = compile_query(sql, pm)
    rt = compiled.runtime(policy, columnar=columnar)
    rows = []
    try:
        for bodies, arrivals in batches:
            pids = [str(i % 3) for i in range(len(bodies))] if partitions else None
            rt.feed_bodies("s", bodies, arrivals if with_arrivals else None, partition_ids=pids)
            rows += rt.take()["output"]
        rt.flush()
        rows += rt.take()["output"]
    except QueryRuntimeError:
        return "error", rt.mode
    canon = sorted((tuple(sorted((k, round(float(v), 6) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in r.items()))
                    for r in format_rows(rows)), key=repr)
    counters = {k: v for k, v in rt.counters.as_dict().items() if k not in ("samples", "error_samples")}
    return (canon, counters), rt.mode


@pytest.mark.parametrize("seed", range(6))
def test_random_queries_same_on_both_paths(seed) -> None:
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rng = random.Random(seed)
    for _ in range(12):
        sql = _query(rng)
        batches = _batches(rng)
        with_arrivals = rng.random() < 0.5
        policy = OrderingPolicy.from_seconds(late=rng.choice([0, 1, 5]), ooo=rng.choice([0, 1, 3]),
                                             action=rng.choice(["adjust", "drop"]))
        parts = rng.random() < 0.5
        col, mode_c = _outcome(pm, sql, batches, True, with_arrivals, policy, parts)
        row, mode_r = _outcome(pm, sql, batches, False, with_arrivals, policy, parts)
        assert mode_c in ("vectorised", None) and mode_r in ("row", None), sql
        assert col == row, (sql, with_arrivals, policy, parts)


BIG = 9223372036854775807


def _run_both(pm, sql, values):
    out = {}
    for columnar in (True, False):
        rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(0, 0, "adjust"), columnar=columnar)
        bodies = [orjson.dumps({"t": f"2024-01-01T00:00:0{i + 1}Z", "v": v, "k": "a"}) for i, v in enumerate(values)]
        try:
            rt.feed_bodies("s", bodies, None)
            rt.flush()
            out[columnar] = format_rows(rt.take()["output"])
        except QueryRuntimeError as exc:
            assert "arithmetic overflow" in str(exc), exc
            assert "outside the bigint range" in str(exc), exc
            out[columnar] = "overflow"
    return out[True], out[False]


@pytest.mark.parametrize("sql, values, expected", [
    # SUM past 2^63 - 1: the statement fails on both paths (no wrap, no 2^63)
    ("SELECT SUM(v) AS s, System.Timestamp() AS e FROM s TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)",
     [BIG, 1], "overflow"),
    ("SELECT k, SUM(v) AS s FROM s TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 10)",
     [-BIG, -2], "overflow"),
    ("SELECT SUM(v) AS s FROM s TIMESTAMP BY t GROUP BY SlidingWindow(second, 10)", [BIG, 1], "overflow"),
    # the sum is checked once: on the way it may pass the limit
    ("SELECT SUM(v) AS s, System.Timestamp() AS e FROM s TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)",
     [BIG, 1, -1], [{"s": BIG, "e": "2024-01-01T00:00:10.0000000Z"}]),
    ("SELECT AVG(v) AS a, System.Timestamp() AS e FROM s TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)",
     [BIG, 1], [{"a": 4.611686018427388e18, "e": "2024-01-01T00:00:10.0000000Z"}]),
    ("SELECT v + 1 AS w FROM s TIMESTAMP BY t", [BIG], "overflow"),
    ("SELECT v * 2 AS w FROM s TIMESTAMP BY t", [2**62], "overflow"),
    ("SELECT -v - 2 AS w FROM s TIMESTAMP BY t", [BIG], "overflow"),
    ("SELECT v - 1 AS w, v + 0 AS x FROM s TIMESTAMP BY t", [BIG, -BIG - 1 + 1],
     [{"w": BIG - 1, "x": BIG}, {"w": -BIG - 1, "x": -BIG}]),
    # a float result is a float, not an overflow
    ("SELECT CAST(v AS float) + 1 AS w FROM s TIMESTAMP BY t", [BIG], [{"w": 9.223372036854776e18}]),
])
def test_bigint_overflow_is_an_error_on_both_paths(sql, values, expected) -> None:
    pm = get_plugin_manager(load_entrypoints=False).collect()
    col, row = _run_both(pm, sql, values)
    assert col == row == expected
