"""The vectorised operators and the row path give the same rows (and both survive snapshot/restore)."""

from __future__ import annotations

import orjson
import pytest

from headwater.hookspecs import hookimpl
from headwater.perf.common import QUERIES, trip_batches
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import QueryRuntimeError, compile_query, format_rows

EXTRA = {
    "avg_min_max": ("SELECT startLocation, endLocation, AVG(distance) AS a, MIN(CAST(fare AS float)) AS lo, MAX(CAST(fare AS bigint)) AS hi, "
                    "COUNT(distance) AS c, System.Timestamp() AS e FROM trips TIMESTAMP BY createdAt "
                    "GROUP BY startLocation, endLocation, TumblingWindow(second, 5, -1)"),
    "session_global": ("SELECT COUNT(*) AS n, SUM(distance) AS d FROM trips TIMESTAMP BY createdAt "
                       "GROUP BY SessionWindow(second, 2, 7)"),
    "hopping_offset": ("SELECT System.Timestamp() AS e, COUNT(DISTINCT startLocation) AS cities FROM trips "
                       "TIMESTAMP BY createdAt GROUP BY HoppingWindow(Duration(second, 9), Hop(second, 3), "
                       "Offset(second, 1))"),
}
ALL = {**QUERIES, **EXTRA}


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


@pytest.fixture(scope="module")
def batches():
    # 40k events, 4 s of event time per 10k; a sprinkle of gaps for sessions
    out = []
    for i, b in enumerate(trip_batches(40_000, 5_000, rate_per_s=2_500)):
        if i % 3 == 2:
            b = b[:2000]  # a gap in event time
        out.append(b)
    return out


def _canon(rows):
    def c(v):
        if isinstance(v, float):
            return round(v, 6)
        return v
    return sorted((tuple(sorted((k, c(v)) for k, v in r.items())) for r in format_rows(rows)), key=repr)


def _run(pm, sql, batches, columnar, split=None):
    compiled = compile_query(sql, pm)
    rt = compiled.runtime(columnar=columnar)
    rows = []
    for i, b in enumerate(batches):
        if split is not None and i == split:
            blob = rt.snapshot()
            rt = compiled.runtime(columnar=columnar)
            rt.restore(blob)
        rt.feed_bodies("trips", b)
        rows += rt.take()[compiled.outputs[0]]
    rt.flush()
    rows += rt.take()[compiled.outputs[0]]
    return rows, rt


@pytest.mark.parametrize("name", sorted(ALL))
def test_columnar_equals_row_path(pm, batches, name) -> None:
    col, rt_c = _run(pm, ALL[name], batches, True)
    row, rt_r = _run(pm, ALL[name], batches, False)
    assert rt_c.mode == "vectorised" and rt_r.mode == "row"
    assert col, "the query produced no rows"
    assert _canon(col) == _canon(row)


@pytest.mark.parametrize("columnar", [True, False])
def test_snapshot_restore_mid_stream(pm, batches, columnar) -> None:
    whole, _ = _run(pm, QUERIES["hopping"], batches, columnar)
    resumed, _ = _run(pm, QUERIES["hopping"], batches, columnar, split=3)
    assert _canon(whole) == _canon(resumed)


@pytest.mark.parametrize("columnar", [True, False])
def test_bad_bodies_are_counted_not_fatal(pm, columnar) -> None:
    compiled = compile_query(QUERIES["book"], pm)
    rt = compiled.runtime(columnar=columnar)
    bodies = [b'{"createdAt": "2024-01-01T00:00:01Z", "startLocation": "A"}', b"{not json",
              b'{"createdAt": "yesterday", "startLocation": "A"}', b'{"createdAt": "2024-01-01T00:00:02+00:00",'
              b' "startLocation": "A"}']
    rt.feed_bodies("trips", bodies)
    rt.flush()
    rows = rt.take()["output"]
    assert [r["trips"] for r in rows] == [2]
    assert rt.counters.conversion_errors == 1 and rt.counters.deserialization_errors == 1 and rt.counters.dropped == 2


