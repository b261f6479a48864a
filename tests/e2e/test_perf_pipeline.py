"""`headwater perf pipeline` delivers every event end to end and reports the DESIGN keys."""

from __future__ import annotations

import pytest

from headwater.perf.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def test_passthrough_delivers_every_event_with_latency_percentiles():
    r = run_pipeline(rate=1000, seconds=1.5)
    assert r["sent"] > 0 and r["delivered"] == r["sent"] == r["rows"]
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert r["events_per_s"] > 0
    # each service's peak memory, and the job's worker process (a child of processing) apart
    rss = r["service_peak_rss_mb"]
    assert {"ingestion", "sink", "processing", "processing worker"} <= set(rss)
    assert all(v > 0 for v in rss.values())
