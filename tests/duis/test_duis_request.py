"""SR 11.1 / 11.4 request building: the DCC templates' shape, and the DUIS limits."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lxml import etree

from signer.duis.request import (
    MAX_DEVICE_ID_LIST_CHARS,
    MAX_FIRMWARE_IMAGE,
    RequestId,
    build_update_firmware,
    device_id_list,
)
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from tests.support.duis_documents import c14n, template_without_signature

DS = "http://www.w3.org/2000/09/xmldsig#"
SR = "http://www.dccinterface.co.uk/ServiceUserGateway"
RID = RequestId(
    Eui64.parse("90-B3-D5-1F-30-01-00-00"), Eui64.parse("90-B3-D5-1F-30-00-00-02"), 1000
)
DEVICE = Eui64.parse("00-DB-12-34-56-78-90-A0")


@pytest.mark.parametrize(
    ("service", "template"),
    [
        ("11.1", "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML"),
        ("11.4", "11.4_UPDATE_PPMID_FIRMWARE_REQUEST_DUIS.XML"),
    ],
)
def test_built_request_is_the_template_byte_for_byte(
    vectors: Path, service: str, template: str
) -> None:
    tpl = template_without_signature(vectors / "duis" / template)
    sr = {"sr": SR}
    image = base64.b64decode(tpl.findtext(".//sr:FirmwareImage", namespaces=sr) or "")
    version = tpl.findtext(".//sr:FirmwareVersion", namespaces=sr) or ""
    device = Eui64.parse(tpl.findtext(".//sr:DeviceIDList", namespaces=sr) or "")
    request_id = RequestId.parse(tpl.findtext(".//sr:RequestID", namespaces=sr) or "")
    built = build_update_firmware(
        request_id=request_id,
        service=service,
        firmware_image=image,
        firmware_version=version,
        devices=[device],
    )
    # Canonical forms equal: same names, namespaces on the root, attributes and text.
    assert c14n(built) == c14n(tpl)
    assert built.nsmap == tpl.nsmap


def test_output_is_compact() -> None:
    root = build_update_firmware(
        request_id=RID,
        service="11.1",
        firmware_image=b"\x00" * 100,
        firmware_version="1",
        devices=[DEVICE, Eui64.parse("00-DB-12-34-56-78-90-A1")],
    )
    text = etree.tostring(root)
    assert b"\n" not in text and b"> <" not in text
    assert (
        root.findtext(f".//{{{SR}}}DeviceIDList")
        == "00-DB-12-34-56-78-90-A0,00-DB-12-34-56-78-90-A1"
    )


def test_request_id_round_trips() -> None:
    text = "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1000"
    assert str(RID) == text
    assert RequestId.parse(text) == RID
    top = RequestId.parse(f"{RID.originator}:{RID.target}:{2**64 - 1}")
    assert top.counter == 2**64 - 1


@pytest.mark.parametrize("counter", [-1, 2**64])
def test_request_id_counter_range(counter: int) -> None:
    with pytest.raises(InvalidInput) as e:
        RequestId(RID.originator, RID.target, counter)
    assert e.value.field == "request_id"


@pytest.mark.parametrize(
    "text",
    [
        "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:18446744073709551616",
        "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:-1",
        "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02",
        "90-B3-D5-1F-30-01-00:90-B3-D5-1F-30-00-00-02:1",
        "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:01",
    ],
)
def test_request_id_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as e:
        RequestId.parse(text)
    assert e.value.field == "request_id"


def _build(**overrides: object) -> etree._Element:
    args: dict[str, object] = {
        "request_id": RID,
        "service": "11.1",
        "firmware_image": b"\x01" * 10,
        "firmware_version": "0001",
        "devices": [DEVICE],
    }
    args.update(overrides)
    return build_update_firmware(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["", "123456789"])
def test_firmware_version_length(version: str) -> None:
    with pytest.raises(InvalidInput) as e:
        _build(firmware_version=version)
    assert e.value.field == "firmware_version"


def test_firmware_version_bounds_accepted() -> None:
    _build(firmware_version="1")
    _build(firmware_version="12345678")


def test_image_over_the_limit() -> None:
    with pytest.raises(InvalidInput) as e:
        _build(firmware_image=bytes(MAX_FIRMWARE_IMAGE + 1))
    assert e.value.field == "firmware_image"
    assert "10240001" in str(e.value)


def test_empty_image() -> None:
    with pytest.raises(InvalidInput) as e:
        _build(firmware_image=b"")
    assert e.value.field == "firmware_image"


def test_device_list_limit_is_exactly_50000_devices() -> None:
    devices = [Eui64(i.to_bytes(8, "big")) for i in range(50_001)]
    assert len(device_id_list(devices[:50_000])) == MAX_DEVICE_ID_LIST_CHARS
    with pytest.raises(InvalidInput) as e:
        _build(devices=devices)
    assert e.value.field == "device_ids"
    assert "1200023 characters" in str(e.value)


@pytest.mark.parametrize("devices", [[], [DEVICE, DEVICE]])
def test_device_list_empty_or_duplicated(devices: list[Eui64]) -> None:
    with pytest.raises(InvalidInput) as e:
        _build(devices=devices)
    assert e.value.field == "device_ids"


def test_unknown_service() -> None:
    with pytest.raises(InvalidInput) as e:
        _build(service="11.3")
    assert e.value.field == "service"
