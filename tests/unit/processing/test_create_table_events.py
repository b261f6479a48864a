"""A job whose query declares its input (CREATE TABLE, the row path): a late event is
adjusted (it failed the job with a numpy timestamp), the events that do not conform are
dead-lettered with their partition and sequence number, and the others keep theirs for
the verdicts. Known inputs, fed as ingestion's packed read gives them."""

from __future__ import annotations

import numpy as np
import orjson
from google.protobuf import duration_pb2

from headwater.services.processing.engine_adapter import JobRuntime
from headwater.services.processing.exec.watermarks import verdict_rows
from headwater.v1 import processing_pb2 as pb

S = 1_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
QUERY = ("CREATE TABLE trips (tripId nvarchar(max), zone nvarchar(max), fare bigint, pickup datetime);\n"
         "SELECT System.Timestamp() AS windowEnd, zone, COUNT(*) AS trips, SUM(fare) AS fares INTO [out] "
         "FROM [trips] TIMESTAMP BY pickup GROUP BY zone, TumblingWindow(second, 10)")


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / S, UTC).isoformat().replace("+00:00", "Z")


def test_a_late_event_and_events_that_do_not_conform():
    job = pb.Job(name="jobs/fares", query=QUERY, dead_letter_hub="hubs/dead",
                 inputs=[pb.JobInput(alias="trips", kind=pb.INPUT_KIND_STREAM, hub="hubs/trips")],
                 outputs=[pb.JobOutput(alias="out", sink="sinks/fares")])
    job.event_ordering.late_arrival_tolerance.CopyFrom(duration_pb2.Duration(seconds=30))
    rt = JobRuntime(job)
    arrival = T0 + 125 * S
    events = [{"tripId": "t1", "zone": "a", "fare": 12, "pickup": _iso(T0)},  # 125 s late
              {"tripId": "t2", "zone": "a", "fare": 9, "pickup": _iso(arrival - S)},
              {"tripId": "t4", "zone": "b", "fare": 7.5, "pickup": _iso(arrival - S)},  # not a bigint
              "t6,b,20",  # not an object
              {"tripId": "t7", "zone": "a", "fare": 14.25, "pickup": _iso(arrival - S)}]  # not a bigint
    bodies = [orjson.dumps(e) for e in events]
    offsets = np.zeros(len(bodies) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    seqs = np.arange(len(bodies), dtype=np.int64) + 40
    rt.feed_packed("trips", "0", b"".join(bodies), offsets, "application/json",
                   np.full(len(bodies), arrival, dtype=np.int64), seqs)
    rt.advance_arrival(arrival + 60 * S)  # every window closes; the row path ran the late event

    dead = rt.take_dead()
    assert sorted((d["partition"], d["sequence_number"], d["reason"].split(":")[0]) for d in dead) == [
        ("0", 42, "input 'trips'"), ("0", 43, "InputDeserializationError"), ("0", 44, "input 'trips'")]
    assert {d["record"]["tripId"] for d in dead if d["record"]} == {"t4", "t7"}
    c = rt.counters()
    assert (c["late"], c["conversion_errors"], c["deserialization_errors"]) == (1, 2, 1)

    rows = {(r[0], r[1]): r for r in verdict_rows(rt.verdicts.export(), "trips")}
    assert sorted(rows) == [("0", 40), ("0", 41)]  # the events that conform keep their sequence numbers
    assert rows[("0", 40)][4] == arrival - 30 * S and rows[("0", 40)][5] == "adjusted"  # arrival - 30 s
    out = [r for rs in rt.take_outputs().values() for r in rs]
    assert sum(r["trips"] for r in out) == 2 and sum(r["fares"] for r in out) == 21
