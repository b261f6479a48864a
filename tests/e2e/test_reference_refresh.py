"""Reference data from PostgreSQL that refreshes while a job runs, every service a real
process and the machine's real PostgreSQL: an update mid-stream switches the join at the
refresh's time (events with an earlier event time keep joining the snapshot before it),
a failed refresh keeps the last good snapshot and shows in the metrics and the log, and
a query that would write is refused by PostgreSQL's read-only transaction."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from headwater.errors import HeadwaterError
from tests.e2e.test_processing_metrics import _MetricsPipeline, _sample
from tests.integration.processing_support import PG_DSN, Pipeline, pg_drop, pg_reader, pg_table

pytestmark = pytest.mark.slow


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()


def _ref_job(pipe: Pipeline, name: str, table: str, query: str | None = None, refresh_s: float = 2.0,
             dsn: str | None = None):
    from google.protobuf import duration_pb2

    from headwater.v1 import processing_pb2 as ppb

    job = ppb.Job(
        name=f"jobs/{name}",
        query="SELECT s.seq, r.label INTO [Out] FROM [S] s TIMESTAMP BY ts JOIN [R] r ON s.device = r.device",
        inputs=[ppb.JobInput(alias="S", kind=ppb.INPUT_KIND_STREAM, hub="hubs/s", format="json"),
                ppb.JobInput(alias="R", kind=ppb.INPUT_KIND_REFERENCE, dsn=dsn or pg_reader(table),
                             reference_query=query or f'SELECT device, label FROM public."{table}"',
                             refresh_interval=duration_pb2.Duration(nanos=int(refresh_s * 1e9)) if refresh_s < 1
                             else duration_pb2.Duration(seconds=int(refresh_s)))],
        outputs=[ppb.JobOutput(alias="Out", sink="sinks/mem")],
        event_ordering=ppb.EventOrderingPolicy(late_arrival_tolerance=duration_pb2.Duration(seconds=120)))
    return pipe.call("processing", "CreateJob", ppb.CreateJobRequest(job=job)).job


def _ref(m, alias: str = "R"):
    return next((r for r in m.references if r.input == alias), None)


def test_a_postgres_update_mid_stream_switches_the_join_at_the_refresh_time(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    table = pg_table()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE public."{table}" (device text, label text)')
        conn.execute(f'INSERT INTO public."{table}" VALUES (%s, %s)', ("d1", "old"))
    try:
        pipe = _MetricsPipeline(service_process, root_policy, tmp_path)  # with /metrics
        pipe.create_hub("s", partitions=1)
        pipe.create_sink("mem", "memory")
        _ref_job(pipe, "enrich", table)
        pipe.start_job("enrich")
        m = pipe.wait_metrics("enrich", lambda m: (r := _ref(m)) is not None and r.refreshes >= 1 and r.rows == 1)

        def now_us() -> int:
            return int(dt.datetime.now(dt.UTC).timestamp() * 1e6)

        pipe.publish("s", [{"device": "d1", "seq": 1, "ts": _iso(now_us())}])
        pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows: len(rows) >= 1)

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'UPDATE public."{table}" SET label = %s WHERE device = %s', ("new", "d1"))
        updated = now_us()
        # The first snapshot loaded after the update: its valid_from is the boundary.
        m = pipe.wait_metrics("enrich", lambda m: _ref(m).valid_from.ToMicroseconds() > updated, timeout=20)
        boundary = _ref(m).valid_from.ToMicroseconds()
        pipe.publish("s", [{"device": "d1", "seq": 2, "ts": _iso(boundary - 1000)},
                           {"device": "d1", "seq": 3, "ts": _iso(boundary)},
                           {"device": "d1", "seq": 4, "ts": _iso(boundary + 1000)}])
        rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows: len(rows) >= 4)
        labels = {r["seq"]: r["label"] for r in rows}
        assert labels == {1: "old", 2: "old", 3: "new", 4: "new"}, rows

        # A refresh that fails (the table is gone) keeps the last good snapshot.
        failures = _ref(m).refresh_failures
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE public."{table}" RENAME TO "{table}_gone"')
        m = pipe.wait_metrics("enrich", lambda m: _ref(m).refresh_failures > failures, timeout=20)
        assert "does not exist" in _ref(m).last_error
        assert pipe.get_job("enrich").state == ppb.JOB_STATE_RUNNING
        pipe.publish("s", [{"device": "d1", "seq": 5, "ts": _iso(now_us())}])
        rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows: len(rows) >= 5)
        assert {r["seq"]: r["label"] for r in rows}[5] == "new"
        assert any("refresh failed, the last good snapshot stays" in line for line in pipe.processing.lines)
        # The same counts on Prometheus (at least the ones GetJobMetrics gave just before).
        m = pipe.metrics("enrich")
        text = pipe.scrape()
        labels = {"job": "jobs/enrich", "input": "R"}
        assert _sample(text, "headwater_processing_job_reference_refresh_failures", **labels) >= \
            _ref(m).refresh_failures > failures
        assert _sample(text, "headwater_processing_job_reference_refreshes", **labels) >= _ref(m).refreshes >= 2
    finally:
        pg_drop(table)
        pg_drop(f"{table}_gone")


def test_a_reference_query_that_writes_is_refused_and_the_table_is_untouched(service_process, root_policy,
                                                                             tmp_path):
    """Only the configured query runs, read-only: a write, or a second statement, is
    PostgreSQL's refusal named in the job's error; the table keeps its rows. A role that
    could read the server's files is refused."""
    from headwater.v1 import processing_pb2 as ppb

    table = pg_table()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE public."{table}" (device text, label text)')
        conn.execute(f'INSERT INTO public."{table}" VALUES (%s, %s)', ("d1", "old"))
    try:
        pipe = Pipeline(service_process, root_policy, tmp_path)
        pipe.create_hub("s", partitions=1)
        pipe.create_sink("mem", "memory")
        attacks = {
            "del": f'DELETE FROM public."{table}" RETURNING device, label',
            "two": f'SELECT device, label FROM public."{table}"; DROP TABLE public."{table}"',
            "cte": f'WITH d AS (DELETE FROM public."{table}" RETURNING *) SELECT * FROM d',
        }
        for name, query in attacks.items():
            _ref_job(pipe, name, table, query=query)
            try:
                pipe.start_job(name)
            except Exception as exc:  # noqa: BLE001 - the refusal may come from StartJob
                assert "PostgreSQL refused the query" in str(exc), exc
            else:
                job = pipe.wait_job(name, lambda j: j.state == ppb.JOB_STATE_FAILED, what="FAILED")
                assert "PostgreSQL refused the query" in job.error, job.error
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            assert conn.execute(f'SELECT device, label FROM public."{table}"').fetchall() == [("d1", "old")]
        # A role that may read the database server's files (here the superuser) is refused
        # before the query runs: pg_read_file is a read-only SELECT.
        _ref_job(pipe, "files", table, query="SELECT pg_read_file('/etc/hostname') AS device, 'x' AS label",
                 dsn=PG_DSN)
        try:
            pipe.start_job("files")
        except Exception as exc:  # noqa: BLE001 - the refusal may come from StartJob
            assert "may read the database server's files" in str(exc), exc
        else:
            job = pipe.wait_job("files", lambda j: j.state == ppb.JOB_STATE_FAILED, what="FAILED")
            assert "may read the database server's files" in job.error and "postgres" in job.error, job.error
        # A DSN naming files libpq would read outside allowed_paths is refused on create.
        from google.protobuf import duration_pb2

        job = ppb.Job(name="jobs/keyfile", query="SELECT s.seq INTO [Out] FROM [S] s JOIN [R] r ON s.device = r.device",
                      inputs=[ppb.JobInput(alias="S", kind=ppb.INPUT_KIND_STREAM, hub="hubs/s"),
                              ppb.JobInput(alias="R", kind=ppb.INPUT_KIND_REFERENCE, reference_query="SELECT 1",
                                           dsn=f"{PG_DSN}?sslkey=/etc/shadow",
                                           refresh_interval=duration_pb2.Duration(seconds=60))],
                      outputs=[ppb.JobOutput(alias="Out", sink="sinks/mem")])
        with pytest.raises(HeadwaterError) as err:
            pipe.call("processing", "CreateJob", ppb.CreateJobRequest(job=job))
        assert err.value.reason.name == "INVALID_ARGUMENT" and "outside the allowed folders" in err.value.message
    finally:
        pg_drop(table)


