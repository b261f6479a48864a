"""Jobs of the processing service through its gRPC API, every service a real process.

Written from docs/processing.md: start modes, failure states and their errors,
metrics, output error policies and alert rules.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2

from tests.integration.processing_support import (
    PG_DSN,
    Pipeline,
    Publisher,
    pg_drop,
    pg_rows,
    pg_table,
)
from tests.wait import wait_until

COUNT_QUERY = """
SELECT COUNT(*) AS n, System.Timestamp() AS WindowEnd
INTO [Out]
FROM [In]
GROUP BY TumblingWindow(second, 1)
"""


def _ordering(late_s: int = 1):
    from headwater.v1 import processing_pb2 as ppb

    return ppb.EventOrderingPolicy(late_arrival_tolerance=duration_pb2.Duration(seconds=late_s))


def _total(pipe: Pipeline, sink: str = "out") -> int:
    return sum(r["n"] for r in pipe.read_table(sink))


def _settle(pipe: Pipeline, expected: int, sink: str = "out", timeout: float = 15.0, job: str = "win") -> int:
    """The windowed total once it reaches ``expected`` (or the timeout), and again once the windows
    open now (1 s tumbling) have closed and their rows are written: an event counted twice would show."""
    pipe.wait_rows(lambda: _total(pipe, sink), lambda n: n >= expected, timeout=timeout)
    pipe.wait_settled(job, window_s=1.0)
    return _total(pipe, sink)


@pytest.mark.slow
def test_stop_and_start_modes(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=2)
    pipe.create_sink("out", "memory")
    pipe.create_job("win", COUNT_QUERY, {"In": "trips"}, {"Out": "out"}, event_ordering=_ordering(1))

    # WHEN_LAST_STOPPED: stopped mid-stream, events sent while stopped and after the
    # restart all count once; the open windows carry on from the checkpoint.
    pipe.start_job("win", ppb.JOB_START_MODE_EARLIEST)
    with Publisher(pipe, "trips", per_batch=10, interval_s=0.03) as pub:
        pipe.wait_read("win", 30)  # mid-stream: reading, with a checkpoint taken
        pipe.wait_checkpoints("win", 1)
        stopped = pipe.stop_job("win")
        assert stopped.state == ppb.JOB_STATE_STOPPED, stopped.error
        pub.wait_sent(20)  # events sent while the job is stopped
        assert pipe.start_job("win", ppb.JOB_START_MODE_WHEN_LAST_STOPPED).state == ppb.JOB_STATE_RUNNING
        pipe.wait_read("win", 20)
        pipe.wait_checkpoints("win", 1)
        pipe.stop_job("win")  # and once more, then resume
        pub.wait_sent(20)
        pipe.start_job("win", ppb.JOB_START_MODE_WHEN_LAST_STOPPED)
        pipe.wait_read("win", 20)
        sent = pub.stop()
    assert _settle(pipe, len(sent)) == len(sent)

    # NOW: events sent while stopped are skipped; events sent right after StartJob are not.
    pipe.stop_job("win")
    pipe.publish("trips", [{"tripId": f"old{i}"} for i in range(37)])  # acknowledged: before the start
    base = _total(pipe)
    pipe.start_job("win", ppb.JOB_START_MODE_NOW)
    pipe.publish("trips", [{"tripId": f"new{i}"} for i in range(23)])
    assert _settle(pipe, base + 23) == base + 23

    # EARLIEST: everything retained in the hub is counted again.
    pipe.stop_job("win")
    base = _total(pipe)
    in_hub = len(sent) + 37 + 23
    pipe.start_job("win", ppb.JOB_START_MODE_EARLIEST)
    assert _settle(pipe, base + in_hub) == base + in_hub


def test_now_start_survives_a_restart_of_a_quiet_job(service_process, root_policy, tmp_path):
    """A job started NOW whose hub stays quiet, then killed: on resume it does not read
    the events from before its start (a partition without a position starts at the
    job's start, not at the earliest event)."""
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=2)
    pipe.create_sink("out", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "out"})
    pipe.publish("trips", [{"tripId": f"old{i}"} for i in range(10)])  # acknowledged: before the start
    pipe.start_job("copy", ppb.JOB_START_MODE_NOW)
    pipe.wait_checkpoints("copy", 2)  # a few (empty) checkpoints
    pipe.processing.kill()
    pipe.start_processing()
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_RUNNING, what="RUNNING after restart")
    pipe.publish("trips", [{"tripId": f"new{i}"} for i in range(5)])
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda r: len(r) >= 5, timeout=15)
    pipe.wait_settled("copy")  # an old event read late would show now
    assert sorted(r["tripId"] for r in pipe.read_table("out")) == sorted(f"new{i}" for i in range(5)), rows


