"""Alert rules: "maximum SU % utilization greater than 80 over 5 minutes, evaluated every minute"."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from google.protobuf import duration_pb2

from headwater.errors import HeadwaterError
from headwater.retry import RetryPolicy
from headwater.services.processing.alerts import AlertEvaluator, validate_rule
from headwater.v1 import processing_pb2 as pb


def rule(**kw) -> pb.AlertRule:
    base = dict(name="jobs/trips/alertRules/su80", metric="su_utilization_percent",
                aggregation=pb.ALERT_AGGREGATION_MAXIMUM, operator=pb.ALERT_OPERATOR_GREATER_THAN,
                threshold=80, window=duration_pb2.Duration(seconds=300), frequency=duration_pb2.Duration(seconds=60))
    base.update(kw)
    return pb.AlertRule(**base)


def test_book_rule_fires_on_the_maximum_over_the_window():
    su = {"value": 50.0}
    r = rule()
    ev = AlertEvaluator(rules=lambda: [r], metrics_of=lambda job: pb.JobMetrics(su_utilization_percent=su["value"]))
    # Samples every 30 s; evaluated every 60 s over the last 300 s.
    fired = []
    for t, value in [(0, 50), (30, 85), (60, 40), (120, 40), (180, 40), (240, 40), (300, 40), (360, 40)]:
        su["value"] = value
        fired += [(t, a) for a in ev.tick(1000.0 + t)]
    times = [t for t, _ in fired]
    # The 85 at t=30 is inside (t-300, t] for the evaluations at 60..300, not at 360.
    assert times == [60, 120, 180, 240, 300]
    assert fired[0][1].value == 85
    assert "maximum su_utilization_percent over 300s is 85, greater than 80" == fired[0][1].description
    assert list(ev.alerts)[0].rule == r.name


def run(metric, values, aggregation, window=10, start=100.0, threshold=-1.0, interval=1.0):
    """Feed one sample per second (a running counter's values), evaluating every tick."""
    it = iter(values)
    r = rule(metric=metric, aggregation=aggregation, operator=pb.ALERT_OPERATOR_GREATER_THAN, threshold=threshold,
             frequency=duration_pb2.Duration(seconds=1), window=duration_pb2.Duration(seconds=window))
    ev = AlertEvaluator(rules=lambda: [r], metrics_of=lambda job: pb.JobMetrics(**{metric: next(it)}),
                        sample_interval_s=interval)
    return [a for i in range(len(values)) for a in ev.tick(start + i * interval)]


def test_total_of_a_counter_is_its_increase_over_the_window():
    """The issue's case: 2,000 events arrive over 10 s; the counter's samples add up to
    tens of thousands, the increase is 2,000."""
    counter = [0] + [200 * i for i in range(1, 11)] + [2000] * 5  # 200/s for 10 s, then idle
    alerts = run("input_events", counter, pb.ALERT_AGGREGATION_TOTAL)
    assert sum(counter) > 10_000
    at_10 = alerts[9]  # t=0 has one sample, no value; at t=10 the window (0, 10] holds the 10 steps
    assert at_10.value == 2000
    assert at_10.description == "total input_events over 10s is 2000, greater than -1"
    assert alerts[-1].value == 1000  # at t=15: window (5, 15] saw 5 busy seconds


def test_average_maximum_minimum_of_a_counter_are_rates_per_second():
    counter = [0, 100, 400, 400, 1000]  # steps of 100, 300, 0, 600 per second
    avg = run("input_events", counter, pb.ALERT_AGGREGATION_AVERAGE)
    assert avg[-1].value == 250 and avg[-1].description.startswith("average input_events over 10s is 250/s")
    assert run("input_events", counter, pb.ALERT_AGGREGATION_MAXIMUM)[-1].value == 600
    assert run("input_events", counter, pb.ALERT_AGGREGATION_MINIMUM, threshold=-1)[-1].value == 0
    # Samples every 2 s: the same counter is half the rate.
    assert run("input_events", counter, pb.ALERT_AGGREGATION_AVERAGE, interval=2.0)[-1].value == 125


def test_a_counter_restart_counts_from_zero_and_one_sample_is_no_value():
    # The job restarted between the 3rd and 4th sample: 500 -> 50 is an increase of 50.
    alerts = run("runtime_errors", [0, 300, 500, 50, 80], pb.ALERT_AGGREGATION_TOTAL)
    assert alerts[-1].value == 300 + 200 + 50 + 30
    assert run("runtime_errors", [7], pb.ALERT_AGGREGATION_TOTAL) == []  # no increase known yet


def test_a_window_counts_the_step_into_it_and_nothing_before():
    # Window 3 s at t=5: samples at 2..5 inside, the step from t=2 (value 20) counts from t=3.
    alerts = run("output_events", [0, 10, 20, 30, 40, 50], pb.ALERT_AGGREGATION_TOTAL, window=3)
    assert alerts[-1].value == 30


def test_gauges_aggregate_their_samples():
    for agg, want in [(pb.ALERT_AGGREGATION_AVERAGE, 20), (pb.ALERT_AGGREGATION_MAXIMUM, 30),
                      (pb.ALERT_AGGREGATION_MINIMUM, 10), (pb.ALERT_AGGREGATION_TOTAL, 60)]:
        assert run("su_utilization_percent", [10.0, 20.0, 30.0], agg)[-1].value == want


@pytest.mark.parametrize("field,change,message", [
    ("metric", {"metric": "cpu"}, "not a job metric"),
    ("operator", {"operator": 0}, "comparison"),
    ("aggregation", {"aggregation": 0}, "aggregation"),
    ("window", {"window": duration_pb2.Duration()}, "positive"),
    ("webhook_urls", {"webhook_urls": ["ftp://x"]}, "http"),
])
def test_invalid_rules_name_the_field(field, change, message):
    with pytest.raises(HeadwaterError) as info:
        validate_rule(rule(**change))
    assert info.value.metadata["field"] == f"rule.{field}" and message in info.value.message


async def test_webhook_action_is_retried_on_5xx():
    received, statuses = [], [503, 200]

    async def hook(request):
        received.append(await request.json())
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    r = rule(webhook_urls=[f"http://127.0.0.1:{port}/hook"])
    ev = AlertEvaluator(rules=lambda: [r], metrics_of=lambda job: pb.JobMetrics(su_utilization_percent=99),
                        webhook_policy=RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02))
    try:
        assert len(ev.tick(0.0)) == 1
        for _ in range(100):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await ev.stop()
        await runner.cleanup()
    assert len(received) == 2  # one 503, then delivered
    assert received[-1]["rule"] == r.name and received[-1]["value"] == 99
