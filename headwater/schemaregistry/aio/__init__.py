"""The asyncio SchemaRegistryClient (azure.schemaregistry.aio's shape)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Self

import grpc

from headwater.auth import ConnectionString
from headwater.channel import aio_channel
from headwater.errors import HeadwaterError
from headwater.retry import DEFAULT_POLICY, RetryPolicy, retry_async
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
    """Async twin of :class:`headwater.schemaregistry.SchemaRegistryClient`; use ``async with``."""

    def __init__(self, fully_qualified_namespace: str, credential: Any, *, cache: bool = True,
                 retry_policy: RetryPolicy = DEFAULT_POLICY, timeout: float = 30.0,
                 root_certificates: bytes | None = None, **_kwargs: Any) -> None:
        conn = connection_for(fully_qualified_namespace, credential)
        self.fully_qualified_namespace = conn.address
        self._conn, self._root_certificates = conn, root_certificates
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.SchemaRegistryServiceStub | None = None
        self._retry, self._timeout = retry_policy, timeout
        self._rest = dataclasses.replace(retry_policy, max_attempts=max(1, retry_policy.max_attempts - 1))
        self.cache_enabled = cache
        self._by_id: LruCache[str, Schema] = LruCache()
        self._props: LruCache[tuple[str, str, str, str], SchemaProperties] = LruCache()

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> SchemaRegistryClient:
        conn = ConnectionString.parse(conn_str)
        return cls(conn.endpoint, credential_of(conn), **kwargs)

    async def _open(self) -> pb_grpc.SchemaRegistryServiceStub:
        """The registry's address from the namespace endpoint (GetNamespace), then a channel to it."""
        if self._stub is None:
            import asyncio

            from headwater.namespace import service_address

            address = await asyncio.to_thread(service_address, self._conn, "registry",
                                              root_certificates=self._root_certificates)
            if self._stub is None:
                self._channel = aio_channel(self._conn, root_certificates=self._root_certificates,
                                            address=address)
                self._stub = pb_grpc.SchemaRegistryServiceStub(self._channel)
        return self._stub

    async def _call(self, method: str, request: Any) -> Any:
        rpc = getattr(self._stub or await self._open(), method)

        async def once() -> Any:
            try:
                return await rpc(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                raise await HeadwaterError.from_aio_call(exc) from None

        try:  # the first try without the retry machinery (most calls succeed)
            return await once()
        except HeadwaterError as exc:
            if not exc.is_transient or self._retry.max_attempts <= 1:
                raise
        return await retry_async(once, self._rest)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register_schema(self, group_name: str, name: str, definition: str, format: SchemaFormat | str,
                              **_kwargs: Any) -> SchemaProperties:
        fmt = SchemaFormat.parse(format)
        key = (group_name, name, fmt, definition)
        hit = self._props.get(key) if self.cache_enabled else None
        if hit is not None:
            return hit
        resp = await self._call("RegisterSchema", register_request(group_name, name, definition, fmt))
        props = SchemaProperties.from_pb(resp.properties)
        if self.cache_enabled:
            self._props.put(key, props)
            if resp.created:  # stored as this exact text (see the sync client)
                self._by_id.put(props.id, Schema(definition, props))
        return props

    async def get_schema(self, schema_id: str | None = None, *, group_name: str | None = None,
                         name: str | None = None, version: int | None = None, **_kwargs: Any) -> Schema:
        if schema_id and self.cache_enabled:
            hit = self._by_id.get(schema_id)
            if hit is not None:
                return hit
        request = schema_request(schema_id, group_name, name, version)
        method = "GetSchema" if isinstance(request, pb.GetSchemaRequest) else "GetSchemaVersion"
        schema = Schema.from_pb((await self._call(method, request)).schema)
        if self.cache_enabled:
            self._by_id.put(schema.properties.id, schema)
        return schema

    async def get_schema_properties(self, group_name: str, name: str, definition: str,
                                    format: SchemaFormat | str, **_kwargs: Any) -> SchemaProperties:
        fmt = SchemaFormat.parse(format)
        key = (group_name, name, fmt, definition)
        hit = self._props.get(key) if self.cache_enabled else None
        if hit is not None:
            return hit
        props = SchemaProperties.from_pb(
            (await self._call("LookupSchema", lookup_request(group_name, name, definition, fmt))).properties)
        if self.cache_enabled:
            self._props.put(key, props)
        return props

    async def list_schema_versions(self, group_name: str, name: str, *,
                                   page_size: int = 100) -> AsyncIterator[SchemaProperties]:
        token = ""
        while True:
            resp = await self._call("ListSchemaVersions", pb.ListSchemaVersionsRequest(
                group_name=group_name, name=name, page_size=page_size, page_token=token))
            for p in resp.versions:
                yield SchemaProperties.from_pb(p)
            token = resp.next_page_token
            if not token:
                return

    async def create_schema_group(self, group_name: str, format: SchemaFormat | str,
                                  compatibility: CompatibilityMode | str = CompatibilityMode.BACKWARD) -> SchemaGroup:
        resp = await self._call("CreateSchemaGroup", pb.CreateSchemaGroupRequest(
            group_id=group_name, format=SchemaFormat.parse(format).to_pb(),
            compatibility=CompatibilityMode.parse(compatibility).to_pb()))
        return SchemaGroup.from_pb(resp.group)

    async def get_schema_group(self, group_name: str) -> SchemaGroup:
        resp = await self._call("GetSchemaGroup", pb.GetSchemaGroupRequest(name=group_name))
        return SchemaGroup.from_pb(resp.group)

    async def set_compatibility(self, group_name: str, compatibility: CompatibilityMode | str) -> SchemaGroup:
        resp = await self._call("SetCompatibility", pb.SetCompatibilityRequest(
            name=group_name, compatibility=CompatibilityMode.parse(compatibility).to_pb()))
        return SchemaGroup.from_pb(resp.group)
