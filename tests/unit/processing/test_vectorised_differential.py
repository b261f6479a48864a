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
    # functions of bigints: exact, and the same error past the range
    ("SELECT ABS(v) AS w FROM s TIMESTAMP BY t", [-BIG - 1], "overflow"),
    ("SELECT ROUND(v, -1) AS w FROM s TIMESTAMP BY t", [BIG], "overflow"),
    ("SELECT ROUND(v, -2) AS w, ROUND(v, -2, 1) AS x FROM s TIMESTAMP BY t", [1234567890123456789],
     [{"w": 1234567890123456800, "x": 1234567890123456700}]),
    # a text past the range does not convert: TRY_CAST gives NULL (CAST fails the statement)
    ("SELECT TRY_CAST(CONCAT(CAST(v AS nvarchar(max)), '0') AS bigint) AS w, TRY_CAST('-9223372036854775808'"
     " AS bigint) AS x FROM s TIMESTAMP BY t", [BIG], [{"w": None, "x": -BIG - 1}]),
])
def test_bigint_overflow_is_an_error_on_both_paths(sql, values, expected) -> None:
    pm = get_plugin_manager(load_entrypoints=False).collect()
    col, row = _run_both(pm, sql, values)
    assert col == row == expected


@pytest.mark.parametrize("sql", ["SELECT v AS w FROM s", "SELECT v + 0 AS w FROM s",
                                 "SELECT SUM(v) AS w FROM s GROUP BY TumblingWindow(second, 10)", "SELECT * FROM s"])
def test_a_json_integer_past_bigint_is_a_deserialization_error_on_both_paths(sql) -> None:
    """The data types reference: reading a bigint outside the range fails to deserialize the
    event (InputDeserializationError). It is dropped and counted; the other events keep their
    types (the first batch's 2**64 does not make the field a float). Only the fields a query
    reads are checked, on both paths (the typed decode reads no other): ``SELECT *`` reads
    ``other`` too and drops that event, the others keep it."""
    pm = get_plugin_manager(load_entrypoints=False).collect()
    bodies = [b'{"v": 18446744073709551616}', b'{"v": 9223372036854775808}', b'{"v": -9223372036854775809}',
              b'{"v": 5, "s": "12345678901234567890123"}', b'{"v": -9223372036854775808}',
              b'{"v": 7, "other": 9223372036854775808}']
    star = sql == "SELECT * FROM s"
    for columnar in (True, False):
        rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(0, 0, "adjust"), columnar=columnar)
        rt.feed_bodies("s", bodies, [1_000_000 * (i + 1) for i in range(len(bodies))])
        rt.flush()
        got = [r.get("w", r.get("v")) for r in rt.take()["output"]]
        expected = [5 - BIG - 1 + 7] if "SUM" in sql else [5, -BIG - 1] + ([] if star else [7])
        assert got == expected, (sql, columnar, got)
        assert all(type(v) is int for v in got)
        counters = rt.counters.as_dict()
        assert counters["deserialization_errors"] == 3 + star, counters
        assert "9223372036854775808 is outside the bigint range" in str(counters["error_samples"])


def _same_rows_vectorised_and_row(pm, sql, batches, policy, rng: random.Random) -> None:
    """The query runs vectorised on one path and row by row on the other, with the same rows
    and counters (arrival times given or not, one input partition or three, as ``rng`` picks)."""
    with_arrivals = rng.random() < 0.5
    parts = rng.random() < 0.5
    col, mode_c = _outcome(pm, sql, batches, True, with_arrivals, policy, parts)
    row, mode_r = _outcome(pm, sql, batches, False, with_arrivals, policy, parts)
    assert mode_c == "vectorised" and mode_r == "row", sql
    assert col == row, (sql, with_arrivals, policy, parts)


ANALYTIC = ["LAG(v) OVER (LIMIT DURATION(second, 2))", "LAG(v) OVER (PARTITION BY k LIMIT DURATION(second, 3))",
            "LAG(v, 2) OVER (PARTITION BY k LIMIT DURATION(minute, 1))",
            "LAG(k, 1, 'none') OVER (PARTITION BY k LIMIT DURATION(second, 1))",
            "LAG(v, 1, 0) OVER (PARTITION BY k, v LIMIT DURATION(second, 5))",
            "LAST(v) OVER (PARTITION BY k LIMIT DURATION(second, 2))", "LAG(t) OVER (LIMIT DURATION(hour, 1))"]


