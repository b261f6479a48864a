"""The runtime a job drives: batches per input with arrival times, idle watermarks,
ordering policies, counters, snapshot/restore, UDFs and UDAs through the hooks."""

from __future__ import annotations

import pytest

from headwater.errors import QueryCompileError
from headwater.functions import format_datetime, from_micros, uda, udf
from headwater.hookspecs import hookimpl
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, compile_query, format_rows
from headwater.services.processing.testing import run_query

S = 1_000_000
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z
COUNT10 = "SELECT COUNT(*) AS n, System.Timestamp() AS e FROM i TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)"


def ev(sec: float, **kw) -> dict:
    return {"t": format_datetime(from_micros(T0 + int(sec * S))), **kw}


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


def test_window_closes_only_when_the_watermark_passes(pm) -> None:
    rt = compile_query(COUNT10, pm).runtime(OrderingPolicy.from_seconds(late=5, ooo=0))
    rt.feed("i", [ev(1), ev(4)], arrival_times=[T0 + 1 * S, T0 + 4 * S])
    assert rt.take() == {"output": []}
    rt.feed("i", [ev(11)], arrival_times=[T0 + 11 * S])
    assert [r["n"] for r in rt.take()["output"]] == [2]


def test_idle_input_closes_windows_with_the_arrival_clock(pm) -> None:
    rt = compile_query(COUNT10, pm).runtime(OrderingPolicy.from_seconds(late=5, ooo=3))
    rt.feed("i", [ev(1)], arrival_times=[T0 + 1 * S])
    rt.advance_time(T0 + 14 * S)  # watermark = 14 - 5 = 9: not yet
    assert rt.take()["output"] == []
    rt.advance_time(T0 + 16 * S)  # watermark 11 > 10
    assert [r["n"] for r in rt.take()["output"]] == [1]


def test_late_events_adjusted_or_dropped(pm) -> None:
    q = "SELECT v, System.Timestamp() AS ts FROM i TIMESTAMP BY t"
    for action, expected in (("adjust", [(1, 5), (2, 25)]), ("drop", [(1, 5)])):
        rt = compile_query(q, pm).runtime(OrderingPolicy.from_seconds(late=15, ooo=0, action=action))
        rt.feed("i", [ev(5, v=1), ev(0, v=2)], arrival_times=[T0 + 5 * S, T0 + 40 * S])
        rt.flush()
        got = [(r["v"], (r["ts"] - from_micros(T0)).seconds) for r in rt.take()["output"]]
        assert got == expected
        assert rt.counters.late == 1
        assert rt.counters.dropped == (1 if action == "drop" else 0)


def test_out_of_order_within_tolerance_is_reordered(pm) -> None:
    q = "SELECT v FROM i TIMESTAMP BY t"
    rt = compile_query(q, pm).runtime(OrderingPolicy.from_seconds(late=60, ooo=10))
    rt.feed("i", [ev(10, v=1), ev(5, v=2), ev(12, v=3)], arrival_times=[T0 + 10 * S, T0 + 11 * S, T0 + 12 * S])
    rt.flush()
    assert [r["v"] for r in rt.take()["output"]] == [2, 1, 3]
    assert rt.counters.out_of_order == 0


def test_early_events_are_dropped(pm) -> None:
    rt = compile_query("SELECT v FROM i TIMESTAMP BY t", pm).runtime()
    rt.feed("i", [ev(600, v=1), ev(2, v=2)], arrival_times=[T0, T0 + 2 * S])
    rt.flush()
    assert [r["v"] for r in rt.take()["output"]] == [2]
    assert rt.counters.early == 1


def test_conversion_errors_are_counted_with_a_sample(pm) -> None:
    rt = compile_query("SELECT v FROM i TIMESTAMP BY t", pm).runtime()
    rt.feed("i", [{"t": "not a time", "v": 1}, {"v": 2}, ev(1, v=3)])
    rt.flush()
    assert [r["v"] for r in rt.take()["output"]] == [3]
    assert rt.counters.conversion_errors == 2 and "not a time" in rt.counters.samples[0]


def test_without_timestamp_by_the_arrival_time_is_the_timestamp(pm) -> None:
    rt = compile_query("SELECT v, System.Timestamp() AS ts FROM i", pm).runtime()
    rt.feed("i", [{"v": 1}], arrival_times=[T0 + 7 * S])
    rt.flush()
    assert format_rows(rt.take()["output"]) == [{"v": 1, "ts": "2024-01-01T00:00:07.0000000Z"}]


