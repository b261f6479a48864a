"""Prometheus metrics shared by every service, and the /metrics endpoint.

Service-specific metrics are declared in the service's own module with the
``headwater_<service>_`` prefix; the ones here carry a ``service`` label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

__all__ = ["RPC_REQUESTS", "RPC_LATENCY", "start_metrics_server"]

RPC_REQUESTS = Counter(
    "headwater_rpc_requests_total",
    "gRPC requests handled, by service, method and status code.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "headwater_rpc_latency_seconds",
    "gRPC handler latency (unary calls; streams until their end).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def start_metrics_server(host: str, port: int, certfile: str = "", keyfile: str = "") -> tuple[object, int]:
    """Serve /metrics (Prometheus text format) on ``host:port`` in a thread; returns (server, port)."""
    kwargs = {}
    if certfile and keyfile:
        kwargs = {"certfile": certfile, "keyfile": keyfile}
    server, _thread = start_http_server(port, addr=host, **kwargs)
    return server, server.server_port