@pytest.mark.parametrize("columnar", [True, False])
def test_failing_cast_stops_the_query(pm, columnar) -> None:
    compiled = compile_query(QUERIES["distinct"], pm)
    rt = compiled.runtime(columnar=columnar)
    body = orjson.dumps({"createdAt": "2024-01-01T00:00:01Z", "startLocation": "A", "tripId": "x", "fare": "abc"})
    with pytest.raises(QueryRuntimeError):
        rt.feed_bodies("trips", [body])
        rt.flush()


def test_out_of_order_batches_adjusted_the_same(pm) -> None:
    early = [orjson.dumps({"createdAt": f"2024-01-01T00:00:{s:02d}Z", "startLocation": "A"}) for s in (1, 9, 15)]
    late = [orjson.dumps({"createdAt": "2024-01-01T00:00:03Z", "startLocation": "A"})]
    outs = []
    for columnar in (True, False):
        rt = compile_query(QUERIES["book"], pm).runtime(columnar=columnar)
        rt.feed_bodies("trips", early)
        rt.feed_bodies("trips", late)  # older than newest - 0 s: adjusted to 00:00:15
        rt.flush()
        outs.append((_canon(rt.take()["output"]), rt.counters.out_of_order))
    assert outs[0] == outs[1]
    assert outs[0][1] == 1


@pytest.mark.parametrize("name", ["book", "hopping", "session"])
def test_events_out_of_order_inside_batches_equal_the_row_path(pm, batches, name) -> None:
    """Batches in time order skip the sorts; shuffled ones are sorted, and windows closing
    in the middle of a batch's partials split them: both give the row path's rows."""
    import random

    rng = random.Random(5)
    shuffled = [rng.sample(b, len(b)) for b in batches]
    for data in (batches, shuffled):
        col, _ = _run(pm, QUERIES[name], data, True)
        row, _ = _run(pm, QUERIES[name], data, False)
        assert col and _canon(col) == _canon(row)


def _with_arrivals(batches, seed=3):
    """Arrival = event time + a random delay (0-12 s), events in arrival order, some bodies
    that are JSON arrays of two events."""
    import random

    rng = random.Random(seed)
    out = []
    for b in batches:
        evs = [orjson.loads(x) for x in b]
        from headwater.functions import to_datetime, to_micros

        arr = [to_micros(to_datetime(e["createdAt"])) + int(rng.random() ** 3 * 12e6) for e in evs]
        order = sorted(range(len(evs)), key=lambda i: arr[i])
        bodies, arrivals = [], []
        for i in order:
            bodies.append(orjson.dumps(evs[i]))
            arrivals.append(arr[i])
        if len(bodies) > 4:
            bodies[1:3] = [b"[" + bodies[1] + b"," + bodies[2] + b"]"]
            arrivals[1:3] = [arrivals[2]]
        out.append((bodies, arrivals))
    return out


@pytest.mark.parametrize("name", ["book", "hopping", "session", "session_global"])
@pytest.mark.parametrize("action", ["adjust", "drop"])
def test_columnar_equals_row_path_with_arrival_times(pm, batches, name, action) -> None:
    from headwater.services.processing.engine import OrderingPolicy

    policy = OrderingPolicy.from_seconds(late=5, ooo=3, action=action)
    fed = _with_arrivals(batches[:4])
    results = []
    for columnar in (True, False):
        compiled = compile_query(ALL[name], pm)
        rt = compiled.runtime(policy, columnar=columnar)
        rows = []
        for i, (bodies, arrivals) in enumerate(fed):
            rt.feed_bodies("trips", bodies, arrivals)
            rows += rt.take()["output"]
            if i == 1:
                rt.advance_time(arrivals[-1] + 2_000_000)
        rt.flush()
        rows += rt.take()["output"]
        counters = {k: v for k, v in rt.counters.as_dict().items() if k not in ("samples", "error_samples")}
        results.append((_canon(rows), counters, rt.mode))
    assert results[0][2] == "vectorised" and results[1][2] == "row"
    assert results[0][1] == results[1][1]
    assert results[0][1]["late"] > 0 and results[0][1]["out_of_order"] > 0
    assert results[0][0] == results[1][0]