def test_a_date_time_reference_file_is_picked_up_at_its_time_and_joins_from_it(service_process, root_policy,
                                                                               tmp_path):
    """Reference files per minute (`{date}/{time}`, HH-mm): the current minute's file, written
    while the job runs, is taken at the next refresh and joins events from its minute on;
    earlier events join the file before; a file for the next minute waits for its time."""
    from google.protobuf import duration_pb2

    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path)
    pipe.create_hub("s", partitions=1)
    pipe.create_sink("mem", "memory")
    root = tmp_path / "proc" / "ref"

    def write(when: dt.datetime, label: str) -> None:
        f = root / when.strftime("%Y-%m-%d") / when.strftime("%H-%M") / "devices.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps([{"device": "d1", "label": label}]))

    write(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "old")
    job = ppb.Job(
        name="jobs/files",
        query="SELECT s.seq, r.label INTO [Out] FROM [S] s TIMESTAMP BY ts JOIN [R] r ON s.device = r.device",
        inputs=[ppb.JobInput(alias="S", kind=ppb.INPUT_KIND_STREAM, hub="hubs/s", format="json"),
                ppb.JobInput(alias="R", kind=ppb.INPUT_KIND_REFERENCE, date_format="YYYY-MM-DD", time_format="HH-mm",
                             path_pattern=str(root / "{date}" / "{time}" / "devices.json"),
                             refresh_interval=duration_pb2.Duration(seconds=1))],
        outputs=[ppb.JobOutput(alias="Out", sink="sinks/mem")],
        event_ordering=ppb.EventOrderingPolicy(late_arrival_tolerance=duration_pb2.Duration(seconds=180)))
    pipe.call("processing", "CreateJob", ppb.CreateJobRequest(job=job))
    pipe.start_job("files")
    pipe.wait_metrics("files", lambda m: (r := _ref(m)) is not None and r.refreshes == 1)

    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    write(minute + dt.timedelta(minutes=1), "future")  # not before its time
    write(minute, "new")
    start = int(minute.timestamp() * 1e6)
    m = pipe.wait_metrics("files", lambda m: _ref(m).valid_from.ToMicroseconds() >= start, timeout=20)
    boundary = _ref(m).valid_from.ToMicroseconds()
    # The files' minutes, and what joins just before each (the minute may have turned
    # while the files were written: then the next minute's file is due, at its time).
    # (Both due at one refresh: the newest is taken, the one before it never loaded.)
    before, at = {start: ({"old"}, "new"), start + 60_000_000: ({"old", "new"}, "future")}[boundary]
    assert boundary <= int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
    pipe.publish("s", [{"device": "d1", "seq": 1, "ts": _iso(boundary - 1000)},
                       {"device": "d1", "seq": 2, "ts": _iso(boundary)}])
    rows = pipe.wait_rows(lambda: pipe.read_table("mem"), lambda rows: len(rows) >= 2)
    labels = {r["seq"]: r["label"] for r in rows}
    assert labels[1] in before and labels[2] == at, labels
