"""Prometheus metrics of the sink service, per output (label ``sink``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BYTES", "DROPPED", "DUPLICATES", "ERRORS", "LATENCY", "RETRIES", "ROWS", "SUBSCRIBERS"]

ROWS = Counter("headwater_sink_rows_written_total", "Rows stored, per output.", ["sink", "kind"])
BYTES = Counter("headwater_sink_bytes_written_total", "Bytes of Arrow data stored, per output.", ["sink", "kind"])
LATENCY = Histogram("headwater_sink_write_latency_seconds", "Time to store one batch (retries included).",
                    ["sink", "kind"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RETRIES = Counter("headwater_sink_retries_total", "Write attempts retried after a transient failure.",
                  ["sink", "kind"])
DROPPED = Counter("headwater_sink_rows_dropped_total", "Rows dropped under error policy Drop.", ["sink", "kind"])
DUPLICATES = Counter("headwater_sink_duplicate_writes_total",
                     "Writes skipped because their checkpoint was already applied.", ["sink", "kind"])
ERRORS = Counter("headwater_sink_write_errors_total", "Writes that failed, by reason.", ["sink", "kind", "reason"])
SUBSCRIBERS = Gauge("headwater_sink_subscribers", "Live subscribers (gRPC streams and dashboard pages).", ["sink"])
