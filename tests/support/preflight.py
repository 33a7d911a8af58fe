"""What the pre-flight tests share: the artifacts' facts and ways to fault them.

Faults are made with independent code (struct, cryptography) or, where a fault must still
carry a valid signature, with the project's own XML signing over the published test key.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from lxml import etree

from signer.duis.xmldsig import sign_document
from signer.gbcs import delivery as deliveries
from signer.preflight import MeterFacts, PreflightFailed
from signer.service.services import Services
from signer.service.verify import verify_manufacturer
from tests.support.constants import MANUFACTURER_CODE, RTDS_DEVICE
from tests.support.manufacturer import Manufacturer

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
IMAGE_TYPE = 0x0001
MIN_HW, MAX_HW = 0x0100, 0x0200
DEVICE_HW = 0x0150
FIRMWARE_VERSION = "01020304"


def header_with_hardware_versions(image_len: int) -> bytes:
    """An OTA header carrying min/max hardware version (field control bit 2), laid out from
    the specification's table: 56 fixed bytes, then min and max (little-endian)."""
    total = 60 + image_len + 66
    return (
        struct.pack(
            "<IHHHHHIH",
            0x0BEEF11E,
            0x0100,
            60,
            0x0004,
            MANUFACTURER_CODE,
            IMAGE_TYPE,
            0x01020304,
            0x0002,
        )
        + b"preflight test image".ljust(32, b"\0")
        + struct.pack("<IHH", total, MIN_HW, MAX_HW)
    )


@dataclass(frozen=True)
class Artifacts:
    """What one campaign for the RTDS device would release, and the facts to check it by."""

    svc: Services
    manufacturer_image: bytes
    image_sha256: bytes
    upgrade_image: bytes
    update_request: bytes
    activation: bytes
    activation_counter: int
    other_image_sha256: bytes
    other_activation: bytes  # a genuine activation of another image, for the same device
    supplier_cert: x509.Certificate
    xml_cert: x509.Certificate
    schema: Callable[[etree._Element], str | None]  # a pre-flight SchemaCheck

    def facts(self, **changes: object) -> MeterFacts:
        values: dict[str, object] = {
            "device_id": RTDS_DEVICE,
            "manufacturer_code": MANUFACTURER_CODE,
            "image_type": IMAGE_TYPE,
            "hardware_version": DEVICE_HW,
            "supplier_ds_certificate": self.supplier_cert,
            "supplier_ski": ski_of(self.supplier_cert),  # the RTDS device's cell holds it
        }
        values.update(changes)
        return MeterFacts(**values)  # type: ignore[arg-type]


def ski_of(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def schema_check(schema: etree.XMLSchema) -> Callable[[etree._Element], str | None]:
    """An independent pre-flight ``SchemaCheck`` over a compiled schema (one test thread)."""

    def first_error(root: etree._Element) -> str | None:
        if schema.validate(root):
            return None
        error = schema.error_log.last_error
        return f"line {error.line}: {error.message}" if error is not None else "invalid"

    return first_error


def refused(check: str, call: Callable[..., None], *args: object, **kwargs: object) -> str:
    """Run a pre-flight call that must fail ``check``; its detail."""
    with pytest.raises(PreflightFailed) as err:
        call(*args, **kwargs)
    assert err.value.check == check, err.value
    assert "\n" not in str(err.value)
    return err.value.detail


def raw_sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 as raw r||s."""
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def resigned_document(
    document: bytes,
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    edit: Callable[[etree._Element], None],
    *,
    serial: int | None = None,
) -> bytes:
    """``document`` with its Signature removed, ``edit`` applied, signed again (by the
    project's XML signing, with ``key``): a fault that still carries a valid signature."""
    root = etree.fromstring(document)
    root.remove(root[-1])
    edit(root)

    def sign(digest: bytes) -> bytes:
        der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign_document(
        root,
        sign_digest=sign,
        issuer_name=certificate.issuer.rfc4514_string(),
        serial=certificate.serial_number if serial is None else serial,
    )


def manufacturer_image_of(upgrade_image: bytes) -> bytes:
    header_length = struct.unpack_from("<H", upgrade_image, 6)[0]
    return upgrade_image[header_length:-66]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verified_image(svc: Services, m: Manufacturer, image: bytes, header: bytes) -> str:
    """A separate-shape delivery of ``image`` under ``header``, verified; its image ID."""
    delivery = deliveries.from_separate(
        ota_header=header,
        manufacturer_image=image,
        signature=m.sign(header + image),
        hash=hashlib.sha256(image).digest(),
    )
    verdict = verify_manufacturer(svc, delivery)
    assert verdict.verified, verdict.checks
    return verdict.image_id
