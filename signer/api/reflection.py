"""Server reflection in both versions clients speak: ``grpc.reflection.v1`` and the older
``grpc.reflection.v1alpha``.

grpcio-reflection (up to 1.85 at least) serves v1alpha only (grpc/grpc#38576). The v1
protocol is v1alpha renamed: the same messages with the same field numbers, under package
``grpc.reflection.v1``. So one v1alpha servicer answers both services (its messages are
v1 messages on the wire), and the v1 file descriptor, v1alpha's renamed, is added to the
descriptor pool so that v1 describes itself as v1alpha does.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_pb2_grpc

V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE: str = v1alpha.SERVICE_NAME
#: both reflection services, as listed by reflection itself and opened by `auth`
SERVICE_NAMES = (V1_SERVICE, V1ALPHA_SERVICE)
_METHOD = "ServerReflectionInfo"


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto as upstream publishes it, made from v1alpha's."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(v1alpha_pb2.DESCRIPTOR.serialized_pb)
    old, new = f".{proto.package}.", f".{V1_PACKAGE}."
    proto.name, proto.package = V1_FILE, V1_PACKAGE
    for message in proto.message_type:
        for f in message.field:
            if f.type_name.startswith(old):
                f.type_name = new + f.type_name[len(old) :]
    for service in proto.service:
        for m in service.method:
            m.input_type = new + m.input_type[len(old) :]
            m.output_type = new + m.output_type[len(old) :]
    proto.options.Clear()  # v1alpha's are deprecated = true and its Java/Go package names
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    proto.options.java_multiple_files = True
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    return proto


def _register_v1(pool: descriptor_pool.DescriptorPool) -> None:
    try:  # a grpcio-reflection that ships v1 registers it itself: let it, not us
        importlib.import_module("grpc_reflection.v1.reflection_pb2")
    except ImportError:
        pass
    try:
        pool.FindFileByName(V1_FILE)  # registered already (a second server in this process)
    except KeyError:
        pool.AddSerializedFile(v1_file_descriptor().SerializeToString())


def enable_server_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Reflection v1 and v1alpha on ``server``, listing ``service_names`` and themselves."""
    _register_v1(descriptor_pool.Default())
    servicer = v1alpha.ReflectionServicer((*service_names, *SERVICE_NAMES))
    v1alpha_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {_METHOD: v1}),)
    )
