"""Request bytes that do not decode as the request message are INVALID_ARGUMENT naming the
type (and the field), for every FirmwareSigner RPC, unary and streaming, on a real server:
not grpcio's INTERNAL "Exception deserializing request!". Metrics count them as such."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.decoding import locate
from tests.support.manufacturer import Manufacturer
from tests.support.scrape import scrape, total
from tests.support.server import Running

SERVICE = pb.DESCRIPTOR.services_by_name["FirmwareSigner"]
METHODS = list(SERVICE.methods)
UNKNOWN_DEVICE = "00-DB-12-34-56-78-90-FF"
BAD_UTF8 = b"ok\xff\xfe\xc0\x80"

#: wire formats no message decodes from (field 15 is unused everywhere)
CORRUPT = {
    "truncated varint tag": b"\x80",
    "truncated varint value": b"\x78\x80\x80",
    "overlong varint": b"\x78" + b"\xff" * 10 + b"\x01",
    "wire type 6": b"\x7e\x00",
    "wire type 7": b"\x7f\x00",
    "field number 0": b"\x02\x00",
    "oversized length prefix": b"\x0a\xff\xff\xff\xff\x0f",
    "length past the end": b"\x0a\x05ab",
    "group never ended": b"\x7b\x78\x01",
    "stray end of group": b"\x7c",
}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def length_delimited(number: int, body: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(body)) + body


def bad_utf8(desc: Descriptor, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(field path, message bytes) with invalid UTF-8 in each string field, nested ones too."""
    for f in desc.fields:
        name = prefix + f.name + ("[0]" if f.is_repeated else "")
        if f.type == FieldDescriptor.TYPE_STRING:
            yield name, length_delimited(f.number, BAD_UTF8)
        elif f.message_type is not None and f.message_type.file is pb.DESCRIPTOR:
            for path, inner in bad_utf8(f.message_type, name + "."):
                yield path, length_delimited(f.number, inner)


UTF8_CASES = [(m, path, raw) for m in METHODS for path, raw in bad_utf8(m.input_type)]


def path_of(m: MethodDescriptor) -> str:
    return f"/{SERVICE.full_name}/{m.name}"


def call(running: Running, m: MethodDescriptor, raw: bytes) -> grpc.RpcError:
    """Send ``raw`` as the (only) request message; the error the server answered."""
    with pytest.raises(grpc.RpcError) as err:
        if m.client_streaming:
            stream = running.channel.stream_stream(
                path_of(m), request_serializer=None, response_deserializer=None
            )
            list(stream(iter([raw]), timeout=30))
        else:
            unary = running.channel.unary_unary(
                path_of(m), request_serializer=None, response_deserializer=None
            )
            unary(raw, timeout=30)
    return err.value


def signer_field(error: grpc.RpcError) -> str | None:
    meta: dict[str, str] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    return meta.get("signer-field")


def assert_refused(error: grpc.RpcError, m: MethodDescriptor, *, index: int | None) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details: str = error.details() or ""
    assert f"does not decode as {m.input_type.full_name}" in details
    assert len(details) < 300
    if index is not None:
        assert f"message {index} of the request stream" in details
    return details


def refused_by_protobuf(m: MethodDescriptor, raw: bytes) -> bool:
    try:
        GetMessageClass(m.input_type).FromString(raw)
    except DecodeError:
        return True
    return False  # upb skips field-0 checks for a message without fields (ListKeysRequest)


CORRUPT_CASES = [
    (m, case) for m in METHODS for case in CORRUPT if refused_by_protobuf(m, CORRUPT[case])
]


@pytest.mark.parametrize(
    ("m", "case"), CORRUPT_CASES, ids=[f"{m.name}-{case}" for m, case in CORRUPT_CASES]
)
def test_corrupt_wire_format_is_invalid_argument(
    running: Running, m: MethodDescriptor, case: str
) -> None:
    error = call(running, m, CORRUPT[case])
    assert_refused(error, m, index=0 if m.client_streaming else None)


def test_the_corrupt_cases_are_refused_by_protobuf_nearly_everywhere() -> None:
    assert len(CORRUPT_CASES) >= len(CORRUPT) * len(METHODS) - 2


