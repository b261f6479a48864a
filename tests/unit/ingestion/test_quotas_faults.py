"""Throughput units and fault rules."""

from __future__ import annotations

import random

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.faults import PUBLISH, READ, FaultRule, FaultRules
from headwater.services.ingestion.quotas import HubQuota


def test_quota_refuses_over_one_unit_with_retry_after():
    q = HubQuota("h", 1)
    q.take_in(1000, 1000)
    with pytest.raises(HeadwaterError) as err:
        q.take_in(500, 500)
    assert err.value.reason is Reason.QUOTA_EXCEEDED and err.value.is_transient
    assert 0 < err.value.retry_after <= 1.0


def test_auto_inflate_raises_units_to_the_maximum():
    raised = []
    q = HubQuota("h", 1, auto_inflate=True, maximum_units=3)
    for _ in range(3):
        q.take_in(1000, 1000, on_inflate=raised.append)
    assert raised == [2, 3] and q.units == 3
    with pytest.raises(HeadwaterError):
        q.take_in(1000, 1000)


def test_no_units_means_no_quota():
    q = HubQuota("h", 0)
    for _ in range(100):
        q.take_in(10**6, 10**9)


def test_count_rule_fails_exactly_n_matching_requests():
    rules = FaultRules()
    rules.set(FaultRule("r", "h", PUBLISH, Reason.SERVICE_BUSY, count=2))
    rules.check("h", READ)  # other operation: not counted
    for _ in range(2):
        with pytest.raises(HeadwaterError) as err:
            rules.check("h", PUBLISH)
        assert err.value.reason is Reason.SERVICE_BUSY and err.value.is_transient
    rules.check("h", PUBLISH)
    assert rules.list("h")[0].injected == 2


def test_probability_rule_and_clear():
    rules = FaultRules(random.Random(1))
    rules.set(FaultRule("p", "h", "all", Reason.CONSUMER_DISCONNECTED, probability=0.5))
    fails = 0
    for _ in range(200):
        try:
            rules.check("h", READ)
        except HeadwaterError:
            fails += 1
    assert 60 < fails < 140
    assert rules.clear("h") == 1
    rules.check("h", READ)


def test_invalid_rules_are_refused():
    rules = FaultRules()
    with pytest.raises(HeadwaterError, match="probability"):
        rules.set(FaultRule("x", "h", PUBLISH, Reason.SERVICE_BUSY, probability=1.5))
    with pytest.raises(HeadwaterError, match="needs"):
        rules.set(FaultRule("x", "h", PUBLISH, Reason.SERVICE_BUSY))
