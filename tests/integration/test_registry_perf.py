"""`headwater perf registry` runs end to end (it starts its own registry) and reports its numbers."""

from __future__ import annotations

import argparse
import json

from headwater.perf.registry import add_perf_commands


def test_perf_registry_reports_every_number(capsys):
    parser = argparse.ArgumentParser()
    add_perf_commands(parser.add_subparsers())
    args = parser.parse_args(["registry", "--seconds", "0.1", "--batch", "50", "--json"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "serializer plugin decode" in out
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("events_per_s", "peak_rss_mb", "mb_per_s", "p50_ms", "p99_ms", "register_cache_off_per_s",
                "register_cache_on_per_s", "lookup_cache_off_per_s", "lookup_cache_on_per_s",
                "avro_encode_events_per_s", "avro_decode_encoder_events_per_s"):
        assert result[key] > 0, key
