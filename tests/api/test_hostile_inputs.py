"""Hostile values in every bytes and string field of every RPC, on a real server: the answer
is a refusal the client can act on (INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND) or a
normal response, never INTERNAL or UNKNOWN, and no message echoes more than a short prefix
of what was sent."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.duis.request import RequestId
from signer.errors import InvalidInput, excerpt
from signer.gbcs.eui import Eui64
from tests.support.constants import RTDS_DEVICE
from tests.support.hostile import hostile_bytes, hostile_strings
from tests.support.independent import ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running

REFUSED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
}
MAX_MESSAGE = 300
#: a message may show this many characters of a value, no more
ECHO = 48
#: response fields that carry text for people; each must stay short too
TEXT_FIELDS = ("detail", "reason")


@dataclass(frozen=True)
class Base:
    """Valid requests around the one hostile field, so the hostile value is what is checked."""

    image_id: str
    header: bytes
    image: bytes
    signature: bytes
    upgrade_image: bytes


@pytest.fixture(scope="module")
def base(running: Running, manufacturer: Manufacturer) -> Base:
    image = b"hostile-inputs image " * 50
    header = ota_header(len(image))
    image_id = running.verify(manufacturer, image)
    [signed] = running.stub.Resign(
        pb.ResignRequest(image_id=image_id, device_ids=[RTDS_DEVICE])
    ).images
    return Base(image_id, header, image, manufacturer.sign(header + image), signed.upgrade_image)


def request_for(rpc: str, b: Base) -> Message:
    digest = hashlib.sha256(b.image).digest()
    spec = pb.ActivationSpec(image_id=b.image_id)
    return {
        "VerifyManufacturer.separate": lambda: pb.VerifyManufacturerRequest(
            separate=pb.SeparateDelivery(
                ota_header=b.header,
                manufacturer_image=b.image,
                signature=b.signature,
                hash=digest,
            )
        ),
        "VerifyManufacturer.gbcs": lambda: pb.VerifyManufacturerRequest(
            gbcs=pb.GbcsDelivery(upgrade_image=b.upgrade_image, hash=digest)
        ),
        "VerifyManufacturer.combined": lambda: pb.VerifyManufacturerRequest(
            combined=pb.CombinedDelivery(
                header_and_image=b.header + b.image, signature=b.signature, hash=digest
            )
        ),
        "Resign": lambda: pb.ResignRequest(image_id=b.image_id, device_ids=[RTDS_DEVICE]),
        "BuildDUIS": lambda: pb.BuildDUISRequest(
            image_id=b.image_id,
            device_ids=[RTDS_DEVICE],
            firmware_version="00000002",
            service_reference="11.1",
        ),
        # entries the CPL does not have: the hostile value replaces one side of its oneof
        "GetUpgradePath": lambda: pb.GetUpgradePathRequest(
            from_entry_id="NO-SUCH-1", to_entry_id="NO-SUCH-2"
        ),
        "BuildActivation": lambda: pb.BuildActivationRequest(
            activation=spec, device_ids=[RTDS_DEVICE]
        ),
        "StreamActivation": lambda: pb.ActivationCampaignRequest(activation=spec),
        # raw GBCS accepted, so the pre-command parser is what answers
        "SignPreCommand": lambda: pb.SignPreCommandRequest(accept_unauthenticated=True),
        "StreamSignPreCommands": lambda: pb.PreCommandBatch(accept_unauthenticated=True),
    }[rpc]()


def with_value(message: Message, path: str, value: Any) -> Message:
    *parents, name = path.split(".")
    target = message
    for p in parents:
        target = getattr(target, p)
    field = target.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        del getattr(target, name)[:]
        getattr(target, name).append(value)
    else:
        setattr(target, name, value)
    return message


#: (case, how the request is built, the field path in it, bytes or str)
FIELDS: list[tuple[str, str, str, type]] = [
    *(
        (f"VerifyManufacturer.separate.{f}", "VerifyManufacturer.separate", f"separate.{f}", bytes)
        for f in ("ota_header", "manufacturer_image", "signature", "hash")
    ),
    *(
        (f"VerifyManufacturer.gbcs.{f}", "VerifyManufacturer.gbcs", f"gbcs.{f}", bytes)
        for f in ("upgrade_image", "hash")
    ),
    *(
        (f"VerifyManufacturer.combined.{f}", "VerifyManufacturer.combined", f"combined.{f}", bytes)
        for f in ("header_and_image", "signature", "hash")
    ),
    ("Resign.image_id", "Resign", "image_id", str),
    ("Resign.device_ids", "Resign", "device_ids", str),
    ("BuildDUIS.image_id", "BuildDUIS", "image_id", str),
    ("BuildDUIS.upgrade_image", "BuildDUIS", "upgrade_image", bytes),
    ("BuildDUIS.device_ids", "BuildDUIS", "device_ids", str),
    ("BuildDUIS.firmware_version", "BuildDUIS", "firmware_version", str),
    ("BuildDUIS.service_reference", "BuildDUIS", "service_reference", str),
    ("GetUpgradePath.from_entry_id", "GetUpgradePath", "from_entry_id", str),
    ("GetUpgradePath.device_id", "GetUpgradePath", "device_id", str),
    ("GetUpgradePath.to_entry_id", "GetUpgradePath", "to_entry_id", str),
    ("GetUpgradePath.image_id", "GetUpgradePath", "image_id", str),
    ("BuildActivation.activation.image_id", "BuildActivation", "activation.image_id", str),
    ("BuildActivation.device_ids", "BuildActivation", "device_ids", str),
    ("StreamActivation.activation.image_id", "StreamActivation", "activation.image_id", str),
    ("StreamActivation.devices.device_ids", "StreamActivation", "devices.device_ids", str),
    ("SignPreCommand.pre_command", "SignPreCommand", "pre_command", bytes),
    ("SignPreCommand.dcc_response", "SignPreCommand", "dcc_response", bytes),
    ("StreamSignPreCommands.pre_commands", "StreamSignPreCommands", "pre_commands", bytes),
]


def send(running: Running, b: Base, rpc: str, path: str, value: Any) -> list[Message]:
    """The responses of one call with ``value`` in ``path`` (raises the call's RpcError)."""
    method = rpc.split(".")[0]
    stub: Callable[..., Any] = getattr(running.stub, method)
    if method == "StreamActivation":
        spec = request_for(rpc, b)
        devices = pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=[RTDS_DEVICE]))
        if path.startswith("activation."):
            messages = [with_value(spec, path, value), devices]
        else:
            messages = [spec, with_value(devices, path, value)]
        return list(stub(iter(messages), timeout=120))
    message = with_value(request_for(rpc, b), path, value)
    if method == "StreamSignPreCommands":
        return list(stub(iter([message]), timeout=120))
    return [stub(message, timeout=120)]


