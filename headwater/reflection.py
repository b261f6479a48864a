"""gRPC server reflection under both names clients ask for: ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection ships only ``grpc.reflection.v1alpha.ServerReflection``; newer
clients (grpcurl, Postman, grpc-js's reflection, Go's ``grpcreflect``) ask for
``grpc.reflection.v1.ServerReflection`` first. The two protos are the same
messages with the same field numbers under another package, so one servicer
answers both: the v1 service is the v1alpha servicer behind a generic handler.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as pb

__all__ = ["V1_SERVICE_NAME", "V1ALPHA_SERVICE_NAME", "enable_reflection"]

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha on ``server``, listing ``service_names`` and both reflection names."""
    names = [*service_names]
    names += [n for n in (V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME) if n not in names]
    servicer = reflection.aio.ReflectionServicer(names)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(V1ALPHA_SERVICE_NAME, {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo, request_deserializer=pb.ServerReflectionRequest.FromString,
                response_serializer=pb.ServerReflectionResponse.SerializeToString)}),
        grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo, request_deserializer=pb.ServerReflectionRequest.FromString,
                response_serializer=pb.ServerReflectionResponse.SerializeToString)}),
    ))
