"""Every error family has its status code, and an absent HSM is UNAVAILABLE; the outcome
interceptor maps errors and counts refusals once, for unary and streaming calls."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.outcome import OutcomeInterceptor, RefusalField, refusal_fields
from signer.api.richdetails import MAX_MESSAGE_BYTES, wire_size
from signer.api.status import status_for
from signer.errors import (
    CallEnded,
    CertificateRejected,
    DevicesRefused,
    FormatError,
    HsmLoginFailed,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    Unavailable,
)
from signer.hsm.pin import Pin
from signer.hsm.token import Token
from signer.service.precommands import PreCommandRefusal, PreCommandRefused


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x", field="f"), grpc.StatusCode.INVALID_ARGUMENT),
        (FormatError("x", field="f", offset=3), grpc.StatusCode.INVALID_ARGUMENT),
        (CertificateRejected("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (SignatureInvalid("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (
            DevicesRefused("all refused", [("d", "unknown_device", "t")]),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (Unavailable("db"), grpc.StatusCode.UNAVAILABLE),
        (HsmUnavailable("hsm"), grpc.StatusCode.UNAVAILABLE),
        (HsmLoginFailed("pin"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) is code  # type: ignore[arg-type]


def test_a_call_that_ended_is_what_the_client_saw() -> None:
    assert status_for(CallEnded("gone")) is grpc.StatusCode.CANCELLED
    assert status_for(CallEnded("gone"), deadline_passed=True) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_for(Unavailable("db"), deadline_passed=True) is grpc.StatusCode.UNAVAILABLE


def test_format_error_says_where() -> None:
    assert str(FormatError("bad tail byte 0x41", field="upgrade_image", offset=296)) == (
        "upgrade_image @ offset 296: bad tail byte 0x41"
    )


def test_a_missing_pkcs11_module_is_hsm_unavailable(tmp_path) -> None:
    token = Token(str(tmp_path / "no-such-module.so"), "t", Pin("1234"))
    with pytest.raises(HsmUnavailable, match="cannot load PKCS#11 module"):
        token.open()


# -- the outcome interceptor alone, on an in-process server ---------------------------------

SIGNER = "signer.v1.FirmwareSigner"


def _resign(request: pb.ResignRequest, context: grpc.ServicerContext) -> pb.ResignResponse:
    what = request.image_id
    if what == "invalid":
        raise FormatError("bad tail byte", field="upgrade_image", offset=7)
    if what == "all-refused":
        raise DevicesRefused(
            "all refused", [("d1", "unknown_device", "t"), ("d2", "no key (free text)", "t")]
        )
    if what == "many-refused":  # a long message and 500 violations: over the trailer budget
        raise DevicesRefused(
            "all refused",
            [(f"00-DB-00-00-00-00-{i >> 8:02X}-{i & 0xFF:02X}", "unknown_device", "t" * 80)
             for i in range(500)],
        )  # fmt: skip
    if what == "many-refused-accented":  # as above, its message percent-encoded on the wire
        raise DevicesRefused(
            "tous refusés, é" * 300,
            [(f"00-DB-00-00-00-00-{i >> 8:02X}-{i & 0xFF:02X}", "unknown_device", "é" * 80)
             for i in range(500)],
        )  # fmt: skip
    if what == "long-accented":
        raise NotFound("é" * 5000)
    if what == "bug":
        raise RuntimeError("a secret in a traceback")
    if what == "long":
        raise NotFound("x" * 5000)
    return pb.ResignResponse(
        image_id=what,
        refused=[pb.DeviceRefusal(reason="unknown_device"), pb.DeviceRefusal(reason="no key")],
    )


def _sign_one(
    request: pb.SignPreCommandRequest, context: grpc.ServicerContext
) -> pb.SignPreCommandResponse:
    refusal = PreCommandRefusal(
        index=0, device=None, request_id=None, reason="r", code="pre_command_not_issued"
    )
    raise PreCommandRefused(refusal)


def _sign_batches(
    requests: Iterator[pb.PreCommandBatch], context: grpc.ServicerContext
) -> Iterator[pb.PreCommandResults]:
    for batch in requests:
        message = pb.PreCommandResults()
        message.results.add(refused=pb.PreCommandRefusal(code="pre_command_malformed"))
        message.results.add(signed=pb.SignPreCommandResponse(device_id="d"))
        yield message
        if batch.pre_commands == [b"fail"]:
            raise Unavailable("the database is away")


def _other(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise RuntimeError("not ours to map")


@pytest.fixture(scope="module")
def outcome() -> Iterator[grpc.Channel]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[OutcomeInterceptor()]
    )
    handlers = {
        "Resign": grpc.unary_unary_rpc_method_handler(
            _resign,
            request_deserializer=pb.ResignRequest.FromString,
            response_serializer=pb.ResignResponse.SerializeToString,
        ),
        "SignPreCommand": grpc.unary_unary_rpc_method_handler(
            _sign_one,
            request_deserializer=pb.SignPreCommandRequest.FromString,
            response_serializer=pb.SignPreCommandResponse.SerializeToString,
        ),
        "StreamSignPreCommands": grpc.stream_stream_rpc_method_handler(
            _sign_batches,
            request_deserializer=pb.PreCommandBatch.FromString,
            response_serializer=pb.PreCommandResults.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(SIGNER, handlers),
            grpc.method_handlers_generic_handler(
                "test.v1.Other", {"Unary": grpc.unary_unary_rpc_method_handler(_other)}
            ),
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(None)


def _refusals() -> dict[str, float]:
    reasons = (
        "unknown_device",
        "other",
        "pre_command_not_issued",
        "pre_command_malformed",
    )
    return {
        r: REGISTRY.get_sample_value("signer_refusals_total", {"reason": r}) or 0.0 for r in reasons
    }


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {r: n - before[r] for r, n in _refusals().items() if n != before[r]}


def test_errors_become_their_status_with_field_and_offset(
    outcome: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = pb_grpc.FirmwareSignerStub(outcome)
    caplog.set_level(logging.INFO, logger="signer.api.servicer")
    with pytest.raises(grpc.RpcError) as err:
        stub.Resign(pb.ResignRequest(image_id="invalid"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "upgrade_image @ offset 7: bad tail byte"
    # grpc-stubs types the entries as _Metadatum; at run time they are (key, value) pairs
    meta: dict[str, str] = dict(err.value.trailing_metadata())  # type: ignore[arg-type]
    assert meta["signer-field"] == "upgrade_image" and meta["signer-offset"] == "7"
    assert "Resign refused: INVALID_ARGUMENT upgrade_image @ offset 7: bad tail byte" in (
        caplog.messages
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.Resign(pb.ResignRequest(image_id="long"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "x" * (MAX_MESSAGE_BYTES - len(" ...")) + " ..."


def test_a_bug_is_internal_and_logged_and_other_services_keep_grpcs_handling(
    outcome: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = pb_grpc.FirmwareSignerStub(outcome)
    with pytest.raises(grpc.RpcError) as err:
        stub.Resign(pb.ResignRequest(image_id="bug"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error; see the server log"
    [record] = [r for r in caplog.records if r.getMessage() == "Resign failed unexpectedly"]
    assert record.exc_info is not None and record.name == "signer.api.servicer"
    with pytest.raises(grpc.RpcError) as err:
        outcome.unary_unary("/test.v1.Other/Unary", None, None)(b"")
    assert err.value.code() == grpc.StatusCode.UNKNOWN


def _rich(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[Any]]:
    """ErrorInfo and the other details, as grpcio-status reads them."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None and status.message == error.details()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == "signer.v1"
    rest: list[Any] = []
    for item in status.details[1:]:
        kind = (
            error_details_pb2.BadRequest
            if item.Is(error_details_pb2.BadRequest.DESCRIPTOR)
            else error_details_pb2.PreconditionFailure
        )
        rest.append(kind())
        assert item.Unpack(rest[-1])
    return info, rest


