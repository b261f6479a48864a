"""Per-event lateness verdicts (ListEventVerdicts' source): the vectorised and the row
ordering policy give the same verdict for every event, with known inputs."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from headwater.services.processing.engine import compile_query
from headwater.services.processing.engine_adapter import _aligned_windows
from headwater.services.processing.exec.watermarks import OrderingPolicy, VerdictLog, verdict_rows

S = 1_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
QUERY = ("SELECT zone, COUNT(*) AS n INTO [out] FROM [trips] TIMESTAMP BY pickup "
         "GROUP BY zone, TumblingWindow(second, 10)")


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / S, UTC).isoformat().replace("+00:00", "Z")


# (event time, arrival time) in seconds after T0, partition "0", in arrival order
EVENTS = [(10, 10), (11, 11), (3, 12), (12.5, 13), (12, 14), (700, 15), (14, 16)]


def _verdicts(vectorize: bool, action: str) -> list:
    compiled = compile_query(QUERY)
    rt = compiled.runtime(OrderingPolicy.from_seconds(5, 0, action), vectorize=vectorize)
    log = VerdictLog()
    log.windows = _aligned_windows(compiled.plan)
    rt.counters.verdicts = log
    bodies = [orjson.dumps({"zone": "a", "pickup": _iso(int(T0 + e * S))}) for e, _ in EVENTS]
    offsets = np.zeros(len(bodies) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    arrivals = np.array([int(T0 + a * S) for _, a in EVENTS], dtype=np.int64)
    rt.feed_buffer("trips", b"".join(bodies), offsets, arrivals, partition_ids="0",
                   sequence_numbers=np.arange(len(bodies), dtype=np.int64) + 100)
    return verdict_rows(log.export(), "trips")


@pytest.mark.parametrize("action", ["adjust", "drop"])
def test_row_and_vectorised_verdicts_agree_with_known_inputs(action):
    vector, row = _verdicts(True, action), _verdicts(False, action)
    assert vector == row
    got = {r[1] - 100: (r[5], r[6], None if r[4] is None else (r[4] - T0) / S) for r in vector}
    assert [r[0] for r in vector] == ["0"] * 7 and [r[2] for r in vector] == [int(T0 + a * S) for _, a in EVENTS]
    assert got[0] == ("on_time", "", 10) and got[1] == ("on_time", "", 11) and got[3] == ("on_time", "", 12.5)
    if action == "adjust":
        assert got[2] == ("adjusted", "late", 11)  # 9 s late: arrival - 5 s, then not below the newest (11)
        assert got[4] == ("adjusted", "out_of_order", 12.5)  # older than the newest, out-of-order tolerance 0
    else:
        assert got[2] == ("dropped", "late", None) and got[4] == ("dropped", "out_of_order", None)
    assert got[5] == ("dropped", "early", None)  # more than 5 minutes ahead of its arrival
    first = vector[0]
    assert first[7] == [f"({_iso(T0)}, {_iso(T0 + 10 * S)}]"]  # an event at a window's end counts in it
    assert vector[3][7] == [f"({_iso(T0 + 10 * S)}, {_iso(T0 + 20 * S)}]"]


def test_the_range_is_bounded_and_survives_a_restart():
    log = VerdictLog(retained=5)
    n = np.arange(12, dtype=np.int64)
    for lo in (0, 4, 8):
        part = slice(lo, lo + 4)
        log.add_batch("i", "1", n[part], n[part], n[part], n[part], np.ones(4, bool), np.zeros(4, bool),
                      np.zeros(4, bool), np.zeros(4, bool))
    rows = verdict_rows(log.export(), "i")
    assert [r[1] for r in rows] == [7, 8, 9, 10, 11]
    again = VerdictLog(retained=5)
    again.load(log.export())
    assert again.export() == log.export()
