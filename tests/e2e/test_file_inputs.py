"""File stream inputs as Stream Analytics reads Blob/ADLS inputs, every service a real
process: a hub's Capture folder (Headwater's own Capture output) replayed through a job
gives the rows the live job gave; `{date}/{time}` JSON files are taken in path-time
order with their file's time as arrival time; patterns that lead outside the allowed
folders are refused by CreateJob."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import fastavro
import pytest

from headwater.errors import HeadwaterError
from tests.integration.processing_support import Pipeline, Publisher

pytestmark = pytest.mark.slow

QUERY = ("SELECT city, COUNT(*) AS n, SUM(fare) AS fares, System.Timestamp() AS t INTO [{out}] FROM [{src}] "
         "GROUP BY city, TumblingWindow(second, 1)")
CAPTURE = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}.avro"


def _file_job(pipe: Pipeline, name: str, query: str, pattern: str, out: str, **fields):
    from headwater.v1 import processing_pb2 as ppb

    job = ppb.Job(name=f"jobs/{name}", query=query,
                  inputs=[ppb.JobInput(alias="Files", kind=ppb.INPUT_KIND_STREAM, path_pattern=pattern, **fields)],
                  outputs=[ppb.JobOutput(alias="Out", sink=f"sinks/{out}")])
    return pipe.call("processing", "CreateJob", ppb.CreateJobRequest(job=job)).job


def _captured(folder: Path) -> int:
    n = 0
    for f in folder.rglob("*.avro"):
        with f.open("rb") as fh:
            n += sum(1 for _ in fastavro.reader(fh))
    return n


def _windows(rows: list[dict]) -> list[tuple]:
    return sorted((r["city"], r["n"], r["fares"], str(r["t"])) for r in rows)


def test_a_capture_folder_replayed_through_a_job_gives_the_live_result(service_process, root_policy, tmp_path):
    from google.protobuf import duration_pb2

    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path,
                    extra_env={"HEADWATER_PROCESSING_ALLOWED_PATHS": str(tmp_path)})
    pipe.call("ingestion", "CreateHub", ipb.CreateHubRequest(hub_id="trips", hub=ipb.Hub(
        partition_count=2, capture=ipb.CaptureDescription(enabled=True, interval=duration_pb2.Duration(seconds=1)))))
    pipe.create_sink("live", "memory")
    pipe.create_sink("replay", "memory")
    pipe.create_job("live", QUERY.format(out="Out", src="Trips"), {"Trips": "trips"}, {"Out": "live"})
    pipe.start_job("live", ppb.JOB_START_MODE_EARLIEST)
    with Publisher(pipe, "trips", per_batch=10, interval_s=0.05) as pub:
        pipe.wait_rows(lambda: pipe.read_table("live"), lambda rows: len(rows) >= 4, timeout=30)
        sent = pub.stop()
    capture = tmp_path / "ing" / "capture"
    pipe.wait_rows(lambda: _captured(capture), lambda n: n >= len(sent), timeout=30)
    live = pipe.wait_rows(lambda: pipe.read_table("live"), lambda rows: sum(r["n"] for r in rows) >= len(sent),
                          timeout=30)
    assert sum(r["n"] for r in live) == len(sent)

    _file_job(pipe, "replay", QUERY.format(out="Out", src="Files"), f"{capture}/{CAPTURE}", "replay")
    pipe.start_job("replay", ppb.JOB_START_MODE_EARLIEST)
    replay = pipe.wait_rows(lambda: pipe.read_table("replay"), lambda rows: sum(r["n"] for r in rows) >= len(sent),
                            timeout=60)
    assert _windows(replay) == _windows(live)
    # The epoch writes its rows, then its worker reports the metrics: wait for them.
    m = pipe.wait_metrics("replay", lambda m: m.input_events >= len(sent), what="every event counted")
    assert m.input_events == len(sent)
    assert {p.partition_id for p in m.partitions} == {"0", "1"}


def test_date_time_json_files_are_taken_in_path_time_order_with_their_time(service_process, root_policy, tmp_path):
    """Files for three hours, written out of order: the job sees them in path-time order,
    each event arriving at its file's time (EventEnqueuedUtcTime, the window)."""
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path)
    root = tmp_path / "proc" / "logs"
    day = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    for hour, cities in ((11, ["c", "c"]), (9, ["a"]), (10, ["b", "b", "b"])):
        f = root / day.strftime("%Y-%m-%d") / f"{hour:02d}" / "part.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("\n".join(json.dumps({"city": c}) for c in cities))
    pipe.create_sink("out", "memory")
    _file_job(pipe, "hours", "SELECT city, COUNT(*) AS n, MAX(EventEnqueuedUtcTime) AS arrived, "
              "System.Timestamp() AS t INTO [Out] FROM [Files] GROUP BY city, TumblingWindow(hour, 1)",
              str(root / "{date}" / "{time}" / "*.json"), "out", date_format="YYYY-MM-DD")
    pipe.start_job("hours", ppb.JOB_START_MODE_EARLIEST)
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda rows: len(rows) >= 3, timeout=30)
    got = sorted((r["city"], r["n"], str(r["arrived"])[:19].replace("T", " "), str(r["t"])[:19].replace("T", " "))
                 for r in rows)
    # A window holds its end, not its start (as Stream Analytics'): a file's events at 09:00 count in (08:00, 09:00].
    assert got == [("a", 1, "2026-01-02 09:00:00", "2026-01-02 09:00:00"),
                   ("b", 3, "2026-01-02 10:00:00", "2026-01-02 10:00:00"),
                   ("c", 2, "2026-01-02 11:00:00", "2026-01-02 11:00:00")]


