"""``headwater.v1.NamespaceService`` on the ingestion service: the namespace endpoint.

A connection string names one endpoint, the ingestion service (as an Event Hubs
namespace is also its Schema Registry's). ``GetNamespace`` tells a client where
the other services of the namespace listen, so the SDK's registry client, the
CLI and any gRPC client reach all four services from that one string.

Each address comes from, in order: the ingestion setting
(``registry_address``, ``processing_address``, ``sink_address``, i.e.
``HEADWATER_INGESTION_REGISTRY_ADDRESS`` ...), the addresses ``headwater up``
wrote to ``$HEADWATER_HOME/endpoints.json``, else this service's host with the
service's default port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.config import DEFAULT_PORTS, read_endpoints
from headwater.v1 import namespace_pb2 as pb
from headwater.v1 import namespace_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from headwater.services.ingestion.server import IngestionService

__all__ = ["NamespaceServicer", "add_to_server"]

add_to_server = pb_grpc.add_NamespaceServiceServicer_to_server


class NamespaceServicer(pb_grpc.NamespaceServiceServicer):
    """Answers GetNamespace from settings, endpoints.json and defaults."""

    def __init__(self, service: IngestionService) -> None:
        self.service = service
        self.address = ""  # set once the gRPC port is bound

    def namespace(self) -> pb.Namespace:
        cfg = self.service.config
        host = self.address.rpartition(":")[0] or "localhost"
        endpoints = read_endpoints()
        found = {}
        for name in ("registry", "processing", "sink"):
            found[name] = (getattr(cfg, f"{name}_address", "") or endpoints.get(name)
                           or f"{host}:{DEFAULT_PORTS[name][0]}")
        http = f"http{'s' if cfg.tls_cert_file else ''}://{host}:{self.service.http_port}" \
            if self.service.http_port > 0 else ""
        return pb.Namespace(
            uri=f"headwater{'s' if cfg.tls_cert_file else ''}://{self.address}/",
            ingestion_address=self.address,
            registry_address=found["registry"],
            processing_address=found["processing"],
            sink_address=found["sink"],
            http_ingest_url=http,
            dashboard_url=endpoints.get("dashboard_url", ""),
            tls=bool(cfg.tls_cert_file),
        )

    async def GetNamespace(self, request, context):  # noqa: N802 - gRPC method name
        return pb.GetNamespaceResponse(namespace=self.namespace())
