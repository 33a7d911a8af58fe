"""Pre-flight: what each target meter (and the DCC on its way) will check on an artifact.

Pure functions over bytes and facts, run on every artifact a campaign is about to release.
Written apart from the code that produced the artifacts: this package imports only the
standard library, ``cryptography``, ``lxml`` and ``signer.errors`` (``tests/test_layers.py``
holds it to that), and reads the formats from the specification (gbcs-firmware.md), so a
fault shared by a builder and its own parser cannot pass here unseen.

Every failure raises ``PreflightFailed(check, detail)`` naming one of ``CHECKS``:

- ``image_parses``: the upgrade image parses as a GBCS OTA image with its ARP signature tail
  (SR 11.1), or without one (an SR 11.4 PPMID image, ``with_tail=False``);
- ``image_matches_model``: manufacturer code (and image type, when the CPL records one);
- ``hardware_version``: the device's hardware version within the header's min..max;
- ``firmware_hash``: SHA-256 of the Manufacturer Image, and the SR 11.3 FirmwareHash;
- ``arp_signature``: the Supplier DS certificate is the one whose SKI the device's current
  Supplier digital-signing cell holds, and the ARP signature verifies with it (SR 11.1);
- ``originator_counter``: the RequestID targets the device, its counter above the last one;
- ``duis_schema``: a well-formed DUIS document without DOCTYPE, of the expected service,
  valid against the schema when one is given (a ``SchemaCheck``: the first error or None);
- ``xml_signature``: the XMLDSig profile, verifying with the XML-signing certificate;
- ``firmware_image``: the SR 11.1 / 11.4 request carries exactly the upgrade image checked;
- ``device_list``: the SR 11.1 / 11.4 request names exactly the devices intended;
- ``firmware_version``: the SR 11.1 / 11.4 request's FirmwareVersion is the plan's;
- ``force_replace``: the SR 11.1 upgrade image's Force Replace byte is the plan's;
- ``execution_time``: the SR 11.3 ExecutionDateTime is the plan's (absent: immediate).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from lxml import etree

from signer.errors import PolicyRefused
from signer.preflight import _ota, _xml

IMAGE_PARSES: Final = "image_parses"
IMAGE_MATCHES_MODEL: Final = "image_matches_model"
HARDWARE_VERSION: Final = "hardware_version"
ARP_SIGNATURE: Final = "arp_signature"
FIRMWARE_HASH: Final = "firmware_hash"
ORIGINATOR_COUNTER: Final = "originator_counter"
DUIS_SCHEMA: Final = "duis_schema"
XML_SIGNATURE: Final = "xml_signature"
FIRMWARE_IMAGE: Final = "firmware_image"
DEVICE_LIST: Final = "device_list"
FIRMWARE_VERSION: Final = "firmware_version"
FORCE_REPLACE: Final = "force_replace"
EXECUTION_TIME: Final = "execution_time"
CHECKS: Final = (
    IMAGE_PARSES,
    IMAGE_MATCHES_MODEL,
    HARDWARE_VERSION,
    ARP_SIGNATURE,
    FIRMWARE_HASH,
    ORIGINATOR_COUNTER,
    DUIS_SCHEMA,
    XML_SIGNATURE,
    FIRMWARE_IMAGE,
    DEVICE_LIST,
    FIRMWARE_VERSION,
    FORCE_REPLACE,
    EXECUTION_TIME,
)

#: service reference -> (CommandVariant, body element) of the requests checked here
_UPDATE_SERVICES: Final = {"11.1": ("8", "UpdateFirmware"), "11.4": ("8", "UpdatePPMIDFirmware")}
_ACTIVATE: Final = ("11.3", "4", "ActivateFirmware")
_MAX_COUNTER: Final = 2**64 - 1
_PREHASHED_ECDSA: Final = ec.ECDSA(Prehashed(hashes.SHA256()))
_HEADER_FIELDS: Final = (
    "RequestID",
    "CommandVariant",
    "ServiceReference",
    "ServiceReferenceVariant",
)
#: 16 hex digits, upper case, nothing else (``$`` would let a final newline through)
_EUI_HEX: Final = re.compile(r"[0-9A-F]{16}")


class SchemaCheck(Protocol):
    """Validates a parsed document against the DUIS schema: its first error (one line,
    locating it) or None. Must be safe to call from several threads at once (an lxml
    validator keeps its error log on the instance: ``DuisSchema.first_error`` locks)."""

    def __call__(self, root: etree._Element, /) -> str | None: ...


class PreflightFailed(PolicyRefused):
    """An artifact a meter (or the DCC) would refuse: withheld, never returned."""

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.detail = detail
        super().__init__(f"pre-flight check {check} failed: {detail}")


@dataclass(frozen=True)
class MeterFacts:
    device_id: str  # EUI-64 as the project writes it
    manufacturer_code: int  # of the device's model (its CPL entry)
    image_type: int | None  # of the device's model; None: the CPL records none
    hardware_version: int  # the device's (inventory)
    # the key the image was signed for (None: a tail-less SR 11.4 image, signed by no one)
    supplier_ds_certificate: x509.Certificate | None
    supplier_ski: bytes  # in the device's CURRENT Supplier DS cell, read at apply time


# ---------------------------------------------------------------- the upgrade image


@functools.lru_cache(maxsize=256)
def _arp_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The certificate's P-256 key, once per certificate (equal by DER); refused without SKI."""
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"certificate serial {certificate.serial_number} has no subject key identifier: "
            "it cannot be the one a Supplier digital-signing cell names",
        ) from None
    if not ski.value.digest:
        raise PreflightFailed(
            ARP_SIGNATURE, f"certificate serial {certificate.serial_number} has an empty SKI"
        )
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"certificate serial {certificate.serial_number} does not hold a P-256 key",
        )
    return key