def test_file_patterns_outside_the_allowed_folders_are_refused(service_process, root_policy, tmp_path):
    """Against the real service: `..`, an absolute folder outside allowed_paths and an
    unknown token are INVALID_ARGUMENT naming path_pattern; a symlink leading out is skipped."""
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path)
    pipe.create_sink("out", "memory")
    allowed = tmp_path / "proc"
    for pattern in (f"{allowed}/../ing/**/*.avro", "/etc/{date}/*.json", "/etc/passwd", f"{allowed}/{{nope}}/x.json",
                    f"{allowed}/../../*.json"):
        with pytest.raises(HeadwaterError) as err:
            _file_job(pipe, "bad", "SELECT * INTO [Out] FROM [Files]", pattern, "out")
        assert err.value.reason.name == "INVALID_ARGUMENT" and "path_pattern" in err.value.message, pattern
    # A symlink inside the allowed folder that leads out: its file is not read.
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "s.json").write_text(json.dumps({"city": "leak"}))
    inside = allowed / "in"
    inside.mkdir(parents=True)
    (inside / "ok.json").write_text(json.dumps({"city": "fine"}))
    (inside / "link").symlink_to(outside, target_is_directory=True)
    (inside / "l.json").symlink_to(outside / "s.json")
    _file_job(pipe, "links", "SELECT city INTO [Out] FROM [Files]", f"{inside}/**.json", "out")
    pipe.start_job("links", ppb.JOB_START_MODE_EARLIEST)
    pipe.wait_metrics("links", lambda m: m.input_events >= 1)
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda rows: len(rows) >= 1)
    assert [r["city"] for r in rows] == ["fine"]


def test_a_file_input_keeps_exactly_once_across_kill_9(service_process, root_policy, tmp_path):
    """Files keep coming while the processing service is killed -9 and started again: every
    event reaches the sink once (the manifest numbers the files, checkpoints hold positions)."""
    from headwater.v1 import processing_pb2 as ppb
    from tests.e2e.test_processing_faults import _exactly_once

    pipe = Pipeline(service_process, root_policy, tmp_path)
    root = tmp_path / "proc" / "drop"
    day = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    sent: list[str] = []

    def write(minute: int) -> None:
        when = day + dt.timedelta(minutes=minute)
        f = root / when.strftime("%Y/%m/%d") / when.strftime("%H-%M") / "events.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        ids = [f"m{minute:03d}-{i:03d}" for i in range(50)]
        f.write_text("\n".join(json.dumps({"id": i}) for i in ids))
        sent.extend(ids)

    def ids():
        return [r["id"] for r in pipe.read_table("out")]

    pipe.create_sink("out", "memory")
    _file_job(pipe, "drop", "SELECT id INTO [Out] FROM [Files]", str(root / "{date}" / "{time}" / "*.json"), "out",
              time_format="HH-mm")
    for m in range(10):
        write(m)
    pipe.start_job("drop", ppb.JOB_START_MODE_EARLIEST)
    pipe.wait_rows(ids, lambda rows: len(rows) >= 250, timeout=30)
    for m in range(10, 20):
        write(m)
    pipe.processing.kill()
    for m in range(20, 30):
        write(m)
    pipe.start_processing()
    pipe.wait_job("drop", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after kill -9")
    for m in range(30, 40):
        write(m)
    pipe.wait_rows(ids, lambda rows: len(set(rows)) >= len(sent), timeout=60)
    pipe.wait_metrics("drop", lambda m: m.input_events >= len(sent))
    _exactly_once(sent, ids(), "memory sink fed by files")


def test_a_file_inputs_backlog_counts_events_read_and_not_yet_fed(service_process, root_policy, tmp_path):
    """A file input's sequence numbers are ``file index << 32 | event``: its backlog counts the
    events read and not yet fed, never a difference of those numbers (which, with the reader a
    file ahead of the epochs, was over 4 billion). Many files, small epochs: polled throughout,
    no partition's backlog is ever more than the events there are, and it ends at 0."""
    from headwater.v1 import processing_pb2 as ppb

    files, per_file, pad = 12, 200, "x" * 300
    pipe = Pipeline(service_process, root_policy, tmp_path,
                    extra_env={"HEADWATER_PROCESSING_MAX_EPOCH_BYTES": str(32 * 1024)})
    root = tmp_path / "proc" / "many"
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"f{i:02d}.json").write_text("\n".join(json.dumps({"id": i * per_file + j, "pad": pad})
                                                       for j in range(per_file)))
    total = files * per_file
    pipe.create_sink("out", "memory")
    _file_job(pipe, "many", "SELECT id INTO [Out] FROM [Files]", f"{root}/*.json", "out")
    pipe.start_job("many", ppb.JOB_START_MODE_EARLIEST)
    seen: list[int] = []

    def done(m) -> bool:
        seen.extend(p.backlog_events for p in m.partitions)
        return m.input_events >= total and not any(p.backlog_events for p in m.partitions)

    m = pipe.wait_metrics("many", done, what="every event fed, no backlog")
    assert m.input_events == total
    assert seen and max(seen) <= total, max(seen)
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda rows: len(rows) >= total)
    assert sorted(r["id"] for r in rows) == list(range(total))
