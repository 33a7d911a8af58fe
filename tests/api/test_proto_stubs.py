"""The committed stubs must describe exactly what proto/signer/v1/signer.proto says."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from signer.api import protogen
from signer.api._proto.signer.v1 import signer_pb2


def _without_json_names(messages) -> None:
    # protoc adds json_name to descriptor sets but not to the descriptor embedded in stubs
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _without_json_names(m.nested_type)


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    descriptor_set = tmp_path / "signer.desc"
    protogen.compile_proto(tmp_path, descriptor_set=descriptor_set)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file[0]
    _without_json_names(fresh.message_type)
    committed = descriptor_pb2.FileDescriptorProto.FromString(signer_pb2.DESCRIPTOR.serialized_pb)
    assert committed == fresh, "stubs are stale: run `make proto` and commit signer/api/_proto"
    assert [m.name for m in committed.service[0].method] == [
        "VerifyManufacturer",
        "Resign",
        "BuildDUIS",
        "GetUpgradePath",
        "BuildActivation",
        "StreamActivation",
        "SignPreCommand",
        "StreamSignPreCommands",
        "ListKeys",
        "PlanCampaign",
        "GetCampaign",
        "ApproveCampaign",
        "RejectCampaign",
        "ApplyCampaign",
    ]
