"""The blocking SchemaRegistryClient, in the shape of azure-schemaregistry's."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any, Self

import grpc

from headwater.auth import ConnectionString
from headwater.channel import sync_channel
from headwater.errors import HeadwaterError
from headwater.retry import DEFAULT_POLICY, RetryPolicy, retry_sync
from headwater.schemaregistry._common import (
    CompatibilityMode,
    LruCache,
    Schema,
    SchemaFormat,
    SchemaGroup,
    SchemaProperties,
    connection_for,
    credential_of,
    lookup_request,
    register_request,
    schema_request,
)
from headwater.v1 import schema_registry_pb2 as pb
from headwater.v1 import schema_registry_pb2_grpc as pb_grpc

__all__ = ["SchemaRegistryClient"]


class SchemaRegistryClient:
    """Registers and fetches schemas in a Headwater registry.

    :param fully_qualified_namespace: the namespace endpoint's ``host:port`` (or
        ``headwater://host:port/``; a bare host means port 50051): the ingestion service, which
        says where the registry is (GetNamespace); a registry's own address works too.
    :param credential: a :class:`SharedAccessKeyCredential` (policy name and key).
    :keyword cache: keep schemas and properties already seen (default True); ids are immutable,
        so a cached answer is never stale, except for a version deleted since.
    :keyword retry_policy: how transient failures are retried.
    :keyword timeout: seconds per call (default 30).
    """

    def __init__(self, fully_qualified_namespace: str, credential: Any, *, cache: bool = True,
                 retry_policy: RetryPolicy = DEFAULT_POLICY, timeout: float = 30.0,
                 root_certificates: bytes | None = None, **_kwargs: Any) -> None:
        self._conn = connection_for(fully_qualified_namespace, credential)
        self.fully_qualified_namespace = self._conn.address
        self._root_certificates = root_certificates
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.SchemaRegistryServiceStub | None = None
        self._lock = threading.Lock()
        self._retry, self._timeout = retry_policy, timeout
        self._rest = dataclasses.replace(retry_policy, max_attempts=max(1, retry_policy.max_attempts - 1))
        self.cache_enabled = cache
        self._by_id: LruCache[str, Schema] = LruCache()
        self._props: LruCache[tuple[str, str, str, str], SchemaProperties] = LruCache()
        self._by_version: LruCache[tuple[str | None, str | None, int], Schema] = LruCache()

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> SchemaRegistryClient:
        """A client from ``Endpoint=headwater://host:port/;SharedAccessKeyName=...;SharedAccessKey=...``."""
        conn = ConnectionString.parse(conn_str)
        return cls(conn.endpoint, credential_of(conn), **kwargs)

    # -- plumbing --------------------------------------------------------------------
    def _open(self) -> pb_grpc.SchemaRegistryServiceStub:
        with self._lock:
            if self._stub is None:
                from headwater.namespace import service_address

                address = service_address(self._conn, "registry", root_certificates=self._root_certificates)
                self._channel = sync_channel(self._conn, root_certificates=self._root_certificates,
                                             address=address)
                self._stub = pb_grpc.SchemaRegistryServiceStub(self._channel)
            return self._stub

    def _call(self, method: str, request: Any) -> Any:
        rpc = getattr(self._stub or self._open(), method)

        def once() -> Any:
            try:
                return rpc(request, timeout=self._timeout)
            except grpc.RpcError as exc:
                raise HeadwaterError.from_rpc_error(exc) from None

        try:  # the first try without the retry machinery (most calls succeed)
            return once()
        except HeadwaterError as exc:
            if not exc.is_transient or self._retry.max_attempts <= 1:
                raise
        return retry_sync(once, self._rest)

    def close(self) -> None:
        """Close the channel; the next call opens a new one (the book uses ``with client:`` twice)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clear_cache(self) -> None:
        for cache in (self._by_id, self._props, self._by_version):
            cache.clear()

    def _remember(self, schema: Schema | None, props: SchemaProperties, definition: str = "") -> None:
        if not self.cache_enabled:
            return
        if definition:
            self._props.put((props.group_name, props.name, props.format, definition), props)
        if schema is not None:
            self._by_id.put(props.id, schema)
            self._by_version.put((props.group_name, props.name, props.version), schema)

    # -- schemas ---------------------------------------------------------------------
    def register_schema(self, group_name: str, name: str, definition: str, format: SchemaFormat | str,
                        **_kwargs: Any) -> SchemaProperties:
        """Register ``definition`` as schema ``name`` in ``group_name``; the same definition returns the same id.

        Raises :class:`HeadwaterError` with reason SCHEMA_INCOMPATIBLE (the broken rules in its
        message and in ``metadata["issues"]``, JSON) or INVALID_ARGUMENT (the parser's message).
        """
        return self._properties("RegisterSchema", register_request, group_name, name, definition, format)

    def get_schema(self, schema_id: str | None = None, *, group_name: str | None = None,
                   name: str | None = None, version: int | None = None, **_kwargs: Any) -> Schema:
        """A schema by id, or by ``group_name``, ``name`` and ``version`` (None or 0: the latest)."""
        if self.cache_enabled:
            hit = (self._by_id.get(schema_id) if schema_id
                   else self._by_version.get((group_name, name, version)) if version else None)
            if hit is not None:
                return hit
        request = schema_request(schema_id, group_name, name, version)
        method = "GetSchema" if isinstance(request, pb.GetSchemaRequest) else "GetSchemaVersion"
        schema = Schema.from_pb(self._call(method, request).schema)
        self._remember(schema, schema.properties)
        return schema

    def get_schema_properties(self, group_name: str, name: str, definition: str, format: SchemaFormat | str,
                              **_kwargs: Any) -> SchemaProperties:
        """The properties of a registered definition (RESOURCE_NOT_FOUND when it is not registered)."""
        return self._properties("LookupSchema", lookup_request, group_name, name, definition, format)

    def _properties(self, method: str, make: Any, group_name: str, name: str, definition: str,
                    format: SchemaFormat | str) -> SchemaProperties:
        fmt = SchemaFormat.parse(format)
        if self.cache_enabled:
            hit = self._props.get((group_name, name, fmt, definition))
            if hit is not None:
                return hit
        resp = self._call(method, make(group_name, name, definition, fmt))
        props = SchemaProperties.from_pb(resp.properties)
        # Only a version this call created is known to be stored as this exact text; an existing
        # one may have been registered with other whitespace, and get_schema returns the stored text.
        created = getattr(resp, "created", False)
        self._remember(Schema(definition, props) if created else None, props, definition)
        return props

    def list_schema_versions(self, group_name: str, name: str, *, page_size: int = 100) -> Iterator[SchemaProperties]:
        """Every live version of a schema, oldest first (pages fetched as needed)."""
        token = ""
        while True:
            resp = self._call("ListSchemaVersions", pb.ListSchemaVersionsRequest(
                group_name=group_name, name=name, page_size=page_size, page_token=token))
            for p in resp.versions:
                yield SchemaProperties.from_pb(p)
            token = resp.next_page_token
            if not token:
                return

    def delete_schema_version(self, group_name: str, name: str, version: int) -> SchemaProperties:
        """Delete one version (needs Manage); its id and number are never given again."""
        props = SchemaProperties.from_pb(self._call("DeleteSchemaVersion", pb.DeleteSchemaVersionRequest(
            group_name=group_name, name=name, version=version)).properties)
        self.clear_cache()
        return props

    # -- groups ------------------------------------------------------------------------
    def create_schema_group(self, group_name: str, format: SchemaFormat | str,
                            compatibility: CompatibilityMode | str = CompatibilityMode.BACKWARD) -> SchemaGroup:
        """Create a group (needs Manage)."""
        resp = self._call("CreateSchemaGroup", pb.CreateSchemaGroupRequest(
            group_id=group_name, format=SchemaFormat.parse(format).to_pb(),
            compatibility=CompatibilityMode.parse(compatibility).to_pb()))
        return SchemaGroup.from_pb(resp.group)

    def get_schema_group(self, group_name: str) -> SchemaGroup:
        return SchemaGroup.from_pb(self._call("GetSchemaGroup", pb.GetSchemaGroupRequest(name=group_name)).group)

    def list_schema_groups(self, *, page_size: int = 100) -> Iterator[SchemaGroup]:
        token = ""
        while True:
            resp = self._call("ListSchemaGroups", pb.ListSchemaGroupsRequest(page_size=page_size, page_token=token))
            for g in resp.groups:
                yield SchemaGroup.from_pb(g)
            token = resp.next_page_token
            if not token:
                return

    def set_compatibility(self, group_name: str, compatibility: CompatibilityMode | str) -> SchemaGroup:
        """Change a group's compatibility mode (needs Manage)."""
        resp = self._call("SetCompatibility", pb.SetCompatibilityRequest(
            name=group_name, compatibility=CompatibilityMode.parse(compatibility).to_pb()))
        return SchemaGroup.from_pb(resp.group)
