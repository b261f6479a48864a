"""gRPC servicer: proto <-> registry domain. Thin; the rules live in registry.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.model import Group, Version
from headwater.services.registry.registry import Registry
from headwater.v1 import schema_registry_pb2 as pb
from headwater.v1 import schema_registry_pb2_grpc as pb_grpc

__all__ = ["FORMAT_TO_PB", "MODE_TO_PB", "RegistryServicer"]

FORMAT_TO_PB = {"avro": pb.SCHEMA_FORMAT_AVRO, "json": pb.SCHEMA_FORMAT_JSON}
FORMAT_FROM_PB = {v: k for k, v in FORMAT_TO_PB.items()}
MODE_TO_PB = {"NONE": pb.COMPATIBILITY_MODE_NONE, "BACKWARD": pb.COMPATIBILITY_MODE_BACKWARD,
              "BACKWARD_TRANSITIVE": pb.COMPATIBILITY_MODE_BACKWARD_TRANSITIVE,
              "FORWARD": pb.COMPATIBILITY_MODE_FORWARD, "FORWARD_TRANSITIVE": pb.COMPATIBILITY_MODE_FORWARD_TRANSITIVE,
              "FULL": pb.COMPATIBILITY_MODE_FULL, "FULL_TRANSITIVE": pb.COMPATIBILITY_MODE_FULL_TRANSITIVE}
MODE_FROM_PB = {v: k for k, v in MODE_TO_PB.items()}


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def group_pb(group: Group) -> pb.SchemaGroup:
    return pb.SchemaGroup(name=f"schemaGroups/{group.group_id}", group_id=group.group_id,
                          format=FORMAT_TO_PB[group.format], compatibility=MODE_TO_PB[group.compatibility],
                          create_time=_ts(group.create_time), update_time=_ts(group.update_time))


def properties_pb(v: Version) -> pb.SchemaProperties:
    return pb.SchemaProperties(id=v.id, format=FORMAT_TO_PB[v.format], group_name=v.group_id, name=v.name,
                               version=v.version, resource_name=v.resource_name, create_time=_ts(v.create_time))


def schema_pb(v: Version) -> pb.Schema:
    return pb.Schema(definition=v.definition, properties=properties_pb(v))


def _format(value: pb.SchemaFormat, required: bool = False) -> str:
    if value == pb.SCHEMA_FORMAT_UNSPECIFIED:
        if required:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "format is required: SCHEMA_FORMAT_AVRO or "
                                 "SCHEMA_FORMAT_JSON", metadata={"field": "format"})
        return ""
    if value not in FORMAT_FROM_PB:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown format {value}", metadata={"field": "format"})
    return FORMAT_FROM_PB[value]


def _mode(value: pb.CompatibilityMode, required: bool = False) -> str:
    if value == pb.COMPATIBILITY_MODE_UNSPECIFIED:
        if required:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "compatibility is required",
                                 metadata={"field": "compatibility"})
        return ""
    if value not in MODE_FROM_PB:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown compatibility mode {value}",
                             metadata={"field": "compatibility"})
    return MODE_FROM_PB[value]


class RegistryServicer(pb_grpc.SchemaRegistryServiceServicer):
    """Each RPC runs the blocking registry call in a worker thread."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @staticmethod
    async def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def CreateSchemaGroup(self, request, context):
        group = await self._run(self.registry.create_group, request.group_id, _format(request.format, True),
                                _mode(request.compatibility), idempotent=bool(request.request_id))
        return pb.CreateSchemaGroupResponse(group=group_pb(group))

    async def GetSchemaGroup(self, request, context):
        return pb.GetSchemaGroupResponse(group=group_pb(await self._run(self.registry.get_group, request.name)))

    async def ListSchemaGroups(self, request, context):
        groups, token = await self._run(self.registry.list_groups, request.page_size, request.page_token)
        return pb.ListSchemaGroupsResponse(groups=[group_pb(g) for g in groups], next_page_token=token)

    async def SetCompatibility(self, request, context):
        group = await self._run(self.registry.set_compatibility, request.name, _mode(request.compatibility, True))
        return pb.SetCompatibilityResponse(group=group_pb(group))

    async def RegisterSchema(self, request, context):
        version, created = await self._run(self.registry.register, request.group_name, request.name,
                                           request.definition, _format(request.format))
        return pb.RegisterSchemaResponse(properties=properties_pb(version), created=created)

    async def GetSchema(self, request, context):
        return pb.GetSchemaResponse(schema=schema_pb(await self._run(self.registry.get_by_id, request.id)))

    async def GetSchemaVersion(self, request, context):
        version = await self._run(self.registry.get_version, request.group_name, request.name, request.version)
        return pb.GetSchemaVersionResponse(schema=schema_pb(version))

    async def LookupSchema(self, request, context):
        version = await self._run(self.registry.lookup, request.group_name, request.name, request.definition,
                                  _format(request.format))
        return pb.LookupSchemaResponse(properties=properties_pb(version))

    async def ListSchemaVersions(self, request, context):
        versions, token = await self._run(self.registry.list_versions, request.group_name, request.name,
                                          request.page_size, request.page_token)
        return pb.ListSchemaVersionsResponse(versions=[properties_pb(v) for v in versions],
                                             next_page_token=token)

    async def DeleteSchemaVersion(self, request, context):
        version = await self._run(self.registry.delete_version, request.group_name, request.name,
                                  request.version, idempotent=bool(request.request_id))
        return pb.DeleteSchemaVersionResponse(properties=properties_pb(version))