@pytest.mark.parametrize(
    ("m", "path", "raw"), UTF8_CASES, ids=[f"{m.name}-{p}" for m, p, _ in UTF8_CASES]
)
def test_invalid_utf8_in_a_string_field_names_the_field(
    running: Running, m: MethodDescriptor, path: str, raw: bytes
) -> None:
    with pytest.raises(DecodeError):
        GetMessageClass(m.input_type).FromString(raw)
    error = call(running, m, raw)
    details = assert_refused(error, m, index=0 if m.client_streaming else None)
    assert "UTF-8" in details
    assert signer_field(error) == path
    assert details.startswith(f"{path}: ")


def test_every_string_field_is_covered() -> None:
    names = {p.split("[")[0].split(".")[-1] for _, p, _ in UTF8_CASES}
    assert {"image_id", "device_ids", "firmware_version", "from_entry_id"} <= names


def test_the_fault_is_located_in_a_later_repeated_item() -> None:
    resign = cast(Descriptor, pb.ResignRequest.DESCRIPTOR)
    verify = cast(Descriptor, pb.VerifyManufacturerRequest.DESCRIPTOR)
    raw = length_delimited(2, b"00-DB-12-34-56-78-90-A0") + length_delimited(2, BAD_UTF8)
    assert locate(resign, raw) == (
        "device_ids[1]",
        "not valid UTF-8 (at byte 2)",
    )
    nested = length_delimited(1, length_delimited(1, b"ab") + b"\x1a\x09abc")
    field, reason = locate(verify, nested)
    assert field == "separate.signature"
    assert "runs past the end" in reason
    # protobuf keeps a field sent with another wire type as unknown; the fault is after it
    assert locate(resign, b"\x08\x01\x12\x05ab") == (
        "device_ids[0]",
        "length 5 runs past the end (2 bytes left)",
    )


def _stream(
    running: Running, method: str, messages: list[bytes]
) -> tuple[list[bytes], grpc.RpcError]:
    stream = running.channel.stream_stream(
        f"/{SERVICE.full_name}/{method}", request_serializer=None, response_deserializer=None
    )
    got: list[bytes] = []
    with pytest.raises(grpc.RpcError) as err:
        for response in stream(iter(messages), timeout=60):
            got.append(response)
    return got, err.value


def test_a_pre_command_stream_ends_at_its_undecodable_batch_after_the_good_results(
    running: Running,
) -> None:
    good = pb.PreCommandBatch(
        pre_commands=[b"\x00"], accept_unauthenticated=True
    ).SerializeToString()
    got, error = _stream(
        running, "StreamSignPreCommands", [good, length_delimited(1, b"") + b"\x0a\x09", good]
    )
    [first] = [pb.PreCommandResults.FromString(r) for r in got]
    assert [r.WhichOneof("result") for r in first.results] == ["refused"]
    details = assert_refused(error, SERVICE.methods_by_name["StreamSignPreCommands"], index=1)
    assert details.startswith("pre_commands[1]: ")


def test_an_activation_stream_ends_at_its_undecodable_batch_after_the_good_results(
    running: Running, manufacturer: Manufacturer
) -> None:
    image_id = running.verify(manufacturer, b"undecodable-stream image" * 40)
    spec = pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=image_id))
    devices = pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=[UNKNOWN_DEVICE]))
    bad = length_delimited(2, length_delimited(1, BAD_UTF8))
    got, error = _stream(
        running,
        "StreamActivation",
        [spec.SerializeToString(), devices.SerializeToString(), bad, devices.SerializeToString()],
    )
    [first] = [pb.ActivationResults.FromString(r) for r in got]
    assert [r.refused.device_id for r in first.results] == [UNKNOWN_DEVICE]
    details = assert_refused(error, SERVICE.methods_by_name["StreamActivation"], index=2)
    assert signer_field(error) == "devices.device_ids[0]"
    assert "UTF-8" in details


def test_metrics_count_undecodable_requests_as_invalid_argument(running: Running) -> None:
    assert running.server.metrics is not None
    labels = {"grpc_service": SERVICE.full_name, "grpc_method": "Resign"}
    before = scrape(running.server.metrics)
    for raw in CORRUPT.values():
        call(running, SERVICE.methods_by_name["Resign"], raw)
    after = scrape(running.server.metrics)

    def delta(code: str) -> float:
        name = "grpc_server_handled_total"
        return total(after, name, **labels, grpc_code=code) - total(
            before, name, **labels, grpc_code=code
        )

    assert delta("InvalidArgument") == len(CORRUPT)
    assert delta("Internal") == 0
