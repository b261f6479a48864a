"""Prometheus metrics shared by every service, and the /metrics endpoint.

Service-specific metrics are declared in the service's own module with the
``headwater_<service>_`` prefix; the ones here carry a ``service`` label.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Histogram, make_wsgi_app

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


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def start_metrics_server(host: str, port: int, certfile: str = "", keyfile: str = "",
                         allow: Callable[[str], bool] | None = None) -> tuple[object, int]:
    """Serve /metrics (Prometheus text format) on ``host:port`` in a thread; returns (server, port).

    ``allow(authorization_header)`` guards it when given: 401 with a Basic challenge otherwise."""
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if allow is not None and not allow(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Basic realm="headwater"')])
            return [b"unauthorized: send a SharedAccessSignature token with Listen or the basic-auth user\n"]
        body: Iterable[bytes] = metrics_app(environ, start_response)
        return body

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, app, Server, handler_class=_Quiet)
    if certfile and keyfile:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certfile, keyfile)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd, httpd.server_port