def test_snapshot_restore_keeps_open_windows_and_joins(pm) -> None:
    q = ("SELECT a.k, COUNT(*) AS n FROM i a TIMESTAMP BY t JOIN j b TIMESTAMP BY t "
         "ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 0 AND 5 GROUP BY a.k, TumblingWindow(second, 30)")
    compiled = compile_query(q, pm)
    rt = compiled.runtime()
    rt.feed("i", [ev(1, k="x"), ev(2, k="y")], [T0 + S, T0 + 2 * S])
    blob = rt.snapshot()
    rt2 = compiled.runtime()
    rt2.restore(blob)
    rt2.feed("j", [ev(3, k="x"), ev(4, k="x")], [T0 + 3 * S, T0 + 4 * S])
    rt2.flush()
    assert rt2.take()["output"] == [{"k": "x", "n": 2}]


class _Plugin:
    @hookimpl
    def register_functions(self, register):
        register(udf("Double", lambda x: None if x is None else x * 2.0))
        register(uda("Product", lambda: 1, lambda acc, v: acc * v if v is not None else acc))


def test_udf_and_uda_through_the_hooks() -> None:
    pm = get_plugin_manager([("mine", _Plugin())], load_entrypoints=False)
    out = run_query("SELECT UDA.Product(UDF.Double(v)) AS p FROM i TIMESTAMP BY t "
                    "GROUP BY TumblingWindow(minute, 1)", {"i": [ev(1, v=1), ev(2, v=3)]}, pm=pm)
    assert out == {"output": [{"p": 12.0}]}


def test_udf_failure_is_a_runtime_error() -> None:
    from headwater.services.processing.engine import QueryRuntimeError

    pm = get_plugin_manager([("mine", _Plugin())], load_entrypoints=False)
    with pytest.raises(QueryRuntimeError, match="UDF.Double"):
        run_query("SELECT UDF.Double(v) AS d FROM i", {"i": [{"v": "x"}]}, pm=pm)


def test_multiple_inputs_and_outputs_and_columns_named_as_written(pm) -> None:
    out = run_query("SELECT DeviceID, Location.Lat INTO a FROM i\nSELECT v INTO b FROM j",
                    {"i": [{"DeviceId": 1, "Location": {"Lat": 2}}], "j": [{"v": 3}]}, pm=pm)
    assert out == {"a": [{"DeviceID": 1, "Lat": 2}], "b": [{"v": 3}]}


@pytest.mark.parametrize("columnar", [True, False])
def test_partitions_keep_their_own_event_order(pm, columnar) -> None:
    # partition 1 lags 20 s behind partition 0: its events are not out of order
    rt = compile_query(COUNT10, pm).runtime(OrderingPolicy.from_seconds(late=60, ooo=0), columnar=columnar)
    rt.feed("i", [ev(25), ev(5), ev(26), ev(6)], arrival_times=[T0 + 30 * S] * 4, partition_ids=[0, 1, 0, 1])
    assert rt.take()["output"] == []  # partition 1's watermark (6 s) holds the windows open
    rt.flush()
    assert sorted(r["n"] for r in rt.take()["output"]) == [2, 2]
    assert rt.counters.out_of_order == 0


def test_lag_star_is_the_previous_event(pm) -> None:
    out = run_query("SELECT a, LAG(*) OVER (LIMIT DURATION(hour, 1)) AS prev FROM i TIMESTAMP BY t",
                    {"i": [ev(1, a=1), ev(2, a=2)]}, pm=pm)
    assert out["output"][1]["prev"] == {"t": "2024-01-01T00:00:01.0000000Z", "a": 1}


