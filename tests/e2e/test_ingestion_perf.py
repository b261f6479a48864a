"""``headwater perf produce|consume`` run end to end (small, no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command,extra", [("produce", ["--mode", "unary"]), ("produce", []),
                                           ("consume", ["--sdk"])])
def test_perf_commands_print_a_json_summary(command, extra):
    res = subprocess.run([sys.executable, "-m", "headwater.perf.ingestion", command, "--events", "4000",
                          "--batch-size", "500", "--compare", "none", "--json", *extra],
                         capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["events"] >= 4000 and result["events_per_s"] > 0 and result["peak_rss_mb"] > 0
    if command == "produce":
        assert result["p50_ms"] > 0 and result["mb_per_s"] > 0
    else:
        assert result["sdk_events_per_s"] > 0