def test_custom_time_start_and_running_job_preconditions(service_process, root_policy, tmp_path):
    from google.protobuf import timestamp_pb2

    from headwater.errors import HeadwaterError, Reason
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=2)
    pipe.create_sink("out", "memory")
    job = pipe.create_job("copy", "SELECT tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "out"})
    pipe.publish("trips", [{"tripId": f"before{i}"} for i in range(5)])  # acknowledged, so enqueued before `at`
    at = timestamp_pb2.Timestamp()
    at.GetCurrentTime()  # and the next events are enqueued after it (one clock: this machine's)
    pipe.publish("trips", [{"tripId": f"after{i}"} for i in range(7)])
    pipe.call("processing", "StartJob", ppb.StartJobRequest(name="jobs/copy", start_mode=ppb.JOB_START_MODE_CUSTOM_TIME,
                                                            start_time=at))
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda r: len(r) >= 7)
    pipe.wait_settled("copy")  # an event from before `at` read late would show now
    assert sorted(r["tripId"] for r in pipe.read_table("out")) == sorted(f"after{i}" for i in range(7)), rows

    # A running job cannot be started again, updated or deleted: PRECONDITION_FAILED.
    for call in (lambda: pipe.start_job("copy"),
                 lambda: pipe.call("processing", "UpdateJob", ppb.UpdateJobRequest(job=job)),
                 lambda: pipe.call("processing", "DeleteJob", ppb.DeleteJobRequest(name="jobs/copy"))):
        with pytest.raises(HeadwaterError) as err:
            call()
        assert err.value.reason is Reason.PRECONDITION_FAILED
    assert pipe.get_job("copy").state == ppb.JOB_STATE_RUNNING