SPELLINGS = {
    "plain": "SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 10)",
    "alias": "SELECT a.k, COUNT(*) AS n FROM i a TIMESTAMP BY a.t GROUP BY a.k, TumblingWindow(second, 10)",
    "upper": "SELECT UPPER(k) AS k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY UPPER(k), TumblingWindow(second, 10)",
    "with": ("WITH s AS (SELECT k, t FROM i TIMESTAMP BY t) "
             "SELECT k, COUNT(*) AS n FROM s GROUP BY k, TumblingWindow(second, 10)"),
    "arrival": "SELECT k, COUNT(*) AS n FROM i GROUP BY k, TumblingWindow(second, 10)",
    "like": ("SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t WHERE k LIKE 'K_%' OR k LIKE '%1' "
             "GROUP BY k, TumblingWindow(second, 10)"),
    "snapshot": "SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, System.Timestamp()",
    "sliding": ("SELECT k, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS a, COUNT(v) AS c, System.Timestamp() AS e "
                "FROM i TIMESTAMP BY t GROUP BY k, SlidingWindow(second, 5)"),
    "sliding_having": ("SELECT COUNT(*) AS n, System.Timestamp() AS e FROM i TIMESTAMP BY t "
                       "GROUP BY SlidingWindow(second, 3) HAVING SUM(v) > 10"),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_every_spelling_plans_vectorised_with_the_row_results(pm, name) -> None:
    """The issue's table: a.k, UPPER(k), a WITH step, no TIMESTAMP BY, LIKE plan alike."""
    events = [{"k": f"k{i % 3}", "t": f"2024-01-01T00:00:{(i * 7) % 50:02d}Z", "v": None if i % 11 == 0 else i % 7}
              for i in range(200)]
    out = []
    for vectorize in (True, False):
        rt = compile_query(SPELLINGS[name], pm).runtime(vectorize=vectorize)
        for j in range(0, 200, 50):
            rt.feed("i", events[j:j + 50], [1_704_067_200_000_000 + 1_000_000 * j] * 50)
        rt.flush()
        out.append((sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in format_rows(rt.take()["output"])),
                    rt.mode))
    assert out[0][1] == "vectorised" and out[1][1] == "row"
    assert out[0][0] == out[1][0] and out[0][0]


