"""Unsigned DUIS service requests for firmware distribution (SR 11.1 and 11.4).

Built element by element in the exact shape of the DCC templates, compact (no whitespace
between elements), because the signature is computed over the serialised form and the DCC's
tool drops inter-element whitespace before digesting.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Final

from lxml import etree

from signer.errors import InvalidInput, excerpt
from signer.gbcs.eui import Eui64

SR_NS: Final = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
RA_NS: Final = "http://www.dccinterface.co.uk/ResponseAndAlert"
#: Prefixes as the templates declare them on the root; all of them end up in the digest.
REQUEST_NSMAP: Final = {"ds": DS_NS, "sr": SR_NS, "xsi": XSI_NS}
SCHEMA_VERSION: Final = "5.4"

#: DUIS 5.4 limits (UpdateFirmware / UpdatePPMIDFirmware).
MAX_FIRMWARE_IMAGE: Final = 10_240_000
MAX_DEVICE_ID_LIST_CHARS: Final = 1_199_999
MIN_FIRMWARE_VERSION_CHARS: Final = 1
MAX_FIRMWARE_VERSION_CHARS: Final = 8
MAX_COUNTER: Final = 2**64 - 1

#: The DCC's EUI in the test system: SR 11.1 / 11.4 are addressed to the DCC, not the device.
DCC_TEST_EUI: Final = Eui64(bytes.fromhex("90B3D51F30000002"))

#: service reference -> (CommandVariant, body element local name)
_FIRMWARE_SERVICES: Final = {
    "11.1": ("8", "UpdateFirmware"),
    "11.4": ("8", "UpdatePPMIDFirmware"),
}
_COUNTER = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_VALUE = attrgetter("value")


@dataclass(frozen=True, slots=True)
class RequestId:
    """``originator:target:counter``; the counter must never repeat per originator."""

    originator: Eui64
    target: Eui64
    counter: int
    # written into the document and each of its audit records: formatted once
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.counter, bool) or not 0 <= self.counter <= MAX_COUNTER:
            raise InvalidInput(f"counter {self.counter} outside 0..2^64-1", field="request_id")
        object.__setattr__(self, "_text", f"{self.originator}:{self.target}:{self.counter}")

    def __str__(self) -> str:
        return self._text

    @classmethod
    def parse(cls, text: str, *, field: str = "request_id") -> RequestId:
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise InvalidInput(
                f"a RequestID is originator:target:counter, got {excerpt(text)}", field=field
            )
        orig, target, counter = parts
        if not _COUNTER.match(counter) or int(counter) > MAX_COUNTER:
            raise InvalidInput(f"counter {excerpt(counter)} is not 0..2^64-1", field=field)
        return cls(Eui64.parse(orig, field=field), Eui64.parse(target, field=field), int(counter))


def check_firmware_version(version: str) -> str:
    """1-8 characters (DUIS), and printable ASCII: XML cannot carry control characters."""
    if not MIN_FIRMWARE_VERSION_CHARS <= len(version) <= MAX_FIRMWARE_VERSION_CHARS:
        raise InvalidInput(
            f"FirmwareVersion must have 1 to 8 characters, got {len(version)}",
            field="firmware_version",
        )
    if not all(" " <= c <= "~" for c in version):
        raise InvalidInput(
            f"FirmwareVersion {excerpt(version)} must be printable ASCII", field="firmware_version"
        )
    return version


def device_id_list(devices: Sequence[Eui64]) -> str:
    """The DeviceIDList text: comma-separated dashed EUIs, checked against the DUIS limit."""
    if not devices:
        raise InvalidInput("at least one device is needed", field="device_ids")
    # bytes.hex(sep) is C-level, and so are map and attrgetter: 50,000 devices join in a
    # few milliseconds, and are checked for duplicates by their bytes (no Python-level hash)
    values = list(map(_VALUE, devices))
    text = ",".join(map(bytes.hex, values, repeat("-"))).upper()
    if len(text) > MAX_DEVICE_ID_LIST_CHARS:
        raise InvalidInput(
            f"DeviceIDList has {len(text)} characters ({len(devices)} devices), "
            f"DUIS allows {MAX_DEVICE_ID_LIST_CHARS}",
            field="device_ids",
        )
    if len(set(values)) != len(devices):
        seen: set[Eui64] = set()
        for i, d in enumerate(devices):
            if d in seen:
                raise InvalidInput(f"device {d} is listed twice (index {i})", field="device_ids")
            seen.add(d)
    return text


def build_update_firmware(
    *,
    request_id: RequestId,
    service: str,
    firmware_image: bytes,
    firmware_version: str,
    devices: Sequence[Eui64],
) -> etree._Element:
    """SR 11.1 Update Firmware or SR 11.4 Update PPMID Firmware, unsigned."""
    try:
        command_variant, body_name = _FIRMWARE_SERVICES[service]
    except KeyError:
        raise InvalidInput(
            f"service must be one of {sorted(_FIRMWARE_SERVICES)}, got {excerpt(service)}",
            field="service",
        ) from None
    if not firmware_image:
        raise InvalidInput("the firmware image is empty", field="firmware_image")
    if len(firmware_image) > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(
            f"image has {len(firmware_image)} bytes, DUIS allows {MAX_FIRMWARE_IMAGE}",
            field="firmware_image",
        )
    check_firmware_version(firmware_version)
    device_text = device_id_list(devices)

    root = request_root(
        request_id=request_id,
        command_variant=command_variant,
        service_reference=service,
        service_reference_variant=service,
    )
    body = etree.SubElement(root, _sr("Body"))
    op = etree.SubElement(body, _sr(body_name))
    # as bytes: lxml takes ASCII bytes as they are, where a 13.6 MB str would be decoded
    # from them and then encoded again (measured: 25-35 ms less per 10 MB image)
    _leaf(op, "FirmwareImage", base64.b64encode(firmware_image))
    _leaf(op, "FirmwareVersion", firmware_version)
    _leaf(op, "DeviceIDList", device_text)
    return root


def request_root(
    *,
    request_id: RequestId,
    command_variant: str,
    service_reference: str,
    service_reference_variant: str,
) -> etree._Element:
    """``sr:Request`` with its Header; the caller appends ``sr:Body``."""
    root = request_template(
        command_variant=command_variant,
        service_reference=service_reference,
        service_reference_variant=service_reference_variant,
    )
    root[0][0].text = str(request_id)
    return root


def request_template(
    *, command_variant: str, service_reference: str, service_reference_variant: str
) -> etree._Element:
    """``request_root`` with the RequestID text left unset: the shape of a per-device template.

    Per-device builders append their Body to it once, then ``copy.copy`` it per request (for
    lxml, a deep copy) and fill the texts by position (``root[0][0]`` is RequestID): copying
    a small tree is C code, several times faster than creating each element from Python.
    """
    root = etree.Element(_sr("Request"), nsmap=REQUEST_NSMAP)
    root.set("schemaVersion", SCHEMA_VERSION)
    header = etree.SubElement(root, _sr("Header"))
    etree.SubElement(header, _sr("RequestID"))
    _leaf(header, "CommandVariant", command_variant)
    _leaf(header, "ServiceReference", service_reference)
    _leaf(header, "ServiceReferenceVariant", service_reference_variant)
    return root


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def _leaf(parent: etree._Element, local: str, text: str | bytes) -> etree._Element:
    el = etree.SubElement(parent, _sr(local))
    el.text = text
    return el