@pytest.mark.parametrize("columnar", [True, False])
def test_take_with_time(pm, columnar) -> None:
    rt = compile_query(COUNT10, pm).runtime(columnar=columnar)
    rt.feed("i", [ev(1), ev(12)])
    rt.flush()
    assert [(ts - T0) // S for ts, _ in rt.take_with_time()["output"]] == [10, 20]


def test_join_index_never_hides_a_match(pm) -> None:
    # equality as the comparison operators define it: text numbers = numbers, case-insensitive
    # text, datetime text = datetimes; NULL never matches
    left = [ev(1, k="10"), ev(2, k="Oslo"), ev(3, k="2024-01-01T00:00:00Z"), ev(4, k=None), ev(5, k=7.0)]
    right = [ev(1, k=10), ev(2, k="OSLO"), ev(3, k="2024-01-01T00:00:00.000Z"), ev(4, k=None), ev(5, k=7)]
    q = ("SELECT a.k AS ak, b.k AS bk FROM l a TIMESTAMP BY t JOIN r b TIMESTAMP BY t "
         "ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN -10 AND 10")
    out = run_query(q, {"l": left, "r": right}, pm=pm)["output"]
    assert sorted((str(r["ak"]), str(r["bk"])) for r in out) == sorted([("10", "10"), ("Oslo", "OSLO"), ("7.0", "7")])
    q2 = q.replace("a.k = b.k", "a.k = CAST(b.k AS datetime)").replace("b.k AS bk", "b.t AS bk")
    out = run_query(q2, {"l": left, "r": right[2:3]}, pm=pm)["output"]
    assert [r["ak"] for r in out] == ["2024-01-01T00:00:00Z"]  # text vs datetime: compared as times
    refs = {"rules": [{"k": 10, "v": "ten"}, {"k": "oslo", "v": "city"}]}
    out = run_query("SELECT a.k, r.v FROM l a TIMESTAMP BY t LEFT JOIN rules r ON r.k = a.k",
                    {"l": left}, references=refs, pm=pm)["output"]
    assert sorted((str(r["k"]), str(r["v"])) for r in out) == sorted([
        ("10", "ten"), ("Oslo", "city"), ("2024-01-01T00:00:00Z", "None"), ("None", "None"), ("7.0", "None")])


def test_analytic_state_forgets_idle_partitions(pm) -> None:
    q = "SELECT k, LAG(k) OVER (PARTITION BY k LIMIT DURATION(second, 5)) AS p FROM i TIMESTAMP BY t"
    for vectorize in (True, False):
        rt = compile_query(q, pm).runtime(vectorize=vectorize)
        for n in range(40):  # 40 batches, a new key each second
            rt.feed("i", [ev(n, k=f"key{n}")])
        from headwater.services.processing.exec.analytic import Analytic

        op = rt.statements[0]
        if vectorize:  # the vectorised LAG's state: a table of each live key's last entry
            assert op.analytic.tables[0].height < 25
        else:
            stage = next(s for s in op.stages if isinstance(s, Analytic))
            assert len(stage.history[0]) < 25


def test_session_state_forgets_closed_partitions(pm) -> None:
    q = ("SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t "
         "GROUP BY k, SessionWindow(second, 2, 10) OVER (PARTITION BY k) HAVING COUNT(*) > 0")
    rt = compile_query(q, pm).runtime(columnar=False)
    for n in range(30):
        rt.feed("i", [ev(n, k=f"key{n}")])
    from headwater.services.processing.exec.window_aggregate import WindowAggregate

    stage = next(s for op in rt.statements for s in op.stages if isinstance(s, WindowAggregate))
    assert len(stage.logics[0]) < 10
    rt.flush()
    assert len(rt.take()["output"]) == 30


def test_date_part_of_dateadd_datediff_is_no_column_in_a_grouped_select(pm) -> None:
    """Issue 11: DATEDIFF(minute, ...) in a grouped SELECT is not 'minute must be in GROUP BY'."""
    events = [{"k": "a", "t": "2024-01-01T00:00:01Z"}, {"k": "a", "t": "2024-01-01T00:02:02Z"}]
    out = run_query("SELECT k, DATEDIFF(second, MIN(t), MAX(t)) AS d, DATEPART(minute, System.Timestamp()) AS m "
                    "FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)", {"i": events}, pm=pm)
    assert out["output"] == [{"k": "a", "d": 121, "m": 10}]
    with pytest.raises(QueryCompileError, match="t must be in GROUP BY"):
        compile_query("SELECT k, DATEDIFF(second, t, t) AS d FROM i TIMESTAMP BY t "
                      "GROUP BY k, TumblingWindow(minute, 10)", pm)


def test_the_input_name_as_a_value_is_the_whole_record(pm) -> None:
    """Issue 11: COUNT(input), COUNT(Input), COUNT(DISTINCT input) and a UDF of the input see
    the record; a field named like the input stays that field."""
    events = [{"k": "a", "t": "2024-01-01T00:00:01Z"}, {"k": "a", "t": "2024-01-01T00:00:01Z"},
              {"k": "b", "t": "2024-01-01T00:00:02Z"}]
    out = run_query("SELECT COUNT(input) AS a, COUNT(Input) AS b, COUNT(DISTINCT input) AS d FROM input "
                    "TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)", {"input": events}, pm=pm)
    assert out["output"] == [{"a": 3, "b": 3, "d": 2}]
    out = run_query("SELECT input AS whole FROM input", {"input": events[:1]}, pm=pm)
    assert out["output"] == [{"whole": events[0]}]
    out = run_query("SELECT temperature FROM temperature", {"temperature": [{"temperature": 21.5}]}, pm=pm)
    assert out["output"] == [{"temperature": 21.5}]