def text_of(message: Message) -> Iterator[str]:
    """Every text-for-people field in a response, nested ones too."""
    for field, value in message.ListFields():
        if field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                yield from text_of(item)
        elif field.name in TEXT_FIELDS:
            yield value


def echoed(value: Any, text: str) -> bool:
    """More than a short prefix of ``value`` appears in ``text``."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return len(value) > ECHO and value[:ECHO] in text


def problem(running: Running, b: Base, rpc: str, path: str, value: Any) -> str | None:
    """What is wrong with the server's answer to ``value``, or None."""
    try:
        responses = send(running, b, rpc, path, value)
    except grpc.RpcError as err:
        code, details = err.code(), err.details() or ""
        if code not in REFUSED:
            return f"{code.name}: {details[:200]}"
        if len(details) > MAX_MESSAGE:
            return f"{code.name} with {len(details)} characters of details: {details[:120]}…"
        if echoed(value, details):
            return f"{code.name} echoes the value: {details[:120]}…"
        return None
    for r in responses:
        for text in text_of(r):
            if len(text) > MAX_MESSAGE or echoed(value, text):
                return f"OK, but a response text has {len(text)} characters: {text[:120]}…"
    return None


@pytest.mark.parametrize(("case", "rpc", "path", "kind"), FIELDS, ids=[f[0] for f in FIELDS])
def test_hostile_values_are_refused_with_short_messages(
    running: Running, base: Base, case: str, rpc: str, path: str, kind: type
) -> None:
    values: list[tuple[str, Any]] = list(hostile_bytes() if kind is bytes else hostile_strings())
    found = {}
    for name, value in values:
        p = problem(running, base, rpc, path, value)
        if p is not None:
            found[name] = p
    assert not found, "\n".join(f"{case} = {n}: {p}" for n, p in found.items())


def test_a_megabyte_value_yields_a_short_message() -> None:
    value = "00-DB-" * (1 << 20)
    shown = excerpt(value)
    assert len(shown) < 80
    assert shown.endswith(f"… ({len(value)} characters)")
    assert excerpt(b"\xff" * (1 << 20)).endswith("… (1048576 bytes)")
    assert excerpt("00-DB") == "'00-DB'"
    error = InvalidInput(f"not an EUI-64: {shown}", field="device_ids")
    assert len(str(error)) < 120
    for parse in (Eui64.parse, RequestId.parse, lambda v: RequestId.parse(f"a:b:{v}")):
        with pytest.raises(InvalidInput) as err:
            parse(value)
        assert len(str(err.value)) < 150, parse


def test_hostile_strings_in_an_eui_are_refused_briefly(running: Running, base: Base) -> None:
    with pytest.raises(grpc.RpcError) as err:
        running.stub.Resign(pb.ResignRequest(image_id=base.image_id, device_ids=["A" * 1_000_000]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "device_ids" in details
    assert len(details) < 150
