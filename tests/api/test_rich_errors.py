"""The standard rich error model on the real server: every error status carries a
`google.rpc.Status` (``grpc-status-details-bin``) with the call's own code and message, an
ErrorInfo with the reason code, BadRequest for INVALID_ARGUMENT and PreconditionFailure for
FAILED_PRECONDITION; read as any client reads it, with grpcio-status."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from signer.api import richdetails, richstatus
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.richdetails import Details, FieldViolation, Violation, trailer
from signer.api.richstatus import error_details
from signer.errors import (
    CampaignRefused,
    CertificateRejected,
    DevicesRefused,
    FormatError,
    HsmUnavailable,
    InvalidInput,
    NotFound,
)
from signer.service.precommands import PreCommandRefusal, PreCommandRefused
from tests.support.constants import RTDS_DEVICE
from tests.support.independent import ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, separate_delivery

UNKNOWN = "00-DB-12-34-56-78-90-FF"
_TYPES: dict[str, type[Message]] = {
    t.DESCRIPTOR.full_name: t
    for t in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.PreconditionFailure,
    )
}


def failed(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=30)
    return err.value


def rich(error: grpc.RpcError) -> tuple[status_pb2.Status, dict[str, Message]]:
    """The Status as grpcio-status reads it (it checks code and message against the call's
    own), and its details unpacked by type name; each type at most once."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    unpacked: dict[str, Message] = {}
    for item in status.details:
        name = item.TypeName()
        assert name not in unpacked and name in _TYPES, name
        unpacked[name] = _TYPES[name]()
        assert item.Unpack(unpacked[name])
    return status, unpacked


def info(details: dict[str, Message]) -> error_details_pb2.ErrorInfo:
    found = details["google.rpc.ErrorInfo"]
    assert isinstance(found, error_details_pb2.ErrorInfo)
    assert found.domain == "signer.v1"
    return found


