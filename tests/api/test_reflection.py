"""Server reflection v1 (and v1alpha, still) on the real server, used by a generic client:
services listed, described and called without the project's generated stubs."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.generic_client import GenericClient, reflection_v1_file
from tests.support.server import Running

SIGNER = "signer.v1.FirmwareSigner"
V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
HEALTH = "grpc.health.v1.Health"


@pytest.fixture()
def client(running: Running, tmp_path: Path) -> GenericClient:
    return GenericClient(running.channel, tmp_path)


def test_a_generic_client_lists_describes_and_calls_the_signer(client: GenericClient) -> None:
    assert {SIGNER, HEALTH, V1, V1ALPHA} <= set(client.services())
    signer = client.service(SIGNER)
    assert {"VerifyManufacturer", "Resign", "ListKeys"} <= set(signer.methods_by_name)

    listed = client.call(SIGNER, "ListKeys", {})
    # built from the server's descriptors, in the client's own pool
    assert type(listed).DESCRIPTOR.file.pool is client.pool
    active = {k.label for k in listed.keys if k.state == "active" and k.on_token}
    assert {"z1-supplier-ds", "xml-sign"} <= active  # the keys `prepare` activated

    with pytest.raises(grpc.RpcError) as err:  # junk: no delivery at all
        client.call(SIGNER, "VerifyManufacturer", {})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "delivery" in (err.value.details() or "")

    health = client.call(HEALTH, "Check", {"service": SIGNER})
    serving = client.pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus")
    assert health.status == serving.values_by_name["SERVING"].number


def test_reflection_v1_describes_itself_as_grpc_publishes_it(
    client: GenericClient, tmp_path: Path
) -> None:
    [served] = client.files_for(V1)
    published = reflection_v1_file(tmp_path)
    for message in published.message_type:  # protoc adds json_name; descriptors in code lack it
        for f in message.field:
            f.ClearField("json_name")
    assert served == published
    assert not served.options.deprecated  # v1alpha's is; v1 is the current version


def test_v1alpha_is_still_served_and_lists_both_versions(running: Running) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)

    def ask(**request: str) -> reflection_pb2.ServerReflectionResponse:
        [answer] = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=5
            )
        )
        return answer

    names = {s.name for s in ask(list_services="").list_services_response.service}
    assert {SIGNER, HEALTH, V1, V1ALPHA} <= names
    for symbol in (SIGNER, V1, V1ALPHA):
        found = ask(file_containing_symbol=symbol).file_descriptor_response.file_descriptor_proto
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in found]
        package = symbol.rsplit(".", 1)[0]
        assert files and files[0].package == package, symbol
