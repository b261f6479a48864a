"""The registry service (Azure Schema Registry): groups, schemas, versions, compatibility.

Rights: reads need Listen; RegisterSchema needs Send, because a producer that
encodes with ``auto_register=True`` registers the schema it writes with and
holds a Send key (a consumer only reads); group creation and changes, and
deleting versions, need Manage.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from headwater.auth import Right
from headwater.server import GrpcBinding, Service
from headwater.services.registry.config import RegistryConfig
from headwater.services.registry.registry import Registry
from headwater.services.registry.servicer import RegistryServicer
from headwater.services.registry.store import SqlStore, open_store
from headwater.v1 import schema_registry_pb2_grpc as pb_grpc

__all__ = ["SERVICE", "RegistryService"]


class RegistryService(Service):
    name = "registry"
    config_class = RegistryConfig
    config: RegistryConfig
    rights: ClassVar[dict[str, Right]] = {
        "GetSchemaGroup": Right.LISTEN,
        "ListSchemaGroups": Right.LISTEN,
        "GetSchema": Right.LISTEN,
        "GetSchemaVersion": Right.LISTEN,
        "LookupSchema": Right.LISTEN,
        "ListSchemaVersions": Right.LISTEN,
        "RegisterSchema": Right.SEND,
        "CreateSchemaGroup": Right.MANAGE,
        "SetCompatibility": Right.MANAGE,
        "DeleteSchemaVersion": Right.MANAGE,
    }

    def __init__(self, config: RegistryConfig) -> None:
        super().__init__(config)
        self.store: SqlStore | None = None
        self.registry: Registry | None = None
        self._servicer: RegistryServicer | None = None

    async def start(self) -> None:
        cfg = self.config
        store = self.store = await asyncio.to_thread(open_store, cfg)
        self.registry = Registry(store, default_compatibility=cfg.default_compatibility,
                                 auto_create_groups=cfg.auto_create_groups,
                                 max_definition_bytes=cfg.max_definition_bytes)
        self._servicer = RegistryServicer(self.registry)

    def bindings(self):
        if self._servicer is None:  # bindings() is asked after start(); keep it safe anyway
            return ()
        return [GrpcBinding(pb_grpc.add_SchemaRegistryServiceServicer_to_server, self._servicer,
                            "headwater.v1.SchemaRegistryService")]

    async def stop(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None


SERVICE = RegistryService