def test_a_malformed_delivery_names_its_field_in_bad_request(
    running: Running, manufacturer: Manufacturer
) -> None:
    image = b"x" * 100
    header = bytearray(ota_header(len(image)))
    header[0] = 0x1F
    request = separate_delivery(manufacturer, image, header=bytes(header))
    error = failed(running.stub.VerifyManufacturer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    _status, details = rich(error)
    bad = details["google.rpc.BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    [violation] = bad.field_violations
    assert violation.field == "ota_header"
    # the message is "ota_header @ offset 0: why"; the violation says why, and where
    why = (error.details() or "").removeprefix("ota_header @ offset 0: ")
    assert why != error.details() and "0x0BEEF11F" in why
    assert violation.description == f"{why} (at byte offset 0)"
    assert violation.reason == "MALFORMED_INPUT"
    assert info(details).reason == "MALFORMED_INPUT"
    assert dict(info(details).metadata) == {"field": "ota_header", "offset": "0"}
    assert "google.rpc.PreconditionFailure" not in details
    # the trailing metadata of earlier releases is still there, for one more release
    meta: dict[str, str | bytes] = dict(error.trailing_metadata())  # type: ignore[arg-type]
    assert meta["signer-field"] == "ota_header" and meta["signer-offset"] == "0"


def test_a_request_without_a_delivery_is_a_field_violation_too(running: Running) -> None:
    error = failed(running.stub.VerifyManufacturer, pb.VerifyManufacturerRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    _status, details = rich(error)
    bad = details["google.rpc.BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["delivery"]
    assert info(details).reason == "INVALID_INPUT"


def test_devices_refused_whole_are_precondition_violations_with_their_reasons(
    running: Running, manufacturer: Manufacturer
) -> None:
    image_id = running.verify(manufacturer, b"rich refusals " * 30)
    error = failed(running.stub.Resign, pb.ResignRequest(image_id=image_id, device_ids=[UNKNOWN]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    _status, details = rich(error)
    failure = details["google.rpc.PreconditionFailure"]
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    assert [(v.type, v.subject) for v in failure.violations] == [("UNKNOWN_DEVICE", UNKNOWN)]
    assert failure.violations[0].description == "the device is not registered"
    assert info(details).reason == "DEVICES_REFUSED"
    assert dict(info(details).metadata) == {"devices": "1", "reasons": "UNKNOWN_DEVICE"}
    assert "google.rpc.BadRequest" not in details


def test_an_unknown_image_is_not_found_with_its_reason(running: Running) -> None:
    error = failed(
        running.stub.Resign, pb.ResignRequest(image_id="ab" * 32, device_ids=[RTDS_DEVICE])
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    _status, details = rich(error)
    assert set(details) == {"google.rpc.ErrorInfo"}
    assert info(details).reason == "NOT_FOUND"


# -- what each error says, without a server ---------------------------------------------------

SUBJECT = "signer.v1.FirmwareSigner/Resign"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            FormatError("bad tail byte 0x41", field="upgrade_image", offset=296),
            Details(
                "MALFORMED_INPUT",
                {"field": "upgrade_image", "offset": "296"},
                field_violations=(
                    FieldViolation(
                        "upgrade_image",
                        "bad tail byte 0x41 (at byte offset 296)",
                        "MALFORMED_INPUT",
                    ),
                ),
            ),
        ),
        (
            InvalidInput("give exactly one", field="source"),
            Details(
                "INVALID_INPUT",
                {"field": "source"},
                field_violations=(FieldViolation("source", "give exactly one", "INVALID_INPUT"),),
            ),
        ),
        (
            DevicesRefused(
                "every device was refused",
                [("d1", "unknown_device", "not registered"), ("d2", "free text!", "t")],
            ),
            Details(
                "DEVICES_REFUSED",
                {"devices": "2", "reasons": "OTHER,UNKNOWN_DEVICE"},
                violations=(
                    Violation("UNKNOWN_DEVICE", "d1", "not registered"),
                    Violation("OTHER", "d2", "t"),
                ),
            ),
        ),
        (
            PreCommandRefused(
                PreCommandRefusal(
                    index=0, device=None, request_id=None, reason="r", code="pre_command_not_issued"
                )
            ),
            Details(
                "PRE_COMMAND_NOT_ISSUED",
                {"code": "pre_command_not_issued", "index": "0"},
                violations=(Violation("PRE_COMMAND_NOT_ISSUED", "pre_command", "r"),),
            ),
        ),
        (
            CertificateRejected("not an SMKI certificate"),
            Details(
                "CERTIFICATE_REJECTED",
                violations=(Violation("CERTIFICATE_REJECTED", SUBJECT, "not an SMKI certificate"),),
            ),
        ),
        (
            CampaignRefused(
                "CN=a,O=B requested this plan: it needs another approver", "SELF_APPROVAL"
            ),
            Details(
                "SELF_APPROVAL",
                {"family": "CAMPAIGN_REFUSED"},
                violations=(
                    Violation(
                        "SELF_APPROVAL",
                        SUBJECT,
                        "CN=a,O=B requested this plan: it needs another approver",
                    ),
                ),
            ),
        ),
        (NotFound("image x is not in the firmware library"), Details("NOT_FOUND")),
        (HsmUnavailable("token absent"), Details("HSM_UNAVAILABLE")),
    ],
)
def test_each_error_family_has_its_details(error: Exception, expected: Details) -> None:
    assert error_details(error, subject=SUBJECT) == expected  # type: ignore[arg-type]


def decoded(pairs: tuple[tuple[str, bytes], ...]) -> status_pb2.Status:
    [(key, value)] = pairs
    assert key == "grpc-status-details-bin"
    return status_pb2.Status.FromString(value)


def test_details_over_the_trailer_budget_drop_violations_and_say_how_many() -> None:
    refusals = [
        (f"00-DB-00-00-00-00-{i >> 8:02X}-{i & 0xFF:02X}", "unknown_device", "x" * 60)
        for i in range(500)
    ]
    error = DevicesRefused("every device was refused", refusals)
    message = str(error)[:2000] + " ..."
    details = error_details(error, subject=SUBJECT)
    assert len(details.violations) == richstatus.MAX_VIOLATIONS
    status = decoded(trailer(grpc.StatusCode.FAILED_PRECONDITION, message, details))
    assert status.message == message and status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert status.ByteSize() + len(message) <= richdetails.TRAILER_BUDGET
    found = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(found)
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[1].Unpack(failure)
    kept = len(failure.violations)
    assert 0 < kept < richstatus.MAX_VIOLATIONS
    assert int(found.metadata["violations_omitted"]) == 500 - kept
    assert [v.subject for v in failure.violations] == [d for d, _r, _t in refusals[:kept]]
    # within the budget: nothing dropped
    small = error_details(DevicesRefused("all", refusals[:3]), subject=SUBJECT)
    assert len(decoded(trailer(grpc.StatusCode.FAILED_PRECONDITION, "all", small)).details) == 2


def test_a_message_too_long_for_any_details_sends_none() -> None:
    message = "é" * 3600  # 7,200 bytes: no room left beside it
    assert trailer(grpc.StatusCode.NOT_FOUND, message, Details("NOT_FOUND")) == ()