@pytest.mark.parametrize("seed", range(6))
def test_lag_and_last_same_rows_on_both_paths(seed) -> None:
    """LAG/LAST run vectorised (VectorAnalytic) and row by row on the same batches: the same
    rows and counters, also where a batch falls back to the row implementation (keys or
    values of mixed types carry over between batches through the shared state)."""
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rng = random.Random(100 + seed)
    for _ in range(10):
        calls = rng.sample(ANALYTIC, rng.randrange(1, 3))
        items = ", ".join(f"{c} AS a{i}" for i, c in enumerate(calls))
        where = rng.choice(["", "", f" WHERE {calls[0]} IS NOT NULL", " WHERE v > 1"])
        sql = f"SELECT k, v, {items} FROM s TIMESTAMP BY t{where}"
        batches = _batches(rng)
        policy = OrderingPolicy.from_seconds(late=rng.choice([0, 5]), ooo=rng.choice([0, 3]), action="adjust")
        _same_rows_vectorised_and_row(pm, sql, batches, policy, rng)


def test_vectorised_lag_continues_from_a_snapshot() -> None:
    pm = get_plugin_manager(load_entrypoints=False).collect()
    sql = "SELECT k, v, LAG(v, 2, -1) OVER (PARTITION BY k LIMIT DURATION(second, 30)) AS p FROM s TIMESTAMP BY t"
    bodies = [orjson.dumps({"t": f"2024-01-01T00:00:{i:02d}Z", "k": "ab"[i % 2], "v": i}) for i in range(20)]
    whole = compile_query(sql, pm).runtime()
    whole.feed_bodies("s", bodies)
    whole.flush()
    expected = whole.take()["output"]
    first = compile_query(sql, pm).runtime()
    first.feed_bodies("s", bodies[:9])
    got = first.take()["output"]
    second = compile_query(sql, pm).runtime()
    second.restore(first.snapshot())
    second.feed_bodies("s", bodies[9:])
    second.flush()
    got += second.take()["output"]
    assert second.mode == "vectorised"
    assert got == expected
    assert [r["p"] for r in expected[:6]] == [-1, -1, -1, -1, 0, 1]  # two back in its own key


SLIDING_AGGS = ["COUNT(*)", "COUNT(v)", "SUM(v)", "AVG(v)", "SUM(CAST(v AS float))", "AVG(CAST(v AS float))"]


def _sliding_batches(rng: random.Random, keys: list):
    """Events on whole and half seconds (ties in time; exits of one event exactly at entries
    of others: T = ts + size on the window's edge), NULL and absent keys, out of order and
    late ones (the ordering policy adjusts or drops them), over several batches."""
    base = 1_704_067_200
    t = 0.0
    out = []
    for _ in range(rng.randrange(1, 5)):
        bodies, arrivals = [], []
        for _ in range(rng.randrange(0, 30)):
            t += rng.choice([0, 0, 0.5, 1, 1, 2, 3])
            et = t - (rng.choice([1, 2, 3, 5]) if rng.random() < 0.2 else 0)
            ev: dict = {"t": f"2024-01-01T00:{int(et // 60):02d}:{et % 60:09.6f}Z"}
            if rng.random() < 0.9:
                ev["k"] = rng.choice(keys)
                ev["k2"] = rng.choice([1, 2, None])
            if rng.random() < 0.9:
                ev["v"] = rng.choice([1, 2, 3, 2.5, -4, None, 10, 0.1])
            bodies.append(orjson.dumps(ev))
            arrivals.append(int((base + t + rng.random() * 3) * 1e6))
        out.append((bodies, arrivals))
    return out


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_sliding_windows_same_rows_on_both_paths(seed, pack, monkeypatch) -> None:
    """SlidingWindow's vectorised sweep (per-key prefix sums found by binary search, no joins)
    against the row implementation: no key, one text key (with NULL), two keys (one of them
    numeric), HAVING and WHERE; with ``pack`` off the times are ranked before (key, time) is
    packed, as for keys x time spans past an int64."""
    from headwater.services.processing.exec.vector import VectorAggregate

    if not pack:
        monkeypatch.setattr(VectorAggregate, "PACK_LIMIT", 0)
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rng = random.Random(300 + seed)
    for _ in range(10):
        aggs = ", ".join(f"{a} AS a{i}" for i, a in enumerate(rng.sample(SLIDING_AGGS, rng.randrange(1, 4))))
        key = rng.choice(["", "k, ", "k, k2, ", "k2, "])
        size = rng.choice(["SlidingWindow(second, 3)", "SlidingWindow(second, 1)", "SlidingWindow(ms, 2500)"])
        where = rng.choice(["", "", " WHERE v > 1", " WHERE k IS NULL OR v <= 2.5"])
        having = rng.choice(["", "", " HAVING COUNT(*) > 1"])
        sql = f"SELECT {key}{aggs}, System.Timestamp() AS e FROM s TIMESTAMP BY t{where} GROUP BY {key}{size}{having}"
        batches = _sliding_batches(rng, rng.choice([["a", "b", None], ["a"], ["a", "b", "c", "d", None]]))
        policy = OrderingPolicy.from_seconds(late=rng.choice([0, 1, 5]), ooo=rng.choice([0, 1, 3]),
                                             action=rng.choice(["adjust", "drop"]))
        _same_rows_vectorised_and_row(pm, sql, batches, policy, rng)


