"""The sink service: configuration and the gRPC services it serves.

Its RPCs land with the service's own issue; until then the server is real and
answers health and reflection.
"""

from __future__ import annotations

from headwater.server import Service

__all__ = ["SERVICE"]


class SinkService(Service):
    name = "sink"


SERVICE = SinkService