def test_failing_cast_fails_the_job_and_late_events_are_counted(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_sink("late", "memory")
    pipe.create_job("cast", "SELECT CAST(fare AS bigint) AS fare INTO [Out] FROM [In]", {"In": "trips"},
                    {"Out": "out"})
    pipe.create_job("late", "SELECT tripId, t INTO [Out] FROM [In] TIMESTAMP BY t", {"In": "trips"},
                    {"Out": "late"})
    pipe.start_job("cast")
    pipe.start_job("late")
    long_ago = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    pipe.publish("trips", [{"tripId": f"t{i}", "fare": "12", "t": long_ago} for i in range(5)]
                 + [{"tripId": "bad", "fare": "not a number", "t": long_ago}])

    job = pipe.wait_job("cast", lambda j: j.state == ppb.JOB_STATE_FAILED, what="FAILED")
    assert "not a number" in job.error or "CAST" in job.error.upper(), job.error
    assert pipe.metrics("cast").runtime_errors >= 1

    # The other job reads the same events, 2 minutes older than the 5 s late-arrival
    # tolerance: all six are late (adjusted, not dropped) and all six are output.
    m = pipe.wait_metrics("late", lambda m: m.late_input_events >= 6, timeout=15)
    assert (m.input_events, m.late_input_events) == (6, 6)
    rows = pipe.wait_rows(lambda: pipe.read_table("late"), lambda r: len(r) >= 6)
    assert len(rows) == 6
    assert pipe.get_job("late").state == ppb.JOB_STATE_RUNNING


def test_rows_a_sink_drops_are_output_errors_and_dead_letters(service_process, root_policy, tmp_path):
    """A sink whose own error policy is Drop takes the good rows and drops the rest: the job counts
    those in output_errors and sends exactly them to its dead-letter hub."""
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import sink_pb2 as spb
    from tests.integration.test_failing_job import read_dead

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    table = pg_table()
    try:
        pipe.create_hub("trips", partitions=1)
        pipe.create_hub("dead", partitions=1)
        pipe.create_sink("docs", "postgres", {"dsn": PG_DSN, "table": table, "id_field": "id"},
                         error_policy=spb.ERROR_POLICY_DROP)
        pipe.create_job("lenient", "SELECT id, tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "docs"},
                        dead_letter_hub="dead")
        pipe.start_job("lenient")
        pipe.publish("trips", [{"id": f"d{i}", "tripId": f"t{i}"} if i % 3 else {"tripId": f"t{i}"}
                               for i in range(9)])
        m = pipe.wait_metrics("lenient", lambda m: m.output_events + m.output_errors == 9 and m.dead_letter_events)
        assert (m.output_events, m.output_errors, m.dead_letter_events) == (6, 3, 3)
        assert sorted(pg_rows(table, "id")) == [f"d{i}" for i in range(9) if i % 3]
        dead = read_dead(pipe, "dead")
        assert sorted(json.loads(e["body"])["tripId"] for e in dead) == ["t0", "t3", "t6"]
        assert all(e["properties"]["headwater-dl-kind"] == "output" and "id" in e["properties"][
            "headwater-dl-message"] for e in dead)
        assert pipe.get_job("lenient").state == ppb.JOB_STATE_RUNNING
    finally:
        pg_drop(table)


def test_output_error_policies_with_a_sink_that_refuses_rows(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    table = pg_table()
    try:
        pipe.create_hub("trips", partitions=1)
        pipe.create_hub("dead", partitions=1)
        # An upsert sink keyed by `id`: rows of a query without an id are refused.
        pipe.create_sink("docs", "postgres", {"dsn": PG_DSN, "table": table, "id_field": "id"})
        query = "SELECT tripId INTO [Out] FROM [In]"
        pipe.create_job("drop", query, {"In": "trips"}, {"Out": "docs"},
                        output_error_policy=ppb.OUTPUT_ERROR_POLICY_DROP, dead_letter_hub="dead")
        pipe.create_job("retry", query, {"In": "trips"}, {"Out": "docs"},
                        output_error_policy=ppb.OUTPUT_ERROR_POLICY_RETRY)
        pipe.start_job("drop")
        pipe.start_job("retry")
        pipe.publish("trips", [{"tripId": f"t{i}"} for i in range(4)])

        job = pipe.wait_job("retry", lambda j: j.state == ppb.JOB_STATE_FAILED, what="FAILED")
        assert "output Out" in job.error and "sinks/docs" in job.error, job.error
        assert "id" in job.error

        pipe.wait_metrics("drop", lambda m: m.output_errors >= 4, timeout=10)
        assert pipe.metrics("drop").output_errors == 4
        assert pipe.get_job("drop").state == ppb.JOB_STATE_RUNNING
        pipe.publish("trips", [{"tripId": "t9"}])
        pipe.wait_metrics("drop", lambda m: m.output_errors >= 5, timeout=10)
        assert pipe.metrics("drop").output_errors == 5  # and it goes on
        assert pipe.get_job("drop").state == ppb.JOB_STATE_RUNNING
        # The refused rows are in the dead-letter hub, one JSON row each, with the sink's reason.
        from headwater.cli.main import main
        from tests.integration.test_failing_job import read_dead

        assert pipe.metrics("drop").dead_letter_events == 5
        dead = read_dead(pipe, "dead")
        assert sorted(json.loads(e["body"])["tripId"] for e in dead) == [f"t{i}" for i in range(4)] + ["t9"]
        for e in dead:
            p = e["properties"]
            assert (p["headwater-dl-job"], p["headwater-dl-kind"], p["headwater-dl-output"],
                    p["headwater-dl-sink"]) == ("jobs/drop", "output", "Out", "sinks/docs")
            assert p["headwater-dl-reason"].startswith("OutputError") and "id" in p["headwater-dl-message"]
        # Replayed to the sink that still refuses them: the CLI says so (exit 1). After the fix (the
        # output is now a memory table), the replay writes every refused row.
        replay = ["job", "replay-dead-letters", "drop", "--address", pipe.processing.address,
                  "--ingestion-address", pipe.ingestion.address, "--sink-address", pipe.sink.address]
        assert main(replay) == 1
        pipe.stop_job("drop")
        from headwater.v1 import sink_pb2 as spb

        pipe.call("sink", "DeleteSink", spb.DeleteSinkRequest(name="sinks/docs"))
        pipe.create_sink("docs", "memory")
        assert main(replay) == 0
        assert sorted(r["tripId"] for r in pipe.read_table("docs")) == [f"t{i}" for i in range(4)] + ["t9"]
    finally:
        pg_drop(table)


class _Webhook:
    """A local aiohttp receiver in its own thread and loop; the first ``fail_first``
    POSTs are answered 503 (a transient failure the sender must retry)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[dict] = []  # every POST, refused ones too
        self.bodies: list[dict] = []  # the accepted ones
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        async def receive(request):
            body = await request.json()
            self.received.append(body)
            if len(self.received) <= self.fail_first:
                return web.Response(status=503)
            self.bodies.append(body)
            return web.Response(status=204)

        async def main():
            app = web.Application()
            app.router.add_post("/alert", receive)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/alert"
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_alert_on_input_events_fires_and_posts_to_the_webhook(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "out"})
    with _Webhook(fail_first=1) as hook:
        rule = ppb.AlertRule(name="jobs/copy/alertRules/busy", metric="input_events",
                             aggregation=ppb.ALERT_AGGREGATION_TOTAL, operator=ppb.ALERT_OPERATOR_GREATER_THAN,
                             threshold=3, window=duration_pb2.Duration(seconds=5),
                             frequency=duration_pb2.Duration(seconds=1), webhook_urls=[hook.url])
        pipe.call("processing", "CreateAlertRule", ppb.CreateAlertRuleRequest(parent="jobs/copy", rule=rule))
        # A rule that always holds, evaluated on the same ticks: its alerts show the rules were evaluated.
        alive = ppb.AlertRule(name="jobs/copy/alertRules/alive", metric="input_events",
                              aggregation=ppb.ALERT_AGGREGATION_TOTAL,
                              operator=ppb.ALERT_OPERATOR_GREATER_THAN_OR_EQUAL, threshold=0,
                              window=duration_pb2.Duration(seconds=5), frequency=duration_pb2.Duration(seconds=1))
        pipe.call("processing", "CreateAlertRule", ppb.CreateAlertRuleRequest(parent="jobs/copy", rule=alive))
        pipe.start_job("copy")

        def alerts_of(rule: str):
            got = pipe.call("processing", "ListAlerts", ppb.ListAlertsRequest(parent="jobs/copy")).alerts
            return [a for a in got if a.rule == f"jobs/copy/alertRules/{rule}"]

        wait_until(lambda: alerts_of("alive"), lambda a: len(a) >= 2, timeout=15, what="two evaluations")
        assert not alerts_of("busy"), "fired before the metric crossed the threshold"

        pipe.publish("trips", [{"tripId": f"t{i}"} for i in range(10)])
        wait_until(lambda: hook.bodies, timeout=15, what="a POST to the webhook")
        alerts = alerts_of("busy")
        assert alerts and alerts[0].rule == "jobs/copy/alertRules/busy"
        assert alerts[0].value == 10
        assert hook.bodies, "the webhook got no POST"
        body = hook.bodies[0]
        assert body["schemaId"] == "headwater.alert.v1"
        assert body["rule"] == "jobs/copy/alertRules/busy" and body["value"] == 10
        assert body["fireTime"] and "input_events" in body["description"]
        # The first POST was answered 503: the same alert was sent again.
        assert hook.received[0]["fireTime"] == body["fireTime"]


def test_default_start_mode_is_now_and_a_recreated_job_starts_afresh(service_process, root_policy, tmp_path):
    """processing.proto: an unset start mode is NOW (not a resume). A job deleted and
    created again under the same name neither resumes the old checkpoint nor has its
    output taken by the sink as duplicates of the old job's."""
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "out"})
    pipe.start_job("copy", ppb.JOB_START_MODE_EARLIEST)
    pipe.publish("trips", [{"tripId": f"a{i}"} for i in range(3)])
    pipe.wait_rows(lambda: pipe.read_table("out"), lambda r: len(r) >= 3)
    pipe.stop_job("copy")
    pipe.publish("trips", [{"tripId": "skipped"}])  # acknowledged: before the start
    pipe.call("processing", "StartJob", ppb.StartJobRequest(name="jobs/copy"))  # no start mode
    pipe.publish("trips", [{"tripId": "b0"}])
    pipe.wait_rows(lambda: pipe.read_table("out"), lambda r: len(r) >= 4)
    pipe.wait_settled("copy")  # a skipped event read late would show now
    assert sorted(r["tripId"] for r in pipe.read_table("out")) == ["a0", "a1", "a2", "b0"]

    pipe.stop_job("copy")
    pipe.call("processing", "DeleteJob", ppb.DeleteJobRequest(name="jobs/copy"))
    pipe.create_job("copy", "SELECT tripId, 'v2' AS version INTO [Out] FROM [In]", {"In": "trips"},
                    {"Out": "out"})
    pipe.start_job("copy", ppb.JOB_START_MODE_WHEN_LAST_STOPPED)  # never ran: from the earliest event
    rows = pipe.wait_rows(lambda: [r for r in pipe.read_table("out") if r.get("version") == "v2"],
                          lambda r: len(r) >= 5)
    assert sorted(r["tripId"] for r in rows) == ["a0", "a1", "a2", "b0", "skipped"]


def test_with_resume_jobs_off_a_killed_running_job_is_stopped(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3,
                    extra_env={"HEADWATER_PROCESSING_RESUME_JOBS": "false"})
    pipe.create_hub("trips", partitions=1)
    pipe.create_sink("out", "memory")
    pipe.create_job("copy", "SELECT tripId INTO [Out] FROM [In]", {"In": "trips"}, {"Out": "out"})
    pipe.start_job("copy")
    pipe.processing.kill()
    pipe.start_processing()
    pipe.wait_job("copy", lambda j: j.state == ppb.JOB_STATE_STOPPED, timeout=5, what="STOPPED (not resumed)")
    assert pipe.start_job("copy").state == ppb.JOB_STATE_RUNNING  # and it can be started again