def check_upgrade_image(
    upgrade_image: bytes,
    manufacturer_image_sha256: bytes,
    meter: MeterFacts,
    *,
    with_tail: bool = True,
) -> None:
    """What the meter checks on an SR 11.1 upgrade image before it accepts it; with
    ``with_tail=False``, on a tail-less SR 11.4 (PPMID) image: its structure, model,
    hardware range and Manufacturer Image hash (it carries no ARP signature to check)."""
    try:
        image = _ota.parse(upgrade_image, with_tail=with_tail)
    except _ota.ImageRefused as exc:
        raise PreflightFailed(IMAGE_PARSES, str(exc)) from None
    if image.manufacturer_code != meter.manufacturer_code:
        raise PreflightFailed(
            IMAGE_MATCHES_MODEL,
            f"the header's manufacturer code 0x{image.manufacturer_code:04X} is not device "
            f"{meter.device_id}'s 0x{meter.manufacturer_code:04X}",
        )
    if meter.image_type is not None and image.image_type != meter.image_type:
        raise PreflightFailed(
            IMAGE_MATCHES_MODEL,
            f"the header's image type 0x{image.image_type:04X} is not device "
            f"{meter.device_id}'s 0x{meter.image_type:04X}",
        )
    low, high = image.min_hardware_version, image.max_hardware_version
    if low is not None and high is not None and not low <= meter.hardware_version <= high:
        raise PreflightFailed(
            HARDWARE_VERSION,
            f"device {meter.device_id} has hardware version 0x{meter.hardware_version:04X}, "
            f"the image is for 0x{low:04X}..0x{high:04X}",
        )
    # one pass over the Manufacturer Image serves the hash check and the signature check
    digest = hashlib.sha256(memoryview(upgrade_image)[image.header_length : image.image_end])
    manufacturer_image_digest = digest.digest()
    if manufacturer_image_digest != manufacturer_image_sha256:
        raise PreflightFailed(
            FIRMWARE_HASH,
            f"SHA-256 of the Manufacturer Image is {manufacturer_image_digest.hex()}, "
            f"expected {manufacturer_image_sha256.hex()}",
        )
    if not with_tail:
        return
    if meter.supplier_ds_certificate is None:
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"no Supplier digital-signing certificate to check device {meter.device_id}'s "
            "ARP signature with",
        )
    key = _arp_key(meter.supplier_ds_certificate)
    ski = meter.supplier_ds_certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest  # present: _arp_key refused a certificate without one
    if not meter.supplier_ski:
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"device {meter.device_id} has no Supplier digital-signing cell: it would refuse "
            "every ARP signature",
        )
    if ski != meter.supplier_ski:
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"the image is signed for certificate serial "
            f"{meter.supplier_ds_certificate.serial_number} (SKI {ski.hex()}), device "
            f"{meter.device_id}'s Supplier digital-signing cell now holds SKI "
            f"{meter.supplier_ski.hex()}",
        )
    r, s = image.signature[:32], image.signature[32:]
    der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    try:
        key.verify(der, manufacturer_image_digest, _PREHASHED_ECDSA)
    except InvalidSignature:
        raise PreflightFailed(
            ARP_SIGNATURE,
            f"the ARP signature does not verify with certificate serial "
            f"{meter.supplier_ds_certificate.serial_number}, the one device "
            f"{meter.device_id}'s Supplier digital-signing cell names",
        ) from None


