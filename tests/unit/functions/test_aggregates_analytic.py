"""PERCENTILE_CONT/DISC, every documented TopOne form, CollectTop as an analytic function,
and AnomalyDetection_SpikeAndDip/ChangePoint, through the engine."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from headwater.errors import HeadwaterError, QueryCompileError
from headwater.services.processing.testing import run_query

# The reference's PERCENTILE_CONT example: service availability across regions.
REGIONS = [{"t": f"2024-01-01T00:00:0{i + 1}Z", "Regions": r, "ServiceAvailability": v, "k": k}
           for i, (r, v, k) in enumerate([("A", 0.98, 1), ("B", 0.93, 1), ("C", 0.78, 2), ("D", 0.99, 2),
                                          ("E", 0.89, 1)])]


def _one(sql: str, events=REGIONS) -> list[dict]:
    return run_query(sql, {"testInput": events})["output"]


def test_percentile_cont_documented_example() -> None:
    out = _one("SELECT PERCENTILE_CONT(0.95) OVER (ORDER BY serviceAvailability) AS p FROM testInput "
               "TIMESTAMP BY t GROUP BY SlidingWindow(hours, 1)")
    # the window holding all five regions (a sliding window also outputs as events leave)
    assert pytest.approx(0.988) in [r["p"] for r in out]
    out = _one("SELECT COUNT(*) AS n, PERCENTILE_DISC(0.95) OVER (ORDER BY serviceAvailability) AS p FROM testInput "
               "TIMESTAMP BY t GROUP BY SlidingWindow(hours, 1)")
    assert [r["p"] for r in out if r["n"] == 5] == [0.99]  # the reference's PERCENTILE_DISC example


def test_percentile_within_group_is_the_over_form() -> None:
    """T-SQL's WITHIN GROUP (ORDER BY ...) spelling gives what the documented OVER form gives;
    on another function, or with more than ORDER BY, it is a compile error with its position."""
    over = _one("SELECT PERCENTILE_CONT(0.95) OVER (ORDER BY ServiceAvailability) AS p,"
                " PERCENTILE_DISC(0.25) OVER (ORDER BY ServiceAvailability DESC) AS d"
                " FROM testInput TIMESTAMP BY t GROUP BY TumblingWindow(minute, 1)")
    within = _one("SELECT PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY ServiceAvailability) AS p,"
                  " PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY ServiceAvailability DESC) AS d"
                  " FROM testInput TIMESTAMP BY t GROUP BY TumblingWindow(minute, 1)")
    assert within == over == [{"p": pytest.approx(0.988), "d": 0.98}]
    for q, where, msg in [("SELECT SUM(x) WITHIN GROUP (ORDER BY x) FROM i", "column 15", "only for PERCENTILE_CONT"),
                          ("SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (x) FROM i", "column 43", "expected ORDER BY"),
                          ("SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x LIMIT DURATION(second, 1)) FROM i",
                           "column 29", "ORDER BY expression")]:
        with pytest.raises(QueryCompileError, match=f"{where}: .*{msg}"):
            run_query(q, {"i": []})


def test_percentiles_cont_disc_asc_desc_and_nulls() -> None:
    events = REGIONS + [{"t": "2024-01-01T00:00:06Z", "Regions": "F", "ServiceAvailability": None, "k": 2}]
    out = _one("SELECT PERCENTILE_CONT(0.5) OVER (ORDER BY ServiceAvailability) AS median,"
               " PERCENTILE_DISC(0.5) OVER (ORDER BY ServiceAvailability) AS disc,"
               " PERCENTILE_DISC(0.5) OVER (ORDER BY ServiceAvailability DESC) AS disc_desc,"
               " PERCENTILE_CONT(0.25) OVER (ORDER BY ServiceAvailability DESC) AS q_desc,"
               " PERCENTILE_CONT(0) OVER (ORDER BY ServiceAvailability) AS lo,"
               " PERCENTILE_DISC(1) OVER (ORDER BY ServiceAvailability) AS hi"
               " FROM testInput TIMESTAMP BY t GROUP BY TumblingWindow(minute, 1)", events)
    assert out == [{"median": 0.93, "disc": 0.93, "disc_desc": 0.93, "q_desc": 0.98, "lo": 0.78, "hi": 0.99}]
    out = _one("SELECT k, PERCENTILE_CONT(0.5) OVER (ORDER BY ServiceAvailability) AS m FROM testInput "
               "TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 1)")
    assert sorted((r["k"], round(r["m"], 6)) for r in out) == [(1, 0.93), (2, 0.885)]


def test_percentile_errors() -> None:
    with pytest.raises(QueryCompileError, match="between 0 and 1"):
        _one("SELECT PERCENTILE_CONT(1.5) OVER (ORDER BY ServiceAvailability) AS p FROM testInput "
             "GROUP BY TumblingWindow(minute, 1)")
    with pytest.raises(QueryCompileError, match="ORDER BY"):
        _one("SELECT PERCENTILE_DISC(0.5) AS p FROM testInput GROUP BY TumblingWindow(minute, 1)")
    with pytest.raises(HeadwaterError, match="bigint or float"):
        _one("SELECT PERCENTILE_CONT(0.5) OVER (ORDER BY Regions) AS p FROM testInput TIMESTAMP BY t "
             "GROUP BY TumblingWindow(minute, 1)")


def test_topone_documented_aggregate_forms() -> None:
    events = [{"t": "2024-01-01T00:00:01Z", "x": 2, "y": 3, "value": 5},
              {"t": "2024-01-01T00:00:02Z", "x": 4, "y": 5, "value": 9},
              {"t": "2024-01-01T00:00:03Z", "x": 1, "y": 1, "value": 9},
              {"t": "2024-01-01T00:00:12Z", "x": 7, "y": 1, "value": 1}]
    q = ("SELECT TopOne() OVER (ORDER BY value DESC) AS topEvent,"
         " TopOne(x * y) OVER (ORDER BY value DESC) AS topProduct,"
         " TopOne(x) OVER (ORDER BY value DESC, x ASC) AS tieBroken,"
         " TopOne(x) OVER (ORDER BY value ASC) AS lowest,"
         " TopOne(value) OVER (ORDER BY t DESC) AS latest"
         " FROM input TIMESTAMP BY t GROUP BY Tumbling(second, 10)")
    out = run_query(q, {"input": events})["output"]
    assert out[0]["topEvent"] == events[1] and out[0]["topProduct"] == 20
    assert out[0]["tieBroken"] == 1 and out[0]["lowest"] == 2 and out[0]["latest"] == 9
    assert out[1] == {"topEvent": events[3], "topProduct": 7, "tieBroken": 7, "lowest": 7, "latest": 1}


def test_topone_and_collecttop_analytic_forms() -> None:
    q = ("SELECT Regions,"
         " TopOne() OVER (PARTITION BY k ORDER BY ServiceAvailability DESC LIMIT DURATION(second, 10)) AS best,"
         " TopOne(Regions) OVER (ORDER BY ServiceAvailability ASC LIMIT DURATION(second, 2)) AS worst2s,"
         " TopOne(Regions) OVER (ORDER BY ServiceAvailability LIMIT DURATION(minute, 1)"
         " WHEN Regions <> 'C') AS worstNotC,"
         " CollectTop(2, Regions) OVER (ORDER BY ServiceAvailability DESC LIMIT DURATION(minute, 1)) AS top2"
         " FROM testInput TIMESTAMP BY t")
    out = {r["Regions"]: r for r in _one(q)}
    assert out["B"]["best"]["Regions"] == "A" and out["C"]["best"]["Regions"] == "C"
    assert out["D"]["best"]["Regions"] == "D" and out["E"]["best"]["Regions"] == "A"
    assert [out[r]["worst2s"] for r in "ABCDE"] == ["A", "B", "C", "C", "C"]
    assert out["D"]["worstNotC"] == "B"
    assert out["E"]["top2"] == [{"rank": 1, "value": "D"}, {"rank": 2, "value": "A"}]
    with pytest.raises(QueryCompileError, match="ORDER BY"):
        _one("SELECT TopOne() OVER (LIMIT DURATION(second, 10)) AS x FROM testInput")


def _series(values):
    return [{"t": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "sensorId": "s1", "temperature": v}
            for i, v in enumerate(values)]


def test_spike_and_dip_modes() -> None:
    values = [10 + 0.5 * math.sin(i / 3) for i in range(80)]
    values[50] += 15  # spike
    values[65] -= 12  # dip
    flagged = {}
    for mode in ("spikes", "dips", "spikesanddips"):
        out = run_query(
            "SELECT temperature, AnomalyDetection_SpikeAndDip(temperature, 99, 30, '" + mode + "')"
            " OVER (PARTITION BY sensorId LIMIT DURATION(minute, 5)) AS s FROM input TIMESTAMP BY t",
            {"input": _series(values)})["output"]
        assert all(set(r["s"]) == {"IsAnomaly", "Score"} for r in out)
        assert out[0]["s"] == {"IsAnomaly": 0, "Score": 0.5}  # no history yet
        flagged[mode] = {i for i, r in enumerate(out) if r["s"]["IsAnomaly"] == 1 and i > 20}
        assert all(0 <= r["s"]["Score"] <= 1 for r in out)
    assert flagged == {"spikes": {50}, "dips": {65}, "spikesanddips": {50, 65}}


def test_spike_and_dip_documented_query_shape() -> None:
    values = [20.0 + (i % 3) * 0.1 for i in range(40)] + [35.0]
    out = run_query(
        "WITH AnomalyDetectionStep AS (SELECT t AS time, CAST(temperature AS float) AS temp,"
        " AnomalyDetection_SpikeAndDip(CAST(temperature AS float), 95, 120, 'spikesanddips')"
        " OVER (LIMIT DURATION(second, 120)) AS SpikeAndDipScores FROM input TIMESTAMP BY t)"
        " SELECT time, temp, CAST(GetRecordPropertyValue(SpikeAndDipScores, 'Score') AS float) AS SpikeAndDipScore,"
        " CAST(GetRecordPropertyValue(SpikeAndDipScores, 'IsAnomaly') AS bigint) AS IsSpikeAndDipAnomaly"
        " INTO output FROM AnomalyDetectionStep", {"input": _series(values)})["output"]
    assert out[-1]["IsSpikeAndDipAnomaly"] == 1 and out[-1]["SpikeAndDipScore"] < 0.05
    assert sum(r["IsSpikeAndDipAnomaly"] for r in out) == 1


def test_change_point_flags_a_level_shift_not_noise() -> None:
    rng = random.Random(7)
    values = [rng.gauss(10, 1) for _ in range(60)] + [rng.gauss(20, 1) for _ in range(30)]
    q = ("SELECT temperature, AnomalyDetection_ChangePoint(temperature, 80, 30)"
         " OVER (PARTITION BY sensorId LIMIT DURATION(minute, 10)) AS cp FROM input TIMESTAMP BY t")
    out = run_query(q, {"input": _series(values)})["output"]
    hits = [i for i, r in enumerate(out) if r["cp"]["IsAnomaly"]]
    assert hits and 60 <= hits[0] <= 70, hits
    assert max(r["cp"]["Score"] for r in out[:60]) < 5
    lone = [rng.gauss(10, 1) for _ in range(90)]
    lone[70] = 30.0  # a spike is not a change point
    out = run_query(q, {"input": _series(lone)})["output"]
    assert not any(r["cp"]["IsAnomaly"] for r in out)


def test_anomaly_detection_argument_errors() -> None:
    base = "SELECT {} OVER (LIMIT DURATION(minute, 1)) AS a FROM input"
    for call, msg in [("AnomalyDetection_SpikeAndDip(x, 95, 120, 'up')", "mode"),
                      ("AnomalyDetection_SpikeAndDip(x, 120, 120, 'spikes')", "confidence"),
                      ("AnomalyDetection_ChangePoint(x, 95, 1)", "historySize"),
                      ("AnomalyDetection_ChangePoint(x, 95)", "constant argument"),
                      ("AnomalyDetection_ChangePoint(x, y, 30)", "constant argument")]:
        with pytest.raises(QueryCompileError, match=msg):
            run_query(base.format(call), {"input": []})


def test_spike_and_dip_scores_are_tails_of_the_adaptive_kde() -> None:
    """The documented model: an adaptive kernel density estimate. Bandwidths are narrow where
    the history is dense and wide in its tails, and the p-values are the tails of that density
    (checked against a numerical integral of it)."""
    from headwater.plugins.anomaly import adaptive_bandwidths, kde_pvalues

    rng = np.random.default_rng(3)
    hist = np.concatenate([rng.normal(0, 1, 60), [6.0, 7.5]])
    h = adaptive_bandwidths(hist)
    assert h[-2:].min() > 2 * np.median(h[:60])
    for x in (-2.0, 0.3, 4.0, 6.5):
        grid = np.linspace(-15, x, 40001)
        dens = (np.exp(-0.5 * ((grid[:, None] - hist) / h) ** 2) / (h * np.sqrt(2 * np.pi))).mean(axis=1)
        upper, lower = kde_pvalues(hist, x)
        assert lower == pytest.approx(np.trapezoid(dens, grid), abs=1e-5)
        assert upper + lower == pytest.approx(1.0)
