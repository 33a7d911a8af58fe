"""Campaigns over the wire (docs/campaigns.md): PlanCampaign, GetCampaign, ApproveCampaign,
RejectCampaign and ApplyCampaign on a real `signer serve` process with mTLS and the shipped
role policy, so four eyes is what clients holding real certificates see: the requester
never approves its own plan, one identity counts once, a supplier without the approver
role may not approve at all, and every refusal carries its reason in the rich details.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from tests.support.constants import ROOT
from tests.support.devenv import provision
from tests.support.independent import xmlsec1_verify
from tests.support.server import ServerProcess, start_server
from tests.support.tlsca import CertificateAuthority, Issued

B1, B2, B3 = (f"00-DB-12-34-56-78-90-{x}" for x in ("B1", "B2", "B3"))
UNKNOWN = "00-DB-12-34-56-78-90-FF"
#: client certificate CN -> roles in the policy
CLIENTS = {
    "planner": ["supplier"],  # plans and applies
    "desk": ["supplier", "approver"],  # holds both: still never approves its own plan
    "alice": ["approver"],
    "bob": ["approver"],
    "uploader": ["manufacturer"],  # verifies the delivery the campaign is about
}


@dataclass
class Campaigns:
    server: ServerProcess
    ca: CertificateAuthority
    certs: dict[str, Issued]
    channels: dict[str, grpc.Channel]
    image_id: str
    xml_certificate: x509.Certificate  # the server's XML-signing certificate

    def stub(self, who: str) -> pb_grpc.FirmwareSignerStub:
        if who not in self.channels:
            cert = self.certs[who]
            creds = grpc.ssl_channel_credentials(
                root_certificates=self.ca.cert_path.read_bytes(),
                private_key=cert.key_path.read_bytes(),
                certificate_chain=cert.cert_path.read_bytes(),
            )
            self.channels[who] = grpc.secure_channel(
                self.server.address, creds, options=CHANNEL_OPTIONS
            )
        return pb_grpc.FirmwareSignerStub(self.channels[who])

    def principal(self, who: str) -> str:
        """Who four eyes counts: the policy's client entry the certificate matches."""
        return f"cn={who}"

    def subject(self, who: str) -> str:
        return self.certs[who].subject

    def plan(self, who: str, devices: list[str], **spec: object) -> pb.CampaignPlan:
        fields = {"image_id": self.image_id, "product": pb.CAMPAIGN_PRODUCT_ACTIVATION, **spec}
        messages = [
            pb.PlanCampaignRequest(spec=pb.CampaignSpec(**fields)),  # type: ignore[arg-type]
            pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=devices)),
        ]
        result: pb.CampaignPlan = self.stub(who).PlanCampaign(iter(messages), timeout=60)
        return result

    def approve(self, who: str, plan_id: str, comment: str = "") -> pb.CampaignPlan:
        request = pb.ApproveCampaignRequest(plan_id=plan_id, comment=comment)
        result: pb.CampaignPlan = self.stub(who).ApproveCampaign(request, timeout=30)
        return result


