"""Wire-identical "packed" views of the ingestion messages (hot paths).

``repeated EventData events`` and ``repeated bytes events`` are the same bytes
on the wire: length-delimited fields. These message classes, built at import
from the real descriptors with only the ``events`` field retyped to ``bytes``,
let the SDK send pre-serialized events and let the service (and perf tools)
handle events as opaque bytes, never as one Python object per event.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from headwater.v1 import ingestion_pb2

__all__ = ["SERVICE", "PublishEventsRequestPacked", "PublishEventsStreamRequestPacked", "ReadEventsResponseColumns",
           "ReadEventsResponsePacked", "method"]

SERVICE = "headwater.v1.IngestionService"


def method(name: str) -> str:
    """Full method path of an IngestionService RPC."""
    return f"/{SERVICE}/{name}"


def _packed(pool: descriptor_pool.DescriptorPool) -> tuple[Any, Any, Any]:  # classes made at run time
    name = "headwater/v1/ingestion_packed.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(name=name, package="headwater.v1.packed", syntax="proto3")
        fdp.dependency.append("google/protobuf/timestamp.proto")
        for src in (ingestion_pb2.PublishEventsRequest, ingestion_pb2.PublishEventsStreamRequest,
                    ingestion_pb2.ReadEventsResponse):
            msg = fdp.message_type.add()
            src.DESCRIPTOR.CopyToProto(msg)
            msg.name = src.DESCRIPTOR.name + "Packed"
            for f in msg.field:
                if f.name == "events":
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("type_name")
        pool.Add(fdp)
    publish, stream, read = (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"headwater.v1.packed.{n}Packed"))
        for n in ("PublishEventsRequest", "PublishEventsStreamRequest", "ReadEventsResponse"))
    return publish, stream, read


PublishEventsRequestPacked, PublishEventsStreamRequestPacked, ReadEventsResponsePacked = _packed(
    descriptor_pool.Default())


def _columns(pool: descriptor_pool.DescriptorPool) -> Any:  # a class made at run time
    """``ReadEventsResponse`` whose ``packed`` field's number columns (``repeated
    sfixed64``/``sfixed32``, sent packed: one length-delimited field each) are retyped
    to ``bytes``: a reader maps them with ``numpy.frombuffer`` instead of making one
    Python int per value. Only for a sender that writes each column as one packed
    field, as the ingestion service does."""
    name = "headwater/v1/ingestion_columns.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(name=name, package="headwater.v1.columns", syntax="proto3")
        fdp.dependency.extend(["google/protobuf/timestamp.proto", ingestion_pb2.DESCRIPTOR.name])
        packed = fdp.message_type.add()
        ingestion_pb2.PackedEvents.DESCRIPTOR.CopyToProto(packed)
        packed.name = "PackedEventsColumns"
        for f in packed.field:
            if f.type in (descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64,
                          descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32):
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                f.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
                f.ClearField("options")
        resp = fdp.message_type.add()
        ingestion_pb2.ReadEventsResponse.DESCRIPTOR.CopyToProto(resp)
        resp.name = "ReadEventsResponseColumns"
        for f in resp.field:
            if f.name == "packed":
                f.type_name = ".headwater.v1.columns.PackedEventsColumns"
        pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("headwater.v1.columns.ReadEventsResponseColumns"))


#: ReadEvents answers as columns: ``packed.body_offsets``, ``sequence_numbers``,
#: ``enqueued_times_us``, ``offsets`` are little-endian int64 bytes,
#: ``content_type_ids`` little-endian int32 bytes (wire-identical to ReadEventsResponse).
ReadEventsResponseColumns = _columns(descriptor_pool.Default())
