"""Prometheus metrics of the ingestion service, per hub and partition."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = [
           "CAPTURE_FILES",
           "HTTP_REQUESTS",
           "IN_BYTES",
           "IN_MESSAGES",
           "OUT_BYTES",
           "OUT_MESSAGES",
           "RETENTION_DELETED",
           "SERVER_ERRORS",
           "SIZE_REJECTED",
           "THROTTLED",
]

IN_MESSAGES = Counter("headwater_ingestion_incoming_messages_total", "Events appended.", ["hub", "partition"])
IN_BYTES = Counter("headwater_ingestion_incoming_bytes_total", "Bytes of events appended.", ["hub", "partition"])
OUT_MESSAGES = Counter("headwater_ingestion_outgoing_messages_total", "Events sent to readers.",
                       ["hub", "partition"])
OUT_BYTES = Counter("headwater_ingestion_outgoing_bytes_total", "Bytes of events sent to readers.",
                    ["hub", "partition"])
THROTTLED = Counter("headwater_ingestion_throttled_requests_total",
                    "Requests over the hub's throughput units.", ["hub"])
SERVER_ERRORS = Counter("headwater_ingestion_server_errors_total",
                        "Requests failed by the server (busy, timeout, internal).", ["hub"])
SIZE_REJECTED = Counter("headwater_ingestion_size_rejected_total",
                        "Batches refused with MESSAGE_SIZE_EXCEEDED.", ["hub"])
RETENTION_DELETED = Counter("headwater_ingestion_retention_deleted_events_total",
                            "Events removed by retention (whole segments).", ["hub", "partition"])
CAPTURE_FILES = Counter("headwater_ingestion_capture_files_total", "Avro capture files written.", ["hub"])
HTTP_REQUESTS = Counter("headwater_ingestion_http_requests_total", "HTTP ingest requests by status.",
                        ["status"])