def test_sliding_window_edges_and_ties() -> None:
    """The instants of a sliding window of 2 s: each entry and each exit (ts + 2 s, the window
    (T - 2 s, T] no longer holding it), several events at one instant counted together.

    a: 1 1 2 . 3 ...      events at 1, 1, 2, 3 (s); exits at 3, 3, 4, 5
    b:   . 2 ...          one event at 2; exit at 4 (empty window: no row)
    """
    pm = get_plugin_manager(load_entrypoints=False).collect()
    sql = ("SELECT k, COUNT(*) AS n, SUM(v) AS s, System.Timestamp() AS e FROM s TIMESTAMP BY t "
           "GROUP BY k, SlidingWindow(second, 2)")
    evs = [("a", 1, 1), ("a", 1, 2), ("a", 2, 4), ("b", 2, 8), ("a", 3, 16)]
    bodies = [orjson.dumps({"k": k, "t": f"2024-01-01T00:00:0{s}Z", "v": v}) for k, s, v in evs]
    got = {}
    for columnar in (True, False):
        rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(0, 0, "adjust"), columnar=columnar)
        rt.feed_bodies("s", bodies[:3], None)
        rt.feed_bodies("s", bodies[3:], None)
        rt.flush()
        got[columnar] = sorted((r["e"][17:19], r["k"], r["n"], r["s"]) for r in format_rows(rt.take()["output"]))
    assert got[True] == got[False] == [("01", "a", 2, 3), ("02", "a", 3, 7), ("02", "b", 1, 8),
                                       ("03", "a", 2, 20), ("04", "a", 1, 16)]


def test_open_windows_partials_merge_when_they_close() -> None:
    """A tumbling window's partial aggregates from several batches, while earlier windows
    close in between, come out as one row per key (merged when the window closes), the
    same as the row path.

    batch 1: a@1 b@2 a@11     window (0, 10] closes at the watermark 11: a=1, b=1
    batch 2: a@12 c@13 a@21   (10, 20] still open at 21's watermark: merged with batch 1's a@11
    batch 3: a@14 b@22        a late one for (10, 20] is dropped (no tolerance): a=2, c=1
    """
    pm = get_plugin_manager(load_entrypoints=False).collect()
    sql = ("SELECT k, COUNT(*) AS n, SUM(v) AS s, System.Timestamp() AS e FROM s TIMESTAMP BY t "
           "GROUP BY k, TumblingWindow(second, 10)")
    feeds = [[("a", 1), ("b", 2), ("a", 11)], [("a", 12), ("c", 13), ("a", 21)], [("a", 14), ("b", 22)]]
    got = {}
    for columnar in (True, False):
        rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(0, 0, "drop"), columnar=columnar)
        for feed in feeds:
            rt.feed_bodies("s", [orjson.dumps({"k": k, "v": s, "t": f"2024-01-01T00:00:{s:02d}Z"}) for k, s in feed])
        rt.flush()
        got[columnar] = sorted((r["e"][17:19], r["k"], r["n"], r["s"]) for r in format_rows(rt.take()["output"]))
    assert got[True] == got[False] == [("10", "a", 1, 1), ("10", "b", 1, 2), ("20", "a", 2, 23),
                                       ("20", "c", 1, 13), ("30", "a", 1, 21), ("30", "b", 1, 22)]
