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


def test_average_and_less_than():
    values = iter([10, 20, 30])
    r = rule(metric="input_events", aggregation=pb.ALERT_AGGREGATION_AVERAGE,
             operator=pb.ALERT_OPERATOR_LESS_THAN_OR_EQUAL, threshold=20,
             frequency=duration_pb2.Duration(seconds=1), window=duration_pb2.Duration(seconds=10))
    ev = AlertEvaluator(rules=lambda: [r], metrics_of=lambda job: pb.JobMetrics(input_events=next(values)))
    assert [a.value for t in range(3) for a in ev.tick(100.0 + t)] == [10, 15, 20]


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
