"""Protobuf messages <-> use-case inputs and results."""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives import serialization

from signer.api import wire
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.errors import InvalidInput
from signer.gbcs import delivery as deliveries
from signer.gbcs.delivery import ManufacturerDelivery
from signer.gbcs.ota import OtaHeader
from signer.service.activation import ActivationSpec, BuiltActivation
from signer.service.keys.views import KeyView
from signer.service.precommand_signing import SignedPreCommand
from signer.service.refusal import DeviceRefusal
from signer.service.resign import ResignResult
from signer.service.verify import Verdict


def delivery_from(request: pb.VerifyManufacturerRequest) -> ManufacturerDelivery:
    shape = request.WhichOneof("delivery")
    if shape == "separate":
        d = request.separate
        return deliveries.from_separate(
            ota_header=d.ota_header,
            manufacturer_image=d.manufacturer_image,
            signature=d.signature,
            hash=d.hash,
        )
    if shape == "gbcs":
        return deliveries.from_gbcs(request.gbcs.upgrade_image, hash=request.gbcs.hash or None)
    if shape == "combined":
        c = request.combined
        return deliveries.from_combined(
            header_and_image=c.header_and_image, signature=c.signature, hash=c.hash
        )
    raise InvalidInput("no delivery given: set one of separate, gbcs or combined", field="delivery")


def header_to_pb(h: OtaHeader) -> pb.OtaHeader:
    msg = pb.OtaHeader(
        header_version=h.header_version,
        header_length=h.header_length,
        field_control=h.field_control,
        manufacturer_code=h.manufacturer_code,
        image_type=h.image_type,
        file_version=h.file_version,
        zigbee_stack_version=h.zigbee_stack_version,
        header_string=h.header_string_text,
        total_image_size=h.total_image_size,
    )
    if h.security_credential_version is not None:
        msg.security_credential_version = h.security_credential_version
    if h.upgrade_file_destination is not None:
        msg.upgrade_file_destination = h.upgrade_file_destination
    if h.min_hardware_version is not None:
        msg.min_hardware_version = h.min_hardware_version
    if h.max_hardware_version is not None:
        msg.max_hardware_version = h.max_hardware_version
    return msg


def verdict_to_pb(v: Verdict) -> pb.VerifyManufacturerResponse:
    return pb.VerifyManufacturerResponse(
        verified=v.verified,
        image_id=v.image_id,
        header=header_to_pb(v.header),
        cpl_entry_id=v.cpl_entry_id or "",
        checks=[pb.Check(name=c.name, passed=c.passed, detail=c.detail) for c in v.checks],
    )


def refusals_to_pb(refused: tuple[DeviceRefusal, ...]) -> list[pb.DeviceRefusal]:
    return [refusal_to_pb(r) for r in refused]


def refusal_to_pb(r: DeviceRefusal) -> pb.DeviceRefusal:
    return pb.DeviceRefusal(
        device_id=str(r.device),
        reason=r.reason,
        detail=r.detail,
        upgrade_path=list(r.path or ()),
        no_path=r.no_path,
    )


def resign_response(r: ResignResult) -> wire.Encoded[pb.ResignResponse]:
    """The response in wire form: each 10 MB image is copied once, into the wire bytes."""
    images = [
        (
            i.upgrade_image,
            pb.SignedImage(
                key_label=i.group.key.label,
                key_ski=i.group.key.ski or b"",
                certificate_serial=str(i.group.certificate.serial),
                device_ids=[str(d) for d in i.group.devices],
            ),
        )
        for i in r.images
    ]
    return wire.resign_response(r.image_id, images, refusals_to_pb(r.refused))


def activation_spec(msg: pb.ActivationSpec) -> ActivationSpec:
    when = None
    if msg.HasField("execution_time"):
        try:
            when = msg.execution_time.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            raise InvalidInput(
                "the execution time is out of range", field="execution_time"
            ) from None
    return ActivationSpec(image_id=msg.image_id, execution_time=when, cancel=msg.cancel)


def activation_to_pb(b: BuiltActivation) -> pb.ActivationRequest:
    out = pb.ActivationRequest()
    activation_into(b, out)
    return out


def activation_into(b: BuiltActivation, out: pb.ActivationRequest) -> None:
    """Set on a message already in its response (``results.add().request``), so the
    document is not built into one message and then copied into another."""
    out.device_id = str(b.device)
    out.request_id = str(b.request_id)
    out.duis_request = b.document


def signed_pre_command_to_pb(r: SignedPreCommand) -> pb.SignPreCommandResponse:
    out = pb.SignPreCommandResponse()
    signed_pre_command_into(r, out)
    return out


def signed_pre_command_into(r: SignedPreCommand, out: pb.SignPreCommandResponse) -> None:
    """As `activation_into`, for a signed pre-command."""
    out.device_id = str(r.device)
    out.request_id = str(r.request_id)
    out.signed_pre_command = r.signed_command
    out.duis_request = r.document


def key_to_pb(v: KeyView, now: dt.datetime) -> pb.KeyInfo:
    """Public facts only: a KeyView holds nothing secret, and nothing more is read here."""
    info = pb.KeyInfo(
        label=v.label,
        cka_id=v.key_id,
        ski=v.ski or b"",
        purpose=v.purpose,
        state=v.state,
        on_token=v.on_token,
        devices=v.devices,
        role=f"{v.role:02X}" if v.role is not None else "",
        eui=str(v.eui) if v.eui else "",
        certificate_serial=str(v.serial) if v.serial is not None else "",
        issuer=v.issuer,
    )
    if v.not_before is not None:
        info.not_before.FromDatetime(v.not_before)
    if v.not_after is not None:
        info.not_after.FromDatetime(v.not_after)
        info.days_left = v.days_left(now) or 0
    if v.certificate is not None:
        info.certificate_der = v.certificate.public_bytes(serialization.Encoding.DER)
    return info
