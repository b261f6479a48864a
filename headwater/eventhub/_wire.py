"""Wire-identical "packed" views of the ingestion messages (hot paths).

``repeated EventData events`` and ``repeated bytes events`` are the same bytes
on the wire: length-delimited fields. These message classes, built at import
from the real descriptors with only the ``events`` field retyped to ``bytes``,
let the SDK send pre-serialized events and let the service (and perf tools)
handle events as opaque bytes, never as one Python object per event.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from headwater.v1 import ingestion_pb2

__all__ = ["SERVICE", "PublishEventsRequestPacked", "ReadEventsResponsePacked", "method"]

SERVICE = "headwater.v1.IngestionService"


def method(name: str) -> str:
    """Full method path of an IngestionService RPC."""
    return f"/{SERVICE}/{name}"


def _packed(pool: descriptor_pool.DescriptorPool) -> tuple[type, type]:
    name = "headwater/v1/ingestion_packed.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(name=name, package="headwater.v1.packed", syntax="proto3")
        fdp.dependency.append("google/protobuf/timestamp.proto")
        for src in (ingestion_pb2.PublishEventsRequest, ingestion_pb2.ReadEventsResponse):
            msg = fdp.message_type.add()
            src.DESCRIPTOR.CopyToProto(msg)
            msg.name = src.DESCRIPTOR.name + "Packed"
            for f in msg.field:
                if f.name == "events":
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("type_name")
        pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("headwater.v1.packed.PublishEventsRequestPacked")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("headwater.v1.packed.ReadEventsResponsePacked")))


PublishEventsRequestPacked, ReadEventsResponsePacked = _packed(descriptor_pool.Default())