EXPRESSIONS = [
    "CASE WHEN v > 2 THEN 'big' WHEN v IS NULL THEN 'none' ELSE 'small' END",
    "CASE s WHEN 'A' THEN 1 WHEN 'b' THEN 2 ELSE NULL END", "v / 2", "v / w", "LEN(s)", "s LIKE 'a%'",
    "s NOT LIKE '_b%'", "s LIKE '%.%'", "v BETWEEN 1 AND 3", "s IN ('a', 'B', 'x')", "v > '2'", "s <> 'A'", "s + 'x'",
    "-v * 3 + 1", "v > 1 AND s = 'a' OR v IS NULL", "UPPER(s)", "CAST(v AS float) / 4", "TRY_CAST(s AS float)",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_vectorised_expressions_equal_the_row_implementation(pm, expr) -> None:
    rows = [{"v": 1, "w": 2, "s": "a.b"}, {"v": 3, "w": 1, "s": "A"}, {"v": None, "w": 4, "s": "xb"},
            {"v": 2, "w": 2, "s": None}, {"v": 5, "w": 5, "s": "B"}]
    zero = [{"v": 1, "w": 0, "s": "a"}]
    results = []
    for vectorize in (True, False):
        got = []
        for batch in (rows, zero):
            rt = compile_query(f"SELECT {expr} AS x FROM i", pm).runtime(vectorize=vectorize)
            try:
                rt.feed("i", batch, [1_704_067_200_000_000] * len(batch))
                rt.flush()
                got.append([r["x"] for r in rt.take()["output"]])
            except QueryRuntimeError as exc:
                got.append(type(exc).__name__)
        results.append(got)
    assert results[0] == results[1]


STAR_BATCHES = [
    [{"a": 1, "b": "x", "t": "2024-01-01T00:00:01Z"}, {"a": 2, "b": "y", "t": "2024-01-01T00:00:02Z"}],  # typed
    [{"a": 3, "t": "2024-01-01T00:00:03Z"}, {"a": None, "b": "z", "t": "2024-01-01T00:00:04Z"}],  # absent, NULL
    [{"a": {"n": [1, 2]}, "b": "w", "t": "2024-01-01T00:00:05Z"}, {"a": 1.5, "B": 2, "t": "2024-01-01T00:00:06Z"}],
    [{"a": 4, "b": "v", "t": "2024-01-01T00:00:07Z", "extra": True}],
]


@pytest.mark.parametrize("query", [
    "SELECT * FROM i TIMESTAMP BY t",
    "SELECT *, UPPER(b) AS u FROM i WHERE a > 1",
    "SELECT b AS first, * FROM i TIMESTAMP BY t",
    "SELECT *, PartitionId FROM i",
])
def test_select_star_vectorised_keeps_records_as_they_are(pm, query) -> None:
    """Typed batches run as columns; batches with absent fields, NULLs, records or mixed types
    keep each record as it came (no field added, no type changed), as the row operator does."""
    results = []
    for vectorize in (True, False):
        rt = compile_query(query, pm).runtime(vectorize=vectorize)
        for n, batch in enumerate(STAR_BATCHES):
            bodies = [orjson.dumps(e) for e in batch]
            rt.feed_bodies("i", bodies, [1_704_067_200_000_000 + 1_000_000 * n] * len(bodies),
                           partition_ids=[str(n % 2)] * len(bodies))
        rt.flush()
        results.append(([orjson.dumps(r) for r in format_rows(rt.take()["output"])], rt.mode))
    assert results[0][1] == "vectorised" and results[1][1] == "row"
    assert results[0][0] == results[1][0] and results[0][0]


def test_select_star_records_survive_a_checkpoint(pm) -> None:
    q = "SELECT * FROM i TIMESTAMP BY t"
    whole, resumed = compile_query(q, pm).runtime(), compile_query(q, pm).runtime()
    for n, batch in enumerate(STAR_BATCHES):
        for rt in (whole, resumed):
            rt.feed_bodies("i", [orjson.dumps(e) for e in batch])
        if n == 2:
            blob = resumed.snapshot()
            resumed = compile_query(q, pm).runtime()
            resumed.restore(blob)
    out = []
    for rt in (whole, resumed):
        rt.flush()
        out.append(sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in format_rows(rt.take()["output"])))
    assert out[0] == out[1] and len(out[0]) == 7


def test_a_function_plugin_with_a_vectorised_hook_runs_it(pm) -> None:
    from headwater.functions import ScalarFunction
    from headwater.pluginmanager import get_plugin_manager

    calls = []

    class Plugin:
        @hookimpl
        def register_functions(self, register):
            def row(v):
                calls.append(v)
                return None if v is None else v * 2
            register(ScalarFunction("Twice", row, 1, 1, vectorized=lambda e: e * 2))

    pm2 = get_plugin_manager([("twice", Plugin())], load_entrypoints=False).collect()
    out = {}
    for vectorize in (True, False):
        rt = compile_query("SELECT Twice(v) AS x FROM i", pm2).runtime(vectorize=vectorize)
        rt.feed("i", [{"v": 1}, {"v": 4}], [1_704_067_200_000_000] * 2)
        rt.flush()
        out[vectorize] = [r["x"] for r in rt.take()["output"]]
    assert out[True] == out[False] == [2, 8]
    assert calls == [1, 4]  # only the row implementation called the row function


def test_a_field_of_records_in_one_batch_and_booleans_in_the_next(pm) -> None:
    """One batch reads ``b`` as Python values (a record), the next as booleans: the batches
    concatenate as values, as the row path has them (the cast to text raised out of the engine)."""
    sql = "SELECT s, b FROM e TIMESTAMP BY t"
    batches = [[b'{"t": "2024-01-01T00:00:01Z", "s": "x", "b": {"a": 1}}'],
               [b'{"t": "2024-01-01T00:00:02Z", "s": "y", "b": true}']]
    out = {}
    for columnar in (True, False):
        rt = compile_query(sql, pm).runtime(columnar=columnar)
        for bodies in batches:
            rt.feed_bodies("e", bodies, [1_704_067_205_000_000] * len(bodies))
        rt.flush()
        out[columnar] = format_rows(rt.take()["output"])
    assert out[True] == out[False] == [{"s": "x", "b": {"a": 1}}, {"s": "y", "b": True}]