# ---------------------------------------------------------------- DUIS documents


def _document(
    document: bytes, xml_certificate: x509.Certificate, schema: SchemaCheck | None
) -> etree._Element:
    """Parsed, schema-validated (when a schema is given), signature verified; the root with
    its Signature removed."""
    try:
        root = _xml.parse(document)
    except _xml.XmlRefused as exc:
        raise PreflightFailed(DUIS_SCHEMA, str(exc)) from None
    if schema is not None:
        error = schema(root)
        if error is not None:
            raise PreflightFailed(DUIS_SCHEMA, " ".join(error.split())[:200] or "invalid")
    try:
        _xml.verify_enveloped(root, xml_certificate)
    except _xml.SignatureRefused as exc:
        raise PreflightFailed(XML_SIGNATURE, str(exc)) from None
    return root


def _header_and_body(
    root: etree._Element, services: dict[str, tuple[str, str]]
) -> tuple[str, str, etree._Element]:
    """(RequestID text, service reference, the body's operation element) of a request."""
    if root.tag != _xml.SR + "Request":
        raise PreflightFailed(DUIS_SCHEMA, f"the root is {str(root.tag)[-40:]!r}, not sr:Request")
    header, body = _xml.children(root, "Header", "Body")
    if header is None or body is None:
        raise PreflightFailed(DUIS_SCHEMA, "the request needs one sr:Header and one sr:Body")
    fields = {}
    for name, el in zip(_HEADER_FIELDS, _xml.children(header, *_HEADER_FIELDS), strict=True):
        if el is None:
            raise PreflightFailed(DUIS_SCHEMA, f"the header has no single sr:{name}")
        fields[name] = (el.text or "").strip()
    service = fields["ServiceReference"]
    if service not in services:
        raise PreflightFailed(
            DUIS_SCHEMA,
            f"ServiceReference {service[:20]!r}, expected {' or '.join(sorted(services))}",
        )
    variant, operation = services[service]
    if fields["ServiceReferenceVariant"] != service or fields["CommandVariant"] != variant:
        raise PreflightFailed(
            DUIS_SCHEMA,
            f"SR {service} is sent as ServiceReferenceVariant {service} with CommandVariant "
            f"{variant}, the document has {fields['ServiceReferenceVariant'][:20]!r} and "
            f"{fields['CommandVariant'][:20]!r}",
        )
    op = _xml.child(body, operation)
    if op is None or len(body) != 1:
        raise PreflightFailed(DUIS_SCHEMA, f"the body of SR {service} is one sr:{operation}")
    return fields["RequestID"], service, op


def _eui(text: str) -> str:
    """An EUI-64 in one form (16 upper-case hex digits) whichever way it is written."""
    compact = text.strip().replace("-", "").upper()
    if _EUI_HEX.fullmatch(compact) is None:
        raise ValueError(text)
    return compact


