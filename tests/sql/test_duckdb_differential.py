"""Differential test: randomized tumbling and hopping workloads through Headwater and through
DuckDB SQL written for the same windows, with equal results.

Events have random keys, values (some NULL) and event times, and arrive out of order, late
by less than the late-arrival tolerance (the out-of-order tolerance covers the disorder), so
Stream Analytics' ordering policy keeps every event at its own time and the answer is the
plain event-time one DuckDB computes. Windows are Stream Analytics': ``(end - size, end]``,
ends on multiples of the hop from the epoch (no offset).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from headwater.functions import format_datetime
from headwater.services.processing.testing import run_query

BASE = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH_US = int(BASE.timestamp() * 1_000_000)
LATE = 8  # seconds: late-arrival and out-of-order tolerance; every delay is below it

AGGS_HW = "COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a, STDEV(v) AS sd"
AGGS_DB = ("count(*) AS n, count(v) AS nv, sum(v) AS s, min(v) AS lo, max(v) AS hi, avg(v) AS a, "
           "stddev_samp(v) AS sd")


def _events(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        et_ms = rng.randrange(0, 120_000)  # two minutes of event time, millisecond resolution
        delay_ms = rng.randrange(0, LATE * 1000 - 1)  # late, within the tolerance
        et = BASE + timedelta(milliseconds=et_ms)
        out.append({"k": rng.choice("abcd"), "v": None if rng.random() < 0.1 else rng.randrange(-50, 100),
                    "t": format_datetime(et), "__ArrivalTime": format_datetime(et + timedelta(milliseconds=delay_ms)),
                    "_us": et_ms * 1000})
    out.sort(key=lambda e: e["__ArrivalTime"])
    return out


def _duckdb(events: list[dict], size_s: int, hop_s: int) -> list[tuple]:
    size, hop = size_s * 1_000_000, hop_s * 1_000_000
    con = duckdb.connect()
    try:
        con.register("ev", pa.table({"k": pa.array([e["k"] for e in events], pa.string()),
                                     "v": pa.array([e["v"] for e in events], pa.int64()),
                                     "us": pa.array([EPOCH_US + e["_us"] for e in events], pa.int64())}))
        # each event belongs to the windows ending at the multiples of hop in [us, us + size)
        rows = con.execute(f"""
            WITH w AS (
                SELECT k, v, us, ((us + {hop} - 1) // {hop}) * {hop} + i * {hop} AS wend
                FROM ev, range(0, {size // hop}) AS r(i))
            SELECT k, wend, {AGGS_DB} FROM w WHERE wend - {size} < us AND us <= wend GROUP BY k, wend
        """).fetchall()
    finally:
        con.close()
    return [_canon((k, _iso(wend), *rest)) for k, wend, *rest in rows]


def _iso(us: int) -> str:
    return format_datetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us))


def _canon(row: tuple) -> tuple:
    return tuple(None if x is None else round(float(x), 6) if isinstance(x, float) else x for x in row)


def _headwater(events: list[dict], window: str) -> list[tuple]:
    payload = [{k: v for k, v in e.items() if k != "_us"} for e in events]
    out = run_query(f"SELECT k, System.Timestamp() AS w, {AGGS_HW} FROM Input TIMESTAMP BY t "
                    f"GROUP BY k, {window}", {"Input": payload}, arrival_time_field="__ArrivalTime",
                    late_arrival_tolerance=LATE, out_of_order_tolerance=LATE)["output"]
    rows = []
    for r in out:
        avg = r["a"]
        rows.append(_canon((r["k"], r["w"], r["n"], r["nv"], r["s"], r["lo"], r["hi"],
                            None if avg is None else float(avg), r["sd"])))
    return rows


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("window,size,hop", [("TumblingWindow(second, 10)", 10, 10),
                                             ("Tumbling(second, 7)", 7, 7),
                                             ("HoppingWindow(second, 20, 5)", 20, 5),
                                             ("HoppingWindow(Duration(second, 9), Hop(second, 3))", 9, 3)])
def test_windows_match_duckdb(seed: int, window: str, size: int, hop: int) -> None:
    rng = random.Random(seed * 7919 + size * 31 + hop)
    events = _events(rng, rng.randrange(50, 300))
    got, want = sorted(_headwater(events, window), key=repr), sorted(_duckdb(events, size, hop), key=repr)
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want):
        assert g[:8] == w[:8], (g, w)
        # STDEV: one value gives NULL in both; else equal to float precision
        assert (g[8] is None and w[8] is None) or math.isclose(g[8], w[8], rel_tol=1e-9, abs_tol=1e-9), (g, w)
