"""One namespace endpoint: find every service from the connection string's endpoint.

A Headwater connection string names the namespace endpoint, the ingestion
service. :func:`discover` asks it ``headwater.v1.NamespaceService/GetNamespace``
for the addresses of the registry, processing and sink services; clients then
open a channel to each and sign tokens for the namespace (the connection
string's endpoint), whichever service they call. An endpoint that does not
serve GetNamespace (a registry given directly, an older server) is used as it is.

:func:`local_connection_string` builds the namespace connection string of the
stack in ``$HEADWATER_HOME`` (endpoints.json from ``headwater up`` and the root
policy of auth.json) for the CLI and the examples.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import grpc

from headwater.auth import ConnectionString, Policy
from headwater.config import default_address, local_root_policy

__all__ = ["Namespace", "discover", "local_connection_string", "local_namespace", "service_address"]

SERVICES = ("ingestion", "registry", "processing", "sink")


@dataclass(frozen=True)
class Namespace:
    """The addresses GetNamespace returned (``discovered`` False: the endpoint did not serve it)."""

    uri: str
    ingestion: str = ""
    registry: str = ""
    processing: str = ""
    sink: str = ""
    http_ingest_url: str = ""
    dashboard_url: str = ""
    discovered: bool = True

    def address(self, service: str) -> str:
        return str(getattr(self, service))


_cache: dict[tuple[str, bool], Namespace] = {}
_lock = threading.Lock()


def discover(conn: ConnectionString, *, timeout: float = 5.0, root_certificates: bytes | None = None,
             refresh: bool = False) -> Namespace:
    """Ask the connection string's endpoint where the namespace's services are (cached per endpoint)."""
    from headwater.v1 import namespace_pb2, namespace_pb2_grpc

    key = (conn.address, conn.use_tls)
    with _lock:
        if not refresh and key in _cache:
            return _cache[key]
    if conn.use_tls or root_certificates:
        channel = grpc.secure_channel(conn.address, grpc.ssl_channel_credentials(root_certificates))
    else:
        channel = grpc.insecure_channel(conn.address)
    with channel:
        try:
            ns = namespace_pb2_grpc.NamespaceServiceStub(channel).GetNamespace(
                namespace_pb2.GetNamespaceRequest(), timeout=timeout).namespace
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            # Not a namespace endpoint: every service is the endpoint itself (not cached
            # as "discovered" so a later stack there is found).
            a = conn.address
            return Namespace(uri=conn.namespace_uri, ingestion=a, registry=a, processing=a, sink=a,
                             discovered=False)
    found = Namespace(uri=ns.uri or conn.namespace_uri, ingestion=ns.ingestion_address or conn.address,
                      registry=ns.registry_address, processing=ns.processing_address, sink=ns.sink_address,
                      http_ingest_url=ns.http_ingest_url, dashboard_url=ns.dashboard_url)
    with _lock:
        _cache[key] = found
    return found


def service_address(conn: ConnectionString, service: str, **kwargs: Any) -> str:
    """The address of ``service`` in ``conn``'s namespace; the endpoint itself when it cannot say."""
    if service == "ingestion":
        return conn.address
    try:
        return discover(conn, **kwargs).address(service) or conn.address
    except grpc.RpcError:
        return conn.address  # unreachable: the call that follows reports it


def local_connection_string(hub: str = "", policy: Policy | None = None) -> ConnectionString:
    """The namespace connection string of the local stack: ``$HEADWATER_CONNECTION_STRING`` when set,
    else the ingestion address (``$HEADWATER_INGESTION_ADDRESS``, endpoints.json, localhost:50051)
    signed with the root policy of ``$HEADWATER_HOME/auth.json`` (never created here)."""
    text = os.environ.get("HEADWATER_CONNECTION_STRING", "")
    if text:
        conn = ConnectionString.parse(text)
    else:
        root = policy or local_root_policy()
        conn = ConnectionString(endpoint=f"headwater://{default_address('ingestion')}/",
                                shared_access_key_name=root.name, shared_access_key=root.key)
    if hub:
        conn.entity_path = hub
    return conn


def local_namespace() -> str:
    """``host:port`` of the local namespace endpoint: ``$HEADWATER_CONNECTION_STRING``'s endpoint, else
    ``$HEADWATER_INGESTION_ADDRESS``, else endpoints.json of ``headwater up``, else localhost:50051."""
    text = os.environ.get("HEADWATER_CONNECTION_STRING", "")
    return ConnectionString.parse(text).address if text else default_address("ingestion")
