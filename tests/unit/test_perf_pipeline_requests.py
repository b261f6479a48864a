"""`headwater perf pipeline`'s generator keeps every request under the services' 1 MiB
publish limit at any rate (issue 10: --rate 100000 used to send batches over it)."""

from __future__ import annotations

import pytest

from headwater.eventhub.wire import PublishEventsRequestPacked
from headwater.perf.pipeline import MAX_REQUEST_BYTES, TripRequests, events_per_request


@pytest.mark.parametrize("rate", [None, 1000.0, 100_000.0, 1_000_000.0])
def test_requests_stay_under_the_limit_at_any_rate(rate):
    reqs = TripRequests("perf", events_per_request(rate))
    assert reqs.per_request >= 1
    for _ in range(len(reqs.templates)):
        data = reqs.next()
        assert len(data) <= MAX_REQUEST_BYTES < 2**20
        assert len(PublishEventsRequestPacked.FromString(data).events) == reqs.per_request
    if rate is not None and rate <= 100_000:
        assert reqs.per_request == events_per_request(rate)  # 50 requests a second: no cap needed