def _request_id(text: str) -> tuple[str, str, int]:
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or not parts[2].isascii():
        raise PreflightFailed(
            ORIGINATOR_COUNTER, f"RequestID {text[:80]!r} is not originator:target:counter"
        )
    try:
        originator, target = _eui(parts[0]), _eui(parts[1])
    except ValueError:
        raise PreflightFailed(
            ORIGINATOR_COUNTER, f"RequestID {text[:80]!r} does not name two EUI-64s"
        ) from None
    counter = int(parts[2])
    if counter > _MAX_COUNTER:
        raise PreflightFailed(ORIGINATOR_COUNTER, f"RequestID counter {counter} exceeds 2^64-1")
    return originator, target, counter


def check_update_request(
    document: bytes,
    *,
    upgrade_image: bytes,
    device_ids: Sequence[str],
    xml_certificate: x509.Certificate,
    schema: SchemaCheck | None,
    firmware_version: str,
    force_replace: bool | None,
) -> None:
    """What the DCC checks on an SR 11.1 / 11.4 request, and that it carries exactly the
    upgrade image already checked, for exactly ``device_ids``, with the plan's
    ``firmware_version`` and (SR 11.1: the image's tail) Force Replace byte; an SR 11.4
    image has no tail, and ``force_replace`` is not checked then."""
    root = _document(document, xml_certificate, schema)
    request_id, service, op = _header_and_body(root, _UPDATE_SERVICES)
    _request_id(request_id)
    image_el, list_el = _xml.child(op, "FirmwareImage"), _xml.child(op, "DeviceIDList")
    version_el = _xml.child(op, "FirmwareVersion")
    if image_el is None or list_el is None or version_el is None:
        raise PreflightFailed(
            DUIS_SCHEMA,
            f"SR {service} needs one FirmwareImage, FirmwareVersion and DeviceIDList",
        )
    version = (version_el.text or "").strip()
    if version != firmware_version:
        raise PreflightFailed(
            FIRMWARE_VERSION,
            f"FirmwareVersion {version[:40]!r} is not the plan's {firmware_version[:40]!r}",
        )
    text = image_el.text or ""
    try:
        try:
            carried = base64.b64decode(text, validate=True)
        except binascii.Error:  # base64Binary may be wrapped: the slow path only then
            carried = base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error:
        raise PreflightFailed(FIRMWARE_IMAGE, "FirmwareImage is not base64") from None
    if carried != upgrade_image:
        raise PreflightFailed(
            FIRMWARE_IMAGE,
            f"the document carries an image of {len(carried)} bytes, SHA-256 "
            f"{hashlib.sha256(carried).hexdigest()}, not the {len(upgrade_image)}-byte "
            f"upgrade image checked ({hashlib.sha256(upgrade_image).hexdigest()})",
        )
    if service == "11.1" and force_replace is not None:
        # the tail's first byte (gbcs-firmware.md section 3): the image ends with it, 0x40
        # and the 64-byte signature
        byte = upgrade_image[-_ota.TAIL] if len(upgrade_image) >= _ota.TAIL else None
        if byte != int(force_replace):
            shown = "none" if byte is None else f"0x{byte:02X}"
            raise PreflightFailed(
                FORCE_REPLACE,
                f"the upgrade image's Force Replace byte is {shown}, the plan's is "
                f"0x{int(force_replace):02X}",
            )
    _check_device_list(list_el.text or "", device_ids)


