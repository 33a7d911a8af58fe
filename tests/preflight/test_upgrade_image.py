"""check_upgrade_image on an image Resign signed, and on targeted faults of it."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from signer.preflight import check_upgrade_image
from tests.support.certificates import self_signed
from tests.support.constants import PINNED
from tests.support.preflight import (
    MAX_HW,
    MIN_HW,
    Artifacts,
    manufacturer_image_of,
    raw_sign,
    refused,
    sha256,
    ski_of,
)


def test_the_image_resign_made_passes(artifacts: Artifacts) -> None:
    assert manufacturer_image_of(artifacts.upgrade_image) == artifacts.manufacturer_image
    check_upgrade_image(artifacts.upgrade_image, artifacts.image_sha256, artifacts.facts())


def test_a_signature_by_another_key_is_refused(artifacts: Artifacts) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    forged = artifacts.upgrade_image[:-64] + raw_sign(other, artifacts.manufacturer_image)
    detail = refused(
        "arp_signature", check_upgrade_image, forged, artifacts.image_sha256, artifacts.facts()
    )
    assert str(artifacts.supplier_cert.serial_number) in detail


def test_the_certificate_of_another_cell_is_refused(
    artifacts: Artifacts, vector_cert: Callable[[str], x509.Certificate]
) -> None:
    facts = artifacts.facts(supplier_ds_certificate=vector_cert("Z1b-supplier-ds.pem"))
    refused(
        "arp_signature", check_upgrade_image, artifacts.upgrade_image, artifacts.image_sha256, facts
    )


def test_a_certificate_without_a_subject_key_identifier_is_refused(
    artifacts: Artifacts, supplier_key: ec.EllipticCurvePrivateKey
) -> None:
    # the right key (the signature would verify), but no SKI: no cell can name it
    cert = self_signed(supplier_key, "no ski", PINNED - dt.timedelta(days=1), PINNED)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    detail = refused(
        "arp_signature",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.image_sha256,
        artifacts.facts(supplier_ds_certificate=cert),
    )
    assert "subject key identifier" in detail


@pytest.mark.parametrize("hw", [MIN_HW, MAX_HW])
def test_hardware_versions_at_the_bounds_pass(artifacts: Artifacts, hw: int) -> None:
    check_upgrade_image(
        artifacts.upgrade_image, artifacts.image_sha256, artifacts.facts(hardware_version=hw)
    )


@pytest.mark.parametrize("hw", [MIN_HW - 1, MAX_HW + 1, 0])
def test_a_hardware_version_outside_min_max_is_refused(artifacts: Artifacts, hw: int) -> None:
    detail = refused(
        "hardware_version",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.image_sha256,
        artifacts.facts(hardware_version=hw),
    )
    assert f"0x{MIN_HW:04X}..0x{MAX_HW:04X}" in detail


@pytest.mark.parametrize(
    ("change", "shown"),
    [({"manufacturer_code": 0x1234}, "manufacturer code"), ({"image_type": 0x0002}, "image type")],
)
def test_a_model_mismatch_is_refused(
    artifacts: Artifacts, change: dict[str, int], shown: str
) -> None:
    detail = refused(
        "image_matches_model",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.image_sha256,
        artifacts.facts(**change),
    )
    assert shown in detail


def test_no_image_type_on_the_cpl_checks_none(artifacts: Artifacts) -> None:
    check_upgrade_image(
        artifacts.upgrade_image, artifacts.image_sha256, artifacts.facts(image_type=None)
    )


def test_a_tampered_image_byte_is_refused(artifacts: Artifacts) -> None:
    data = bytearray(artifacts.upgrade_image)
    data[60 + 10] ^= 0x01  # inside the Manufacturer Image
    tampered = bytes(data)
    refused(
        "firmware_hash", check_upgrade_image, tampered, artifacts.image_sha256, artifacts.facts()
    )
    # told the tampered image's own hash, the ARP signature still gives it away
    refused(
        "arp_signature",
        check_upgrade_image,
        tampered,
        sha256(manufacturer_image_of(tampered)),
        artifacts.facts(),
    )


def test_the_hash_of_another_image_is_refused(artifacts: Artifacts) -> None:
    detail = refused(
        "firmware_hash",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.other_image_sha256,
        artifacts.facts(),
    )
    assert artifacts.image_sha256.hex() in detail


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "short": lambda d: d[:40],
    "identifier": lambda d: _patched(d, 0, b"\x1f"),
    "header version": lambda d: _patched(d, 4, struct.pack("<H", 0x0200)),
    "header length": lambda d: _patched(d, 6, struct.pack("<H", 56)),
    "unknown field control bit": lambda d: _patched(d, 8, struct.pack("<H", 0x0014)),
    "total size": lambda d: _patched(d, 52, struct.pack("<I", len(d) + 1)),
    "truncated": lambda d: d[:-1],
    "length byte": lambda d: _patched(d, len(d) - 65, b"\x41"),
    "force replace": lambda d: _patched(d, len(d) - 66, b"\x02"),
    "min above max": lambda d: _patched(d, 56, struct.pack("<HH", 0x0300, 0x0200)),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_image_that_does_not_parse_is_refused(artifacts: Artifacts, fault: str) -> None:
    data = FAULTS[fault](artifacts.upgrade_image)
    if fault == "truncated":  # keep the declared size honest: only the tail is missing
        data = _patched(data, 52, struct.pack("<I", len(data)))
    refused("image_parses", check_upgrade_image, data, artifacts.image_sha256, artifacts.facts())


def test_a_certificate_other_than_the_one_the_cell_now_names_is_refused(
    artifacts: Artifacts, vector_cert: Callable[[str], x509.Certificate]
) -> None:
    # the image verifies with the certificate it was signed for, but the device's cell has
    # moved on to another key since: the meter would refuse it
    facts = artifacts.facts(supplier_ski=ski_of(vector_cert("Z1b-supplier-ds.pem")))
    detail = refused(
        "arp_signature", check_upgrade_image, artifacts.upgrade_image, artifacts.image_sha256, facts
    )
    assert ski_of(artifacts.supplier_cert).hex() in detail


def test_a_device_without_a_supplier_cell_is_refused(artifacts: Artifacts) -> None:
    detail = refused(
        "arp_signature",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.image_sha256,
        artifacts.facts(supplier_ski=b""),
    )
    assert "no Supplier digital-signing cell" in detail


def _without_tail(upgrade_image: bytes) -> bytes:
    """The image with its 66-byte tail cut and the header's total size (offset 52) fixed."""
    cut = upgrade_image[:-66]
    return cut[:52] + struct.pack("<I", len(cut)) + cut[56:]


