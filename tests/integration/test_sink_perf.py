"""``perf sink`` runs end to end and reports what DESIGN.md asks of perf commands (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args", [["--output", "memory"], ["--output", "postgres-upsert", "--direct"],
                                  ["--output", "jsonl"]])
def test_perf_sink_prints_one_json_object_last(args):
    proc = subprocess.run([sys.executable, "-m", "headwater.perf.sink", "sink", *args, "--rows", "3000",
                           "--batch", "500", "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert "rows/s" in lines[-2]
    result = json.loads(lines[-1])
    assert result["rows"] == 3000 and result["batch"] == 500
    for key in ("events_per_s", "peak_rss_mb", "mb_per_s", "p50_ms", "p99_ms"):
        assert result[key] > 0, key