def test_every_error_carries_the_rich_details(outcome: grpc.Channel) -> None:
    stub = pb_grpc.FirmwareSignerStub(outcome)
    with pytest.raises(grpc.RpcError) as err:
        stub.Resign(pb.ResignRequest(image_id="invalid"))
    info, [bad] = _rich(err.value)
    assert info.reason == "MALFORMED_INPUT"
    assert dict(info.metadata) == {"field": "upgrade_image", "offset": "7"}
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("upgrade_image", "bad tail byte (at byte offset 7)")
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub.SignPreCommand(pb.SignPreCommandRequest())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, [failure] = _rich(err.value)
    assert info.reason == "PRE_COMMAND_NOT_ISSUED"  # the refusal's own code
    assert info.metadata["code"] == "pre_command_not_issued"
    assert [(v.type, v.subject) for v in failure.violations] == [
        ("PRE_COMMAND_NOT_ISSUED", "pre_command")
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub.Resign(pb.ResignRequest(image_id="bug"))
    info, rest = _rich(err.value)
    assert (info.reason, rest) == ("INTERNAL_ERROR", [])
    call = stub.StreamSignPreCommands(iter([pb.PreCommandBatch(pre_commands=[b"fail"])]))
    next(call)
    with pytest.raises(grpc.RpcError) as err:  # mid-stream, after a result
        next(call)
    info, rest = _rich(err.value)
    assert (info.reason, rest) == ("BACKEND_UNAVAILABLE", [])


def test_details_never_push_the_trailer_over_the_clients_limit(outcome: grpc.Channel) -> None:
    """grpc-core clients refuse trailers over 8 KiB, at random, as RESOURCE_EXHAUSTED: many
    calls, each with a long message and 500 refused devices, all arrive as they were sent."""
    stub = pb_grpc.FirmwareSignerStub(outcome)
    for what in ("many-refused", "many-refused-accented"):
        for _ in range(100):
            with pytest.raises(grpc.RpcError) as err:
                stub.Resign(pb.ResignRequest(image_id=what))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            message = err.value.details() or ""
            assert message.endswith(" ...")
            assert MAX_MESSAGE_BYTES - 6 < wire_size(message) <= MAX_MESSAGE_BYTES
        info, [failure] = _rich(err.value)
        assert info.reason == "DEVICES_REFUSED" and info.metadata["devices"] == "500"
        kept = len(failure.violations)
        assert kept > 0 and int(info.metadata["violations_omitted"]) == 500 - kept


def test_a_long_message_is_cut_by_its_size_on_the_wire(outcome: grpc.Channel) -> None:
    """gRPC percent-encodes a message's non-ASCII bytes: 5,000 "é" take 30,000 bytes."""
    stub = pb_grpc.FirmwareSignerStub(outcome)
    for _ in range(20):
        with pytest.raises(grpc.RpcError) as err:
            stub.Resign(pb.ResignRequest(image_id="long-accented"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "é" * ((MAX_MESSAGE_BYTES - 4) // 6) + " ..."
    info, _ = _rich(err.value)
    assert info.reason == "NOT_FOUND"


def test_every_refusal_a_client_learns_of_is_counted_once(outcome: grpc.Channel) -> None:
    stub = pb_grpc.FirmwareSignerStub(outcome)
    before = _refusals()
    stub.Resign(pb.ResignRequest(image_id="ok"))  # two refused inside a response
    assert _moved(before) == {"unknown_device": 1, "other": 1}
    before = _refusals()
    with pytest.raises(grpc.RpcError) as err:  # each device of a call refused whole
        stub.Resign(pb.ResignRequest(image_id="all-refused"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _moved(before) == {"unknown_device": 1, "other": 1}
    before = _refusals()
    with pytest.raises(grpc.RpcError) as err:
        stub.SignPreCommand(pb.SignPreCommandRequest())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _moved(before) == {"pre_command_not_issued": 1}


def test_a_stream_is_counted_per_message_and_mapped_mid_stream(outcome: grpc.Channel) -> None:
    stub = pb_grpc.FirmwareSignerStub(outcome)
    before = _refusals()
    batches = [pb.PreCommandBatch(pre_commands=[b"a"]), pb.PreCommandBatch(pre_commands=[b"b"])]
    assert len(list(stub.StreamSignPreCommands(iter(batches)))) == 2
    assert _moved(before) == {"pre_command_malformed": 2}
    before = _refusals()
    call = stub.StreamSignPreCommands(iter([pb.PreCommandBatch(pre_commands=[b"fail"])]))
    assert next(call).results[0].refused.code == "pre_command_malformed"
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == "the database is away"
    assert _moved(before) == {"pre_command_malformed": 1}


def test_refusals_are_found_where_the_proto_puts_them() -> None:
    found = {
        m.name: refusal_fields(m.output_type)
        for m in pb.DESCRIPTOR.services_by_name["FirmwareSigner"].methods
    }
    assert {name: fields for name, fields in found.items() if fields} == {
        "Resign": (RefusalField("refused", None, "reason"),),
        "BuildDUIS": (RefusalField("refused", None, "reason"),),
        "BuildActivation": (RefusalField("refused", None, "reason"),),
        "StreamActivation": (RefusalField("results", "refused", "reason"),),
        "StreamSignPreCommands": (RefusalField("results", "refused", "code"),),
        "ApplyCampaign": (RefusalField("results", "refused", "reason"),),
    }