def policy_text() -> str:
    shipped = tomllib.loads((ROOT / "deploy/policy.example.toml").read_text())
    lines = ["[roles]"] + [
        f"{role} = {json.dumps(rpcs)}" for role, rpcs in shipped["roles"].items()
    ]
    for cn, roles in CLIENTS.items():
        lines += ["", "[[clients]]", f'cn = "{cn}"', f"roles = {json.dumps(roles)}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def campaigns(vectors: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaigns]:
    """`var/dev` as `signer dev provision` makes it (devices B1..B3 with their CPL entries,
    the example delivery, keys certified by the development SMKI CA), served outside
    development mode: mTLS, the shipped roles, identities from certificates only."""
    tmp = tmp_path_factory.mktemp("campaigns")
    dev = provision(tmp, schema_dir=vectors / "xsd")
    ca = CertificateAuthority(tmp / "pki")
    certs = {cn: ca.client(cn, cn) for cn in CLIENTS}
    server_cert = ca.server()
    policy = tmp / "policy.toml"
    policy.write_text(policy_text())
    server = start_server(
        dev.config,
        tmp / "server.log",
        env={
            "SIGNER_DEV_MODE": "false",
            "SIGNER_TLS_CERT": str(server_cert.cert_path),
            "SIGNER_TLS_KEY": str(server_cert.key_path),
            "SIGNER_TLS_CLIENT_CA": str(ca.cert_path),
            "SIGNER_POLICY": str(policy),
            "SIGNER_LISTEN": "127.0.0.1:0",
            "SIGNER_METRICS_LISTEN": "127.0.0.1:0",
            "SIGNER_EPHEMERAL_PORTS_FOR_TESTS": "1",
            # four eyes twice over, whatever the size of the campaign
            "SIGNER_CAMPAIGN_APPROVALS": "2",
        },
    )
    running = Campaigns(server, ca, certs, {}, "", dev.token_certificate("xml-sign"))
    example = tmp / "var/dev/example"
    verdict = running.stub("uploader").VerifyManufacturer(
        pb.VerifyManufacturerRequest(
            separate=pb.SeparateDelivery(
                ota_header=(example / "ota_header.bin").read_bytes(),
                manufacturer_image=(example / "manufacturer_image.bin").read_bytes(),
                signature=(example / "manufacturer_signature.der").read_bytes(),
                hash=bytes.fromhex((example / "hash.hex").read_text().strip()),
            )
        ),
        timeout=60,
    )
    assert verdict.verified, verdict.checks
    running.image_id = verdict.image_id
    yield running
    for channel in running.channels.values():
        channel.close()
    assert server.stop() == 0


def rich(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[tuple[str, str]]]:
    """ErrorInfo and the PreconditionFailure violations (type, subject) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich error details"
    info = error_details_pb2.ErrorInfo()
    violations: list[tuple[str, str]] = []
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            packed.Unpack(info)
        elif packed.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            packed.Unpack(failure)
            violations += [(v.type, v.subject) for v in failure.violations]
    return info, violations


def refused(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        result = call(*args, timeout=60)  # type: ignore[operator]
        if isinstance(result, Iterator):
            list(result)
    return err.value


def test_four_eyes_over_mtls_plan_two_approvals_apply(campaigns: Campaigns, tmp_path: Path) -> None:
    plan = campaigns.plan("desk", [B1, B3, UNKNOWN])
    assert len(plan.plan_id) == 64
    assert plan.state == pb.CAMPAIGN_STATE_PLANNED
    assert plan.requester == campaigns.principal("desk")  # the certificate, not its word
    assert (plan.devices, plan.eligible, plan.refused) == (3, 1, 2), plan.by_reason
    assert sorted((c.name, c.devices) for c in plan.by_reason) == [
        ("not_permitted_predecessor", 1),
        ("unknown_device", 1),
    ]
    assert [(c.name, c.devices) for c in plan.by_key] == [("supplier-ds", 1)]
    assert plan.approvals_required == 2
    # planning the same campaign again is the same plan
    assert campaigns.plan("desk", [B1, B3, UNKNOWN]).plan_id == plan.plan_id

    # the requester holds the approver role too, and still does not count
    error = refused(
        campaigns.stub("desk").ApproveCampaign, pb.ApproveCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, violations = rich(error)
    assert (info.reason, info.domain) == ("SELF_APPROVAL", "signer.v1")
    assert violations and violations[0][0] == "SELF_APPROVAL"

    # a supplier without the approver role may not call it at all
    error = refused(
        campaigns.stub("planner").ApproveCampaign, pb.ApproveCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "ApproveCampaign needs role approver" in (error.details() or "")
    info, _ = rich(error)
    assert info.metadata["roles_needed"] == "approver"

    once = campaigns.approve("alice", plan.plan_id, comment="checked the counts")
    assert once.state == pb.CAMPAIGN_STATE_PLANNED
    assert [(a.approver, a.comment, a.expired) for a in once.approvals] == [
        (campaigns.principal("alice"), "checked the counts", False)
    ]
    # one identity counts once
    error = refused(
        campaigns.stub("alice").ApproveCampaign, pb.ApproveCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(error)[0].reason == "ALREADY_APPROVED"
    # one approval of two: not yet
    error = refused(
        campaigns.stub("desk").ApplyCampaign, pb.ApplyCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(error)[0].reason == "NOT_APPROVED"

    twice = campaigns.approve("bob", plan.plan_id)
    assert twice.state == pb.CAMPAIGN_STATE_APPROVED
    assert len(twice.approvals) == 2

    # an approver may review it: the plan first, then its devices in plan order
    parts = list(
        campaigns.stub("bob").GetCampaign(
            pb.GetCampaignRequest(plan_id=plan.plan_id, include_devices=True), timeout=30
        )
    )
    assert parts[0].WhichOneof("part") == "plan" and parts[0].plan.plan_id == plan.plan_id
    devices = [d for p in parts[1:] for d in p.devices.devices]
    assert [d.device_id for d in devices] == [B1, B3, UNKNOWN]
    assert devices[0].key_label == "supplier-ds" and not devices[0].HasField("refused")
    assert devices[1].refused.reason == "not_permitted_predecessor"
    assert list(devices[1].refused.upgrade_path) == ["DEV-0.9", "DEV-1.0", "DEV-2.0"]
    assert devices[2].refused.reason == "unknown_device"
    # but not apply it
    error = refused(
        campaigns.stub("bob").ApplyCampaign, pb.ApplyCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    messages = list(
        campaigns.stub("desk").ApplyCampaign(
            pb.ApplyCampaignRequest(plan_id=plan.plan_id), timeout=120
        )
    )
    results = [r for m in messages for r in m.results]
    assert messages[-1].HasField("plan") and not any(m.HasField("plan") for m in messages[:-1])
    final = messages[-1].plan
    assert final.state == pb.CAMPAIGN_STATE_APPLIED
    assert (final.issued, final.withheld) == (1, 0)
    issued = [r.issued for r in results if r.WhichOneof("result") == "issued"]
    assert [a.WhichOneof("artifact") for a in issued] == ["activation"]
    activation = issued[0].activation
    assert activation.device_id == B1
    checked = xmlsec1_verify(activation.duis_request, campaigns.xml_certificate, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert [r.refused.device_id for r in results if r.WhichOneof("result") == "refused"] == [
        B3,
        UNKNOWN,
    ]
    # applied: never again, and no longer open to approval
    error = refused(
        campaigns.stub("desk").ApplyCampaign, pb.ApplyCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(error)[0].reason == "PLAN_APPLIED"


def test_a_rejected_plan_is_never_applied(campaigns: Campaigns) -> None:
    plan = campaigns.plan("planner", [B2])
    stub = campaigns.stub("alice")
    error = refused(stub.RejectCampaign, pb.RejectCampaignRequest(plan_id=plan.plan_id))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich(error)[0].metadata["field"] == "reason"
    done = stub.RejectCampaign(
        pb.RejectCampaignRequest(plan_id=plan.plan_id, reason="wrong firmware"), timeout=30
    )
    assert done.state == pb.CAMPAIGN_STATE_REJECTED
    assert (done.rejected_by, done.rejection_reason) == (
        campaigns.principal("alice"),
        "wrong firmware",
    )
    error = refused(
        campaigns.stub("bob").ApproveCampaign, pb.ApproveCampaignRequest(plan_id=plan.plan_id)
    )
    assert rich(error)[0].reason == "PLAN_REJECTED"
    error = refused(
        campaigns.stub("planner").ApplyCampaign, pb.ApplyCampaignRequest(plan_id=plan.plan_id)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(error)[0].reason in ("PLAN_REJECTED", "NOT_APPROVED")


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "spec"),
        ([pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=[B1]))], "spec"),
        (
            [pb.PlanCampaignRequest(spec=pb.CampaignSpec(product=pb.CAMPAIGN_PRODUCT_UPDATE))],
            "spec.image_id",
        ),
        ([pb.PlanCampaignRequest(spec=pb.CampaignSpec(image_id="ab" * 32))], "spec.product"),
        (
            [
                pb.PlanCampaignRequest(
                    spec=pb.CampaignSpec(
                        image_id="ab" * 32,
                        product=pb.CAMPAIGN_PRODUCT_UPDATE,
                        service_reference="11.2",
                    )
                )
            ],
            "spec.service_reference",
        ),
    ],
)
def test_a_plan_request_out_of_shape_names_its_field(
    campaigns: Campaigns, messages: list[pb.PlanCampaignRequest], field: str
) -> None:
    error = refused(campaigns.stub("planner").PlanCampaign, iter(messages))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, _ = rich(error)
    assert info.metadata["field"] == field
    assert (error.details() or "").startswith(field)


def test_a_second_spec_after_the_devices_is_refused(campaigns: Campaigns) -> None:
    spec = pb.CampaignSpec(image_id=campaigns.image_id, product=pb.CAMPAIGN_PRODUCT_ACTIVATION)
    messages = [
        pb.PlanCampaignRequest(spec=spec),
        pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=[B1])),
        pb.PlanCampaignRequest(spec=spec),
    ]
    error = refused(campaigns.stub("planner").PlanCampaign, iter(messages))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich(error)[0].metadata["field"] == "devices"


def test_plan_ids_are_checked_and_unknown_ones_not_found(campaigns: Campaigns) -> None:
    stub = campaigns.stub("alice")
    error = refused(stub.ApproveCampaign, pb.ApproveCampaignRequest(plan_id="not-a-plan"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich(error)[0].metadata["field"] == "plan_id"
    error = refused(stub.GetCampaign, pb.GetCampaignRequest(plan_id="0" * 64))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_two_certificates_of_one_client_entry_are_one_approver(campaigns: Campaigns) -> None:
    """Four eyes counts principals (the policy's client entries), not certificate subjects:
    another certificate with alice's CN (another organisation, another serial) is alice."""
    campaigns.certs["alice-elsewhere"] = campaigns.ca.issue(
        "alice-elsewhere", cn="alice", org="Elsewhere"
    )
    assert campaigns.subject("alice-elsewhere") != campaigns.subject("alice")
    plan = campaigns.plan("planner", [B3, B1])
    once = campaigns.approve("alice", plan.plan_id)
    assert [a.approver for a in once.approvals] == ["cn=alice"]
    error = refused(
        campaigns.stub("alice-elsewhere").ApproveCampaign,
        pb.ApproveCampaignRequest(plan_id=plan.plan_id),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(error)[0].reason == "ALREADY_APPROVED"
    # and a planner's second certificate is still the requester
    campaigns.certs["desk-elsewhere"] = campaigns.ca.issue(
        "desk-elsewhere", cn="desk", org="Elsewhere"
    )
    mine = campaigns.plan("desk", [B1, B3])
    error = refused(
        campaigns.stub("desk-elsewhere").ApproveCampaign,
        pb.ApproveCampaignRequest(plan_id=mine.plan_id),
    )
    assert rich(error)[0].reason == "SELF_APPROVAL"


def test_a_plan_made_again_after_a_rejection_names_the_plan_it_supersedes(
    campaigns: Campaigns,
) -> None:
    # a content no other test plans: an activation at a time of its own
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC))
    first = campaigns.plan("planner", [B3], execution_time=at)
    assert first.supersedes == ""
    campaigns.stub("alice").RejectCampaign(
        pb.RejectCampaignRequest(plan_id=first.plan_id, reason="planned again"), timeout=30
    )
    again = campaigns.plan("planner", [B3], execution_time=at)
    assert again.plan_id != first.plan_id
    assert again.supersedes == first.plan_id
    parts = list(
        campaigns.stub("alice").GetCampaign(
            pb.GetCampaignRequest(plan_id=again.plan_id), timeout=30
        )
    )
    assert parts[0].WhichOneof("part") == "plan"
    assert parts[0].plan.supersedes == first.plan_id