def test_a_tail_less_image_passes_without_the_signature_check(artifacts: Artifacts) -> None:
    image = _without_tail(artifacts.upgrade_image)
    facts = artifacts.facts(supplier_ds_certificate=None, supplier_ski=b"")
    check_upgrade_image(image, artifacts.image_sha256, facts, with_tail=False)
    refused("image_parses", check_upgrade_image, image, artifacts.image_sha256, artifacts.facts())


def test_a_tail_less_image_is_checked_for_model_hardware_and_hash(artifacts: Artifacts) -> None:
    image = _without_tail(artifacts.upgrade_image)
    facts = artifacts.facts(supplier_ds_certificate=None, supplier_ski=b"")
    for check, changed in [
        ("image_matches_model", artifacts.facts(manufacturer_code=0x1234)),
        ("hardware_version", artifacts.facts(hardware_version=MAX_HW + 1)),
    ]:
        refused(check, check_upgrade_image, image, artifacts.image_sha256, changed, with_tail=False)
    refused(
        "firmware_hash",
        check_upgrade_image,
        image,
        artifacts.other_image_sha256,
        facts,
        with_tail=False,
    )
    # an image that still has its tail is not a tail-less one: the tail is not firmware
    refused(
        "firmware_hash",
        check_upgrade_image,
        artifacts.upgrade_image,
        artifacts.image_sha256,
        facts,
        with_tail=False,
    )
