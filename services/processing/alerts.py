"""Alert rules on job metrics, as Azure Monitor evaluates them for Stream Analytics.

A rule such as "maximum SU % utilization greater than 80 over 5 minutes,
evaluated every minute" samples a job metric every ``sample_interval_s``,
aggregates the samples inside ``window`` every ``frequency``, and fires when the
comparison holds. A fired alert is kept (newest first, bounded) and POSTed as
JSON to each of the rule's webhook URLs (the action group), with the shared
retry policy for transient failures (5xx, timeouts, refused connections). A rule
that keeps holding fires again at every evaluation, as a metric alert without
auto-mitigation does. Counter metrics (events, errors) aggregate their increases,
not their running totals: see :func:`aggregate`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf import timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.retry import RetryPolicy, retry_async
from headwater.v1 import processing_pb2 as pb

if TYPE_CHECKING:  # imported at the first webhook post: a service without webhooks starts without aiohttp
    import aiohttp

__all__ = ["COUNTERS", "METRIC_FIELDS", "AlertEvaluator", "aggregate", "metric_value"]

log = logging.getLogger("headwater.processing.alerts")

#: JobMetrics fields a rule may watch (numbers only).
METRIC_FIELDS = tuple(
    f.name for f in pb.JobMetrics.DESCRIPTOR.fields
    if f.name not in ("last_error_sample", "read_time")
)

_OPS: dict[int, Callable[[float, float], bool]] = {
    pb.ALERT_OPERATOR_GREATER_THAN: lambda v, t: v > t,
    pb.ALERT_OPERATOR_GREATER_THAN_OR_EQUAL: lambda v, t: v >= t,
    pb.ALERT_OPERATOR_LESS_THAN: lambda v, t: v < t,
    pb.ALERT_OPERATOR_LESS_THAN_OR_EQUAL: lambda v, t: v <= t,
}
_AGGS: dict[int, Callable[[list[float]], float]] = {
    pb.ALERT_AGGREGATION_MAXIMUM: max,
    pb.ALERT_AGGREGATION_MINIMUM: min,
    pb.ALERT_AGGREGATION_AVERAGE: lambda xs: sum(xs) / len(xs),
    pb.ALERT_AGGREGATION_TOTAL: sum,
}
#: Running counters (every int64 field: events, errors); the others are gauges.
COUNTERS = frozenset(
    f.name for f in pb.JobMetrics.DESCRIPTOR.fields if f.type == f.TYPE_INT64
)


def aggregate(samples: list[tuple[float, float]], aggregation: int, counter: bool,
              start: float) -> float | None:
    """One rule's value from the ``(time, value)`` samples (oldest first) over ``(start, ...]``.

    A gauge aggregates the sample values inside the window. A counter (a running total)
    is first turned into increases between consecutive samples, each counted at its
    later sample's time (the step from the last sample before the window into it is
    part of the window); a value lower than the one before is a restart from zero, so
    its increase is the value itself (Prometheus' ``increase``). Then ``total`` is the
    increase over the window and ``average`` the rate per second (increase / time the
    increases span); ``maximum`` and ``minimum`` are the highest and lowest per-second
    rate between two samples. None when the window has no value (a counter needs two
    samples).
    """
    if not counter:
        values = [v for t, v in samples if t > start]
        return _AGGS[aggregation](values) if values else None
    steps = []  # (increase, seconds) per pair of samples ending inside the window
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if t1 > start and t1 > t0:
            steps.append((v1 - v0 if v1 >= v0 else v1, t1 - t0))
    if not steps:
        return None
    increase = sum(d for d, _ in steps)
    if aggregation == pb.ALERT_AGGREGATION_TOTAL:
        return increase
    if aggregation == pb.ALERT_AGGREGATION_AVERAGE:
        return increase / sum(dt for _, dt in steps)
    return _AGGS[aggregation]([d / dt for d, dt in steps])


_OP_TEXT = {
    pb.ALERT_OPERATOR_GREATER_THAN: "greater than",
    pb.ALERT_OPERATOR_GREATER_THAN_OR_EQUAL: "greater than or equal to",
    pb.ALERT_OPERATOR_LESS_THAN: "less than",
    pb.ALERT_OPERATOR_LESS_THAN_OR_EQUAL: "less than or equal to",
}


def metric_value(metrics: pb.JobMetrics, name: str) -> float:
    if name == "watermark_delay":
        return metrics.watermark_delay.ToNanoseconds() / 1e9
    return float(getattr(metrics, name))


def validate_rule(rule: pb.AlertRule) -> None:
    """INVALID_ARGUMENT naming the field when a rule cannot be evaluated."""
    def bad(field_name: str, why: str) -> HeadwaterError:
        return HeadwaterError(Reason.INVALID_ARGUMENT, f"rule.{field_name}: {why}",
                              metadata={"field": f"rule.{field_name}"})

    if rule.metric not in METRIC_FIELDS:
        raise bad("metric", f"{rule.metric!r} is not a job metric; one of {', '.join(METRIC_FIELDS)}")
    if rule.operator not in _OPS:
        raise bad("operator", "set a comparison (GREATER_THAN, ...)")
    if rule.aggregation not in _AGGS:
        raise bad("aggregation", "set an aggregation (MAXIMUM, MINIMUM, AVERAGE, TOTAL)")
    if rule.window.ToNanoseconds() <= 0:
        raise bad("window", "must be positive")
    if rule.frequency.ToNanoseconds() <= 0:
        raise bad("frequency", "must be positive")
    for url in rule.webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise bad("webhook_urls", f"{url!r} is not an http(s) URL")


@dataclass
class _RuleState:
    next_eval: float = 0.0


@dataclass
class AlertEvaluator:
    """Samples job metrics and evaluates every rule of every job."""

    rules: Callable[[], list[pb.AlertRule]]
    metrics_of: Callable[[str], pb.JobMetrics | None]
    sample_interval_s: float = 1.0
    keep_alerts: int = 1000
    webhook_policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=4, max_delay_s=20))
    samples: dict[str, collections.deque] = field(default_factory=dict)
    alerts: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))
    _state: dict[str, _RuleState] = field(default_factory=dict)
    _task: asyncio.Task | None = None
    _session: aiohttp.ClientSession | None = None
    _sends: set = field(default_factory=set)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alert-evaluator")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._sends:
            await asyncio.wait(self._sends, timeout=5)
        if self._session:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            try:
                self.tick(time.time())
            except Exception:  # noqa: BLE001 - one bad rule must not stop the others
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.sample_interval_s)

    def tick(self, now: float) -> list[pb.Alert]:
        """Take one sample of each job's metrics and evaluate the rules that are due."""
        fired = []
        rules = self.rules()
        jobs = {r.name.split("/alertRules/")[0] for r in rules}
        for job in jobs:
            metrics = self.metrics_of(job)
            if metrics is not None:
                self.samples.setdefault(job, collections.deque(maxlen=100_000)).append((now, metrics))
        for rule in rules:
            state = self._state.setdefault(rule.name, _RuleState(next_eval=now))
            if now < state.next_eval:
                continue
            state.next_eval = now + rule.frequency.ToNanoseconds() / 1e9
            alert = self.evaluate(rule, now)
            if alert is not None:
                fired.append(alert)
        return fired

    def evaluate(self, rule: pb.AlertRule, now: float) -> pb.Alert | None:
        job = rule.name.split("/alertRules/")[0]
        window = rule.window.ToNanoseconds() / 1e9
        counter = rule.metric in COUNTERS
        kept = self.samples.get(job, ())
        inside = [i for i, (t, _) in enumerate(kept) if t > now - window]
        # A counter's first step into the window starts at the sample just before it.
        first = max(0, inside[0] - 1) if inside and counter else (inside[0] if inside else len(kept))
        samples = [(t, metric_value(m, rule.metric)) for t, m in list(kept)[first:]]
        value = aggregate(samples, rule.aggregation, counter, now - window)
        if value is None:
            return None
        if not _OPS[rule.operator](value, rule.threshold):
            return None
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(int(now * 1e9))
        agg = pb.AlertAggregation.Name(rule.aggregation).removeprefix("ALERT_AGGREGATION_").lower()
        alert = pb.Alert(
            rule=rule.name, value=value, fire_time=ts,
            description=(f"{agg} {rule.metric} over {window:g}s is {value:g}"
                         f"{'/s' if counter and rule.aggregation != pb.ALERT_AGGREGATION_TOTAL else ''}, "
                         f"{_OP_TEXT[rule.operator]} {rule.threshold:g}"),
        )
        self.alerts.appendleft(alert)
        log.warning("alert %s: %s", rule.name, alert.description)
        for url in rule.webhook_urls:
            task = asyncio.get_event_loop().create_task(self._post(url, alert))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        return alert

    async def _post(self, url: str, alert: pb.Alert) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        session = self._session
        body = {
            "schemaId": "headwater.alert.v1",
            "rule": alert.rule,
            "value": alert.value,
            "fireTime": alert.fire_time.ToJsonString(),
            "description": alert.description,
        }

        async def send() -> None:
            try:
                async with session.post(url, json=body) as resp:
                    if resp.status >= 500 or resp.status == 429:
                        raise HeadwaterError(Reason.SERVICE_BUSY, f"webhook {url} answered {resp.status}")
                    if resp.status >= 400:
                        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"webhook {url} refused: {resp.status}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise HeadwaterError(Reason.SERVICE_TIMEOUT, f"webhook {url}: {exc}") from exc

        try:
            await retry_async(send, self.webhook_policy)
        except HeadwaterError as exc:
            log.error("alert %s: webhook not delivered: %s", alert.rule, exc)
