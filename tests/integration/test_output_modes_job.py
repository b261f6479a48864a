"""Output modes with a running job, as the issue saw them: the book's trips-per-location
query into a memory table in `complete` mode keeps every group's current result across
triggers (150 trips had left 5 rows summing to 100: only the last trigger's), `update`
replaces by key, `append` only adds. Real ingestion, processing and sink processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headwater.v1 import sink_pb2 as spb
from tests.integration.processing_support import Pipeline

# BOOK.md section 3 (TripsTumblingQuery); one-minute windows of the trips' own time.
QUERY = ("SELECT System.Timestamp() AS window_end, startLocation, COUNT(*) AS count INTO [{out}] "
         "FROM [trips] TIMESTAMP BY createdAt GROUP BY startLocation, TumblingWindow(minute, 1)")
LOCATIONS = ["A", "B", "C", "D", "E"]


def test_the_books_query_into_complete_update_and_append_tables(service_process, root_policy, tmp_path):
    pipe = Pipeline(service_process, root_policy, tmp_path)
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("TripsTumblingQuery", "memory", output_mode=spb.OUTPUT_MODE_COMPLETE)
    pipe.create_sink("by-key", "memory", key_columns=["window_end", "startLocation"],
                     output_mode=spb.OUTPUT_MODE_UPDATE)
    pipe.create_sink("log", "memory", output_mode=spb.OUTPUT_MODE_APPEND)
    sql = (QUERY.format(out="complete") + ";\n" + QUERY.format(out="update") + ";\n" + QUERY.format(out="append"))
    pipe.create_job("trips-per-location", sql, {"trips": "trips"},
                    {"complete": "TripsTumblingQuery", "update": "by-key", "append": "log"})
    pipe.start_job("trips-per-location")

    # Three one-minute windows (start, end] of event time just ahead of now (early events are accepted up
    # to 5 minutes), 50 trips each over the five locations, each window published as its own
    # epoch: each trigger closes the window before it, so the table is written three times.
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for w in range(3):
        trips = [{"tripId": f"w{w}-{i}", "startLocation": LOCATIONS[i % 5],
                  "createdAt": (base + timedelta(minutes=w, seconds=i + 1)).isoformat()} for i in range(50)]
        pipe.publish("trips", trips)
        pipe.wait_metrics("trips-per-location", lambda m, n=50 * (w + 1): m.input_events >= n)
        pipe.wait_checkpoints("trips-per-location", 1)
    # A trip in the fourth window moves the watermark past the third.
    pipe.publish("trips", [{"tripId": "next", "startLocation": "A",
                            "createdAt": (base + timedelta(minutes=3, seconds=1)).isoformat()}])

    def table(sink):
        return pipe.read_table(sink)

    rows = pipe.wait_rows(lambda: table("TripsTumblingQuery"), lambda r: sum(x["count"] for x in r) >= 150,
                          timeout=60)
    assert len(rows) == 15 and sum(r["count"] for r in rows) == 150, rows
    assert len({(str(r["window_end"]), r["startLocation"]) for r in rows}) == 15
    assert {r["count"] for r in rows} == {10}
    # The same result by key in update mode; append has each row once (no group is re-emitted here).
    by_key = pipe.wait_rows(lambda: table("by-key"), lambda r: sum(x["count"] for x in r) >= 150)
    assert sorted((str(r["window_end"]), r["startLocation"], r["count"]) for r in by_key) == sorted(
        (str(r["window_end"]), r["startLocation"], r["count"]) for r in rows)
    log = pipe.wait_rows(lambda: table("log"), lambda r: sum(x["count"] for x in r) >= 150)
    assert len(log) == 15 and sum(r["count"] for r in log) == 150
    m = pipe.metrics("trips-per-location")
    assert m.late_input_events == 0 and m.early_input_events == 0 and m.output_errors == 0
