"""The vectorised JOIN (exec/vjoin.py) and the row JOIN (exec/join.py) give the same rows and
counters on random inputs, and the vectorised one continues from a snapshot mid-stream."""

from __future__ import annotations

import random

import orjson
import pytest

from headwater.perf.query import SUITE
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, compile_query, format_rows

T0 = 1_704_067_200_000_000
S = 1_000_000

QUERIES = {
    "inner": ("SELECT a.k, a.v AS av, b.v AS bv, DATEDIFF(second, a, b) AS d, System.Timestamp() AS ts "
              "FROM l a TIMESTAMP BY t JOIN r b TIMESTAMP BY t ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 0 AND 4"),
    "left": ("SELECT a.k, a.v AS av, b.v AS bv, System.Timestamp() AS ts FROM l a TIMESTAMP BY t "
             "LEFT OUTER JOIN r b TIMESTAMP BY t ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN -2 AND 3"),
    "reversed_extra": ("SELECT a.k AS ak, b.k AS bk, a.v + b.v AS s, System.Timestamp() AS ts FROM l a TIMESTAMP BY t "
                       "LEFT JOIN r b TIMESTAMP BY t ON b.k = a.k AND DATEDIFF(second, b, a) BETWEEN -3 AND 1 "
                       "AND a.v < b.v AND b.w LIKE 'x%'"),
    "two_keys_where": ("SELECT a.k, a.g, b.v, UPPER(b.w) AS w FROM l a TIMESTAMP BY t JOIN r b TIMESTAMP BY t "
                       "ON a.k = b.k AND UPPER(a.g) = b.g AND DATEDIFF(millisecond, a, b) BETWEEN -1500 AND 1500 "
                       "WHERE a.v >= 2 OR b.w IS NULL"),
    "no_key": ("SELECT a.v AS av, b.v AS bv FROM l a TIMESTAMP BY t JOIN r b TIMESTAMP BY t "
               "ON DATEDIFF(second, a, b) BETWEEN 0 AND 1 AND a.v = b.v"),
    "reference": ("SELECT a.k, a.v, f.name, System.Timestamp() AS ts FROM l a TIMESTAMP BY t "
                  "LEFT JOIN rules f ON a.k = f.k AND a.v >= f.min"),
    "reference_inner": "SELECT a.k, f.name FROM l a TIMESTAMP BY t JOIN rules f ON f.k = a.k",
}
KEYS = [1, 2, 2.0, "x", "X", "y", "2", None, "2024-01-01T00:00:00Z", 3]
RULES = [{"k": 1, "name": "one", "min": 0}, {"k": "x", "name": "ex", "min": 2}, {"k": "2", "name": "two", "min": 1},
         {"k": 3, "name": "three", "min": 5}, {"k": 2, "name": "deux", "min": 0}, {"k": "P", "name": "pe", "min": 1},
         {"k": "q", "name": "qu", "min": 0}]


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


def _events(rng: random.Random, n: int, keys: list) -> list[tuple[int, dict]]:
    """(arrival us, event): event times over ~40 s, arrivals 0-6 s after, in arrival order."""
    out = []
    for _ in range(n):
        t = T0 + rng.randrange(0, 40_000) * 1000
        ev = {"t": _iso(t), "k": rng.choice(keys), "g": rng.choice(["a", "B"]), "v": rng.randrange(0, 6),
              "w": rng.choice(["x1", "X2", "y", None])}
        out.append((t + rng.randrange(0, 6_000_000), ev))
    out.sort(key=lambda p: p[0])
    return out


def _iso(us: int) -> str:
    from headwater.functions import format_datetime, from_micros

    return format_datetime(from_micros(us))


def _canon(rows):
    return sorted((tuple(sorted((k, repr(v)) for k, v in r.items())) for r in format_rows(rows)), key=repr)


def _run(pm, sql: str, feed: list, vectorize: bool, *, splits: tuple[int, ...] = (), action: str = "adjust",
         keys_typed: bool = False):
    compiled = compile_query(sql, pm, references={"rules"})
    policy = OrderingPolicy.from_seconds(late=4, ooo=2, action=action)

    def make():
        return compiled.runtime(policy, reference_data={"rules": RULES}, vectorize=vectorize)
    rt = make()
    rows = []
    for i, (alias, batch) in enumerate(feed):
        if i in splits:  # a snapshot, restored into a new runtime that goes on
            blob = rt.snapshot()
            rt = make()
            rt.restore(blob)
        rt.feed_bodies(alias, [orjson.dumps(e) for _, e in batch], [a for a, _ in batch])
        rows += rt.take()["output"]
        if i % 5 == 4:
            rt.advance_time(batch[-1][0] + 3 * S)
            rows += rt.take()["output"]
    rt.flush()
    rows += rt.take()["output"]
    counters = {k: v for k, v in rt.counters.as_dict().items() if k not in ("samples", "error_samples")}
    return rows, counters, rt.mode


