"""Settings of the ingestion service (on top of :class:`headwater.config.ServiceConfig`).

Every field can be set in the config file (``ingestion:`` section or top level)
or through ``HEADWATER_INGESTION_<FIELD>`` / ``HEADWATER_<FIELD>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headwater.config import ConfigError, ServiceConfig

__all__ = ["IngestionConfig"]


@dataclass
class IngestionConfig(ServiceConfig):
    """Ingestion settings."""

    #: When appended bytes reach the disk: every_batch (ack after fdatasync),
    #: interval (fsync every fsync_interval_ms; survives kill -9, a power loss
    #: may lose the last interval), never (the OS decides; survives kill -9).
    fsync_policy: str = "interval"
    #: Milliseconds between syncs under the interval policy.
    fsync_interval_ms: int = 100
    #: A segment file is closed and a new one started past this size.
    segment_max_bytes: int = 64 * 1024 * 1024
    #: ... or when its first event is older than this (so retention can delete it).
    segment_max_age_s: float = 3600.0
    #: Largest partition count a hub may have.
    max_partitions: int = 32
    #: Consumer groups per hub, $Default included.
    max_consumer_groups: int = 20
    #: Largest event and largest batch, in bytes of encoded EventData.
    max_message_bytes: int = 1024 * 1024
    #: Retention of a hub created without one, in seconds (7 days).
    default_retention_s: float = 7 * 24 * 3600.0
    #: Seconds between retention sweeps.
    retention_check_s: float = 60.0
    #: How long an ownership claim lasts unless renewed.
    ownership_expiry_s: float = 30.0
    #: The HTTP ingest port (POST JSON events); 0 picks a free one, -1 disables it.
    http_port: int = 8081
    #: The Kafka protocol port (Event Hubs answers Kafka on 9093); 0 picks a free one, -1 disables it.
    kafka_port: int = 9093
    #: Host name the Kafka endpoint advertises in Metadata/FindCoordinator; empty: ``host``
    #: (or, when that is a wildcard, the address the client connected to).
    kafka_advertised_host: str = ""
    #: Load the compiled batch kernels (log/jit.py: about 0.5 s of one core, in a thread) when the
    #: service starts, so the first large batches do not take the Python path while they load;
    #: false: at the first large batch (the test suite's services, which start by the hundred).
    preload_kernels: bool = True
    #: Log backend: embedded (segment files) or nats (JetStream streams, the scaled-out profile).
    log_backend: str = "embedded"
    #: NATS server(s) of the nats backend (comma-separated for a cluster's seeds).
    nats_url: str = "nats://127.0.0.1:4222"
    #: Addresses GetNamespace gives clients for the other services of the namespace
    #: (empty: $HEADWATER_HOME/endpoints.json from `headwater up`, else this host's default ports).
    registry_address: str = ""
    processing_address: str = ""
    sink_address: str = ""
    #: Replicas of every stream and bucket the nats backend creates (1 on one server, 3 on a 3-node cluster).
    nats_replicas: int = 1
    #: Prefix of the stream and bucket names: instances with the same prefix serve the same hubs.
    nats_prefix: str = "HW"
    #: Seconds JetStream remembers an idempotent producer's batch ids (Nats-Msg-Id dedupe window).
    nats_duplicate_window_s: float = 120.0
    #: Megabytes of recent batches an instance keeps in memory (its tail: live reads without a round trip).
    nats_cache_mb: int = 256

    def __post_init__(self) -> None:
        if self.fsync_policy not in ("every_batch", "interval", "never"):
            raise ConfigError(f"setting 'fsync_policy': {self.fsync_policy!r} is not one of "
                              "every_batch, interval, never", setting="fsync_policy")
        if self.log_backend not in ("embedded", "nats"):
            raise ConfigError(f"setting 'log_backend': {self.log_backend!r} is not one of embedded, nats",
                              setting="log_backend")
        for name in ("fsync_interval_ms", "segment_max_bytes", "max_partitions", "max_consumer_groups",
                     "max_message_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name!r} must be > 0, got {getattr(self, name)!r}", setting=name)
        if not 1 <= self.nats_replicas <= 5:
            raise ConfigError(f"setting 'nats_replicas' must be 1 to 5, got {self.nats_replicas!r}",
                              setting="nats_replicas")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", self.nats_prefix):
            raise ConfigError(f"setting 'nats_prefix' {self.nats_prefix!r} must be 1 to 32 letters, digits, "
                              "'_' or '-'", setting="nats_prefix")
        if self.segment_max_bytes < 4096:
            raise ConfigError("setting 'segment_max_bytes' must be at least 4096", setting="segment_max_bytes")
