"""A generic gRPC client, as grpcurl or Postman is one: it knows the reflection v1 protocol
(compiled here from gRPC's published .proto) and learns everything else from the server.

Nothing of the signer is imported: its messages are built from the descriptors the server
sends, in a descriptor pool of the client's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc_tools import protoc

PROTOS = Path(__file__).parent / "protos"
REFLECTION_V1 = "grpc/reflection/v1/reflection.proto"
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def reflection_v1_file(tmp: Path) -> descriptor_pb2.FileDescriptorProto:
    """gRPC's reflection v1 .proto, compiled by protoc."""
    out = tmp / "reflection_v1.desc"
    args = ["protoc", f"-I{PROTOS}", f"--descriptor_set_out={out}", str(PROTOS / REFLECTION_V1)]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on the reflection v1 proto")
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


class GenericClient:
    """Reflection v1 on ``channel``; services described by the server, then called."""

    def __init__(self, channel: grpc.Channel, tmp: Path) -> None:
        self.channel = channel
        self.pool = descriptor_pool.DescriptorPool()
        self.pool.Add(reflection_v1_file(tmp))
        self._request = self.message_class("grpc.reflection.v1.ServerReflectionRequest")
        response = self.message_class("grpc.reflection.v1.ServerReflectionResponse")
        self._info = channel.stream_stream(
            V1_METHOD,
            request_serializer=self._request.SerializeToString,
            response_deserializer=response.FromString,
        )

    def message_class(self, full_name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def ask(self, **request: Any) -> Any:
        """One reflection request, its one answer."""
        [answer] = list(self._info(iter([self._request(**request)]), timeout=10))
        return answer

    def services(self) -> list[str]:
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def files_for(self, symbol: str) -> list[descriptor_pb2.FileDescriptorProto]:
        """The file defining ``symbol`` and every file it imports, as the server sent them."""
        answer = self.ask(file_containing_symbol=symbol)
        if answer.HasField("error_response"):
            raise LookupError(f"{symbol}: {answer.error_response.error_message}")
        return [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]

    def service(self, name: str) -> ServiceDescriptor:
        """``name`` described by the server, its files added to the client's pool."""
        files = {f.name: f for f in self.files_for(name)}

        def add(file_name: str) -> None:
            try:
                self.pool.FindFileByName(file_name)
                return
            except KeyError:
                pass
            proto = files[file_name]
            for dependency in proto.dependency:
                add(dependency)
            self.pool.Add(proto)

        for file_name in files:
            add(file_name)
        return self.pool.FindServiceByName(name)

    def call(
        self, service: str, method: str, request: Mapping[str, Any], *, timeout: float = 10
    ) -> Any:
        """A unary call made from descriptors alone: the request built from ``request``."""
        found = self.service(service).methods_by_name[method]
        request_class = message_factory.GetMessageClass(found.input_type)
        response_class = message_factory.GetMessageClass(found.output_type)
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return stub(request_class(**request), timeout=timeout)