def _feed(seed: int, keys: list) -> list:
    """Batches of the two inputs, interleaved by arrival time."""
    rng = random.Random(seed)
    left, right = _events(rng, 200, keys), _events(rng, 200, keys)
    merged = sorted([(a, 0, e) for a, e in left] + [(a, 1, e) for a, e in right], key=lambda p: p[:2])
    feed, cur, batch = [], None, []
    for a, side, e in merged:
        if (side != cur or len(batch) >= rng.randrange(1, 60)) and batch:
            feed.append(("lr"[cur], batch))
            batch = []
        cur = side
        batch.append((a, e))
    feed.append(("lr"[cur], batch))
    return feed


#: text padded with what Python's strip() takes as white space, a datetime's or a number's
PADDED = ["\x1f2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "\x1c2024-01-01T00:00:00Z ", " 2 ", "\x1f2", 2, "p"]


@pytest.mark.parametrize("name", sorted(QUERIES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_join_equals_row_join(pm, name, seed) -> None:
    # mixed types and wild text; plain text keys; padded text
    keys = {1: KEYS, 2: ["p", "q", "r", "s"], 3: PADDED}[seed]
    feed = _feed(seed, keys)
    action = "drop" if seed == 2 else "adjust"
    vec, cv, mode_v = _run(pm, QUERIES[name], feed, True, action=action)
    row, cr, mode_r = _run(pm, QUERIES[name], feed, False, action=action)
    assert (mode_v, mode_r) == ("vectorised", "row")
    assert vec, "the query produced no rows"
    assert cv == cr
    assert _canon(vec) == _canon(row)


@pytest.mark.parametrize("name", ["inner", "left", "reversed_extra"])
def test_vectorised_join_continues_from_a_snapshot(pm, name) -> None:
    feed = _feed(3, KEYS)
    whole, _, _ = _run(pm, QUERIES[name], feed, True)
    # restored twice in one run: early, then mid-stream from the restored runtime's own snapshot
    resumed, _, mode = _run(pm, QUERIES[name], feed, True, splits=(7, len(feed) // 2))
    assert mode == "vectorised"
    assert _canon(resumed) == _canon(whole)


def test_left_outer_row_waits_for_the_watermark(pm) -> None:
    rt = compile_query(QUERIES["left"], pm).runtime()
    rt.feed_bodies("l", [orjson.dumps({"t": _iso(T0 + S), "k": "x", "v": 1})])
    rt.feed_bodies("r", [orjson.dumps({"t": _iso(T0 + 2 * S), "k": "y", "v": 2})])
    assert rt.take()["output"] == []  # a match may come until 00:00:04
    rt.feed_bodies("l", [orjson.dumps({"t": _iso(T0 + 9 * S), "k": "z", "v": 1})])
    rt.feed_bodies("r", [orjson.dumps({"t": _iso(T0 + 9 * S), "k": "y", "v": 2})])
    out = format_rows(rt.take()["output"])
    assert out == [{"k": "x", "av": 1, "bv": None, "ts": "2024-01-01T00:00:04.0000000Z"}]


def test_explain_shows_the_join_vectorised(pm) -> None:
    plan = compile_query(SUITE["stream_join"][0], pm).explain()
    assert "inner join trips AS b ON" in plan and plan.count("[vectorised]") == 3 and "[row]" not in plan


def test_conformance_joins_plan_vectorised(pm) -> None:
    """Every conformance case with one JOIN per statement plans it vectorised (the case's
    rows are checked by tests/sql/test_conformance.py); several JOINs in one statement run row."""
    import json
    from pathlib import Path

    from headwater.services.processing.plan.physical import plan_physical

    cases = sorted((Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "cases").glob("*.json"))
    if not cases:
        pytest.skip("no ../shared/conformance next to the repository")
    seen = 0
    for path in cases:
        case = json.loads(path.read_text())
        query = case.get("query_corrected") or case["query"]
        if "join" not in query.lower():
            continue
        compiled = compile_query(query, pm, references=list(case.get("reference_inputs") or {}))
        for ls, ph in zip(compiled.plan.statements, plan_physical(compiled.plan, pm).statements):
            if ls.select.joins:
                seen += 1
                assert ph.vectorized == (len(ls.select.joins) == 1), (path.name, ph.reason)
    assert seen >= 7
