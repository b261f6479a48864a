"""`headwater perf produce|consume --protocol kafka` runs end to end (small counts: a smoke test, not a timing)."""

from __future__ import annotations

import json
import subprocess

import pytest

from headwater.procs import headwater_cmd


@pytest.mark.parametrize("command", ["produce", "consume"])
def test_perf_kafka_protocol_reports_json(command, _isolated_home):
    out = subprocess.run([*headwater_cmd(), "perf", command, "--protocol", "kafka", "--events", "3000",
                          "--batch-size", "500", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "kafka" and result["command"] == command
    assert result["events"] >= 3000 and result["events_per_s"] > 0 and result["grpc_events_per_s"] > 0
    assert result["peak_rss_mb"] > 0
