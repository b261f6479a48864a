"""Settings of the sink service (file ``sink:`` section or HEADWATER_SINK_* variables)."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.config import ServiceConfig

__all__ = ["SinkConfig"]


@dataclass
class SinkConfig(ServiceConfig):
    """The base settings plus the dashboard and the output retry policy."""

    #: Port of the live dashboard (HTTP); 0 picks a free one, -1 disables it.
    dashboard_port: int = 8080
    #: Address the dashboard binds to; empty means the service's host.
    dashboard_host: str = ""
    #: Error policy Drop: a write that failed transiently this many times in a row (each
    #: attempt made by its writer: the service itself does not retry) is dropped whole.
    drop_after_attempts: int = 3
    #: Error policy Drop: ... or that has been failing transiently for this many seconds.
    drop_after_s: float = 5.0
    #: A JSON file of fault rules (headwater.faults), read again when it changes: tests make
    #: writes, flushes or opens of chosen sinks slow or failing. Empty: none.
    faults_file: str = ""
    #: Seconds between polls of the sinks (roll files, commit old buffers).
    poll_interval_s: float = 1.0
    #: The namespace's ingestion service (host:port): where ``hub`` sinks publish by default.
    ingestion_address: str = "localhost:50051"
    #: The namespace's schema registry (host:port): where ``hub`` sinks in Avro register schemas.
    registry_address: str = "localhost:50052"
    #: Bound of each live subscriber's queue (writes); a slower subscriber is disconnected.
    subscriber_queue: int = 1000
