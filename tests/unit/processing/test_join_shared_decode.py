"""A self-join's two sides decode each batch once (exec/vector.py SharedDecode) when they
read the input alike, and give what the row JOIN gives: the same rows, counters and dead
letters, also when a body fails one side's decode only or keys are NULL; sides with
different TIMESTAMP BY fields decode on their own."""

from __future__ import annotations

import random

import orjson
import pytest

from headwater.perf.query import SUITE
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, compile_query, format_rows

T0 = 1_704_067_200_000_000
S = 1_000_000
SELF = ("SELECT a.k, a.v AS av, b.w AS bw, DATEDIFF(second, a, b) AS d, System.Timestamp() AS ts "
        "FROM e a TIMESTAMP BY t JOIN e b TIMESTAMP BY t ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 0 AND 3")
SELF_LEFT = ("SELECT a.k, a.v AS av, b.w AS bw, System.Timestamp() AS ts FROM e a TIMESTAMP BY t "
             "LEFT JOIN e b TIMESTAMP BY t ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 1 AND 3")
TWO_TIMES = ("SELECT a.k, a.v AS av, b.w AS bw, System.Timestamp() AS ts FROM e a TIMESTAMP BY t "
             "JOIN e b TIMESTAMP BY u ON a.k = b.k AND DATEDIFF(second, a, b) BETWEEN 0 AND 3")


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


def _iso(us: int) -> str:
    from headwater.functions import format_datetime, from_micros

    return format_datetime(from_micros(us))


def _bodies(seed: int, n: int, keys: list) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + i * 100_000 + rng.randrange(0, 300_000)
        out.append(orjson.dumps({"t": _iso(t), "u": _iso(t + rng.randrange(0, 3) * S), "k": rng.choice(keys),
                                 "v": rng.randrange(0, 9), "w": rng.choice(["x", "y", "z"])}))
    return out


def _run(pm, sql: str, batches: list[list[bytes]], vectorize: bool):
    rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(late=4, ooo=2), vectorize=vectorize)
    rt.counters.dead = []
    rows = []
    for i, bodies in enumerate(batches):
        rt.feed_bodies("e", bodies, [T0 + i * 10 * S] * len(bodies))
        rows += rt.take()["output"]
    rt.flush()
    rows += rt.take()["output"]
    counters = {k: v for k, v in rt.counters.as_dict().items() if k not in ("samples", "error_samples")}
    return rt, sorted((tuple(sorted((k, repr(v)) for k, v in r.items())) for r in format_rows(rows)), key=repr), \
        counters, rt.counters.dead


def _same_as_row_join(pm, sql: str, batches: list[list[bytes]]):
    rt, rows, counters, dead = _run(pm, sql, batches, True)
    _, rrows, rcounters, rdead = _run(pm, sql, batches, False)
    assert rt.mode == "vectorised"
    assert rows == rrows
    assert counters == rcounters
    assert dead == rdead
    return rt, rows, counters


@pytest.mark.parametrize("sql", [SELF, SELF_LEFT])
@pytest.mark.parametrize("keys", [["p", "q", "r", "s", "t"], ["p", None, "P", 2, 2.0, "2", "2024-01-01T00:00:00Z"]])
def test_self_join_decodes_once_and_equals_the_row_join(pm, sql, keys) -> None:
    batches = [_bodies(seed, 150, keys) for seed in range(4)]  # plain text keys; NULL, wild and mixed keys
    rt, rows, _ = _same_as_row_join(pm, sql, batches)
    assert rows
    assert rt._shared["e"].groups == [[0, 1]]  # the two sides decode together


def _with_bad(good: list[bytes], at: int, tail: bytes) -> list[bytes]:
    ev = orjson.loads(good[at])
    bad = list(good)
    bad[at] = orjson.dumps({k: v for k, v in ev.items() if k != "w"})[:-1] + b', "w": ' + tail
    return bad


@pytest.mark.parametrize("tail", [b'"x"', b'{"x": 1}}'])  # not JSON (both sides fail); a record for w
def test_bad_bodies_are_reported_as_the_row_join_does(pm, tail) -> None:
    good = _bodies(1, 100, ["p", "q", None])
    _, rows, counters = _same_as_row_join(pm, SELF, [good, _with_bad(good, 7, tail), good])
    assert rows
    assert counters["deserialization_errors"] == (1 if tail == b'"x"' else 0)


def test_a_body_one_side_cannot_decode_is_reported_per_side_as_without_sharing(pm) -> None:
    """An integer past bigint in ``w``, which only side b reads: the shared decode declines
    the batch and each side decodes it alone (a: the event; b: an error, counted as side b's
    errors are). The same query with b's TIMESTAMP BY an expression does not share."""
    good = _bodies(2, 100, ["p", "q", None])
    batches = [good, _with_bad(good, 3, b"123456789012345678901234567890}"), good]
    unshared = SELF.replace("JOIN e b TIMESTAMP BY t", "JOIN e b TIMESTAMP BY CAST(t AS datetime)")
    rt, rows, counters, dead = _run(pm, SELF, batches, True)
    rt2, rows2, counters2, dead2 = _run(pm, unshared, batches, True)
    assert rt._shared["e"].groups == [[0, 1]] and rt2._shared["e"].groups == []
    assert (rt.mode, rt2.mode) == ("vectorised", "vectorised")
    assert rows and rows == rows2
    assert counters == counters2 and dead == dead2


def test_sides_with_different_timestamp_by_decode_on_their_own(pm) -> None:
    batches = [_bodies(seed, 150, ["p", "q", "r", None]) for seed in range(3)]
    rt, rows, _ = _same_as_row_join(pm, TWO_TIMES, batches)
    assert rows
    assert rt._shared["e"].groups == []


def test_the_suite_stream_join_decodes_once(pm) -> None:
    from headwater.perf.common import trip_batches

    bodies = next(iter(trip_batches(300, 300)))
    rt = compile_query(SUITE["stream_join"][0], pm).runtime()
    rt.feed_bodies("trips", bodies)
    rt.flush()
    assert rt._shared["trips"].groups == [[0, 1]]
    out = rt.take()["output"]
    assert len(out) == 300  # each trip with itself (unique tripIds, DATEDIFF 0)
    assert {r["tripId"] for r in out} == {orjson.loads(b)["tripId"] for b in bodies}