def _check_device_list(text: str, device_ids: Sequence[str]) -> None:
    try:
        named = [_eui(d) for d in text.split(",")]
    except ValueError as exc:
        raise PreflightFailed(
            DEVICE_LIST, f"DeviceIDList holds {str(exc)[:40]!r}, not an EUI-64"
        ) from None
    try:
        intended = {_eui(d) for d in device_ids}
    except ValueError as exc:
        raise PreflightFailed(
            DEVICE_LIST, f"device {str(exc)[:40]!r} to check against is not an EUI-64"
        ) from None
    listed = set(named)
    if len(listed) != len(named):
        raise PreflightFailed(DEVICE_LIST, "DeviceIDList names a device twice")
    if listed != intended:
        extra, missing = sorted(listed - intended), sorted(intended - listed)
        parts = []
        if extra:
            parts.append(f"{len(extra)} device(s) not intended, first {extra[0]}")
        if missing:
            parts.append(f"{len(missing)} intended device(s) missing, first {missing[0]}")
        raise PreflightFailed(DEVICE_LIST, "DeviceIDList: " + "; ".join(parts))


def check_activation(
    document: bytes,
    *,
    device_id: str,
    manufacturer_image_sha256: bytes,
    previous_counter: int | None,
    xml_certificate: x509.Certificate,
    schema: SchemaCheck | None,
    execution_time: dt.datetime | None,
) -> None:
    """What the DCC and the meter check on one SR 11.3 Activate Firmware request, and that
    its ExecutionDateTime is ``execution_time`` (None: immediate, no ExecutionDateTime)."""
    root = _document(document, xml_certificate, schema)
    service, variant, operation = _ACTIVATE
    request_id, _, op = _header_and_body(root, {service: (variant, operation)})
    _, target, counter = _request_id(request_id)
    try:
        device = _eui(device_id)
    except ValueError:
        raise PreflightFailed(
            ORIGINATOR_COUNTER, f"device {device_id[:40]!r} is not an EUI-64"
        ) from None
    if target != device:
        raise PreflightFailed(
            ORIGINATOR_COUNTER,
            f"RequestID {request_id[:80]!r} targets another device than {device_id}",
        )
    if previous_counter is not None and counter <= previous_counter:
        raise PreflightFailed(
            ORIGINATOR_COUNTER,
            f"RequestID counter {counter} is not above {previous_counter}, the last one issued "
            f"to device {device_id}: the device would refuse it as a replay",
        )
    hash_el, when_el = _xml.children(op, "FirmwareHash", "ExecutionDateTime")
    if hash_el is None:
        raise PreflightFailed(DUIS_SCHEMA, "sr:ActivateFirmware has no single FirmwareHash")
    text = (hash_el.text or "").strip()
    try:
        carried = bytes.fromhex(text)
    except ValueError:
        raise PreflightFailed(FIRMWARE_HASH, f"FirmwareHash {text[:70]!r} is not hex") from None
    if carried != manufacturer_image_sha256:
        raise PreflightFailed(
            FIRMWARE_HASH,
            f"FirmwareHash {text[:70]} is not SHA-256 of the Manufacturer Image "
            f"({manufacturer_image_sha256.hex().upper()})",
        )
    _check_execution_time(op, execution_time, when_el)


def _check_execution_time(
    op: etree._Element, planned: dt.datetime | None, when_el: etree._Element | None
) -> None:
    """``when_el``: ``op``'s one ExecutionDateTime (None: absent, or repeated)."""
    if when_el is None and len(op.findall(_xml.SR + "ExecutionDateTime")) > 1:
        raise PreflightFailed(DUIS_SCHEMA, "sr:ActivateFirmware has two ExecutionDateTime")
    shown = "immediate" if planned is None else planned.isoformat()
    if when_el is None:
        if planned is not None:
            raise PreflightFailed(
                EXECUTION_TIME, f"the request activates immediately, the plan at {shown}"
            )
        return
    text = (when_el.text or "").strip()
    if planned is None:
        raise PreflightFailed(
            EXECUTION_TIME, f"the request activates at {text[:40]!r}, the plan immediately"
        )
    try:
        carried = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PreflightFailed(
            EXECUTION_TIME, f"ExecutionDateTime {text[:40]!r} is not an xs:dateTime"
        ) from None
    if carried.tzinfo is None or planned.tzinfo is None or carried != planned:
        raise PreflightFailed(
            EXECUTION_TIME, f"ExecutionDateTime {text[:40]} is not the plan's {shown}"
        )
