"""The pre-flight against the DCC's public vectors: what the DCC made must pass."""

from __future__ import annotations

import base64
import dataclasses
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from signer.preflight import MeterFacts, _xml, check_activation, check_upgrade_image
from tests.support.constants import RTDS_DEVICE
from tests.support.preflight import refused, sha256, ski_of

RTDS_IMAGE_SHA256 = bytes.fromhex(
    "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"
)


def _rtds_facts(image: bytes, cert: x509.Certificate, **changes: int) -> MeterFacts:
    # the model's facts, read by offset from the header (spec table): code 10, type 12,
    # min hardware version at 56 (the header announces min/max)
    code, image_type = struct.unpack_from("<HH", image, 10)
    (min_hw,) = struct.unpack_from("<H", image, 56)
    values = {"manufacturer_code": code, "image_type": image_type, "hardware_version": min_hw}
    values.update(changes)
    return MeterFacts(
        device_id=RTDS_DEVICE, supplier_ds_certificate=cert, supplier_ski=ski_of(cert), **values
    )


def test_the_rtds_upgrade_image_passes(
    vectors: Path, vector_cert: Callable[[str], x509.Certificate]
) -> None:
    image = base64.b64decode((vectors / "ota/esme_11.1_upgrade_image.b64").read_text())
    assert struct.unpack_from("<H", image, 8)[0] & 0x04  # it carries min/max hardware version
    check_upgrade_image(
        image, RTDS_IMAGE_SHA256, _rtds_facts(image, vector_cert("Z1-supplier-ds.pem"))
    )
    refused(
        "arp_signature",
        check_upgrade_image,
        image,
        RTDS_IMAGE_SHA256,
        _rtds_facts(image, vector_cert("Z1-supplier2-ds.pem")),
    )


def test_the_tail_less_ppmid_image_has_no_arp_signature(
    vectors: Path, vector_cert: Callable[[str], x509.Certificate]
) -> None:
    image = base64.b64decode((vectors / "ota/ppmid_11.4_upgrade_image.b64").read_text())
    code = struct.unpack_from("<H", image, 10)[0]
    cert = vector_cert("Z1-supplier-ds.pem")
    facts = MeterFacts(RTDS_DEVICE, code, None, 0, cert, ski_of(cert))
    refused("image_parses", check_upgrade_image, image, RTDS_IMAGE_SHA256, facts)


def _ppmid(vectors: Path) -> tuple[bytes, bytes, MeterFacts]:
    """The PPMID vector, SHA-256 of what follows its header (by the header length field at
    offset 6), and its model's facts read by offset (code 10, type 12)."""
    image = base64.b64decode((vectors / "ota/ppmid_11.4_upgrade_image.b64").read_text())
    (header_length,) = struct.unpack_from("<H", image, 6)
    code, image_type = struct.unpack_from("<HH", image, 10)
    assert image_type == 0x0084  # as the vectors' README says
    assert struct.unpack_from("<H", image, 8)[0] & 0x04  # min/max hardware version at 56
    (min_hw,) = struct.unpack_from("<H", image, 56)
    return (
        image,
        sha256(image[header_length:]),
        MeterFacts(RTDS_DEVICE, code, image_type, min_hw, None, b""),
    )


def test_the_tail_less_ppmid_image_passes_the_checks_without_a_tail(vectors: Path) -> None:
    image, digest, facts = _ppmid(vectors)
    check_upgrade_image(image, digest, facts, with_tail=False)


def test_the_tail_less_ppmid_image_is_still_checked_against_model_and_hash(
    vectors: Path,
) -> None:
    image, digest, facts = _ppmid(vectors)
    wrong_code = dataclasses.replace(facts, manufacturer_code=facts.manufacturer_code ^ 1)
    refused("image_matches_model", check_upgrade_image, image, digest, wrong_code, with_tail=False)
    wrong_type = dataclasses.replace(facts, image_type=0x0085)
    refused("image_matches_model", check_upgrade_image, image, digest, wrong_type, with_tail=False)
    refused("firmware_hash", check_upgrade_image, image, bytes(32), facts, with_tail=False)
    refused("image_parses", check_upgrade_image, image[:-1], digest, facts, with_tail=False)
    too_old = dataclasses.replace(facts, hardware_version=facts.hardware_version - 1)
    refused("hardware_version", check_upgrade_image, image, digest, too_old, with_tail=False)


GENUINE = [
    ("dcc_message.xml", "Z1-accessControlBroker-ds.pem"),
    ("dcc_read-inventory-response-4g.xml", "dsp-xml-sign-90B3D51F30000002-ds.pem"),
    ("dcc_read-inventory-response-5.4.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
    ("dcc_readfw-response.xml", "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem"),
    ("dcc_readfw-response-resigned.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
]


@pytest.mark.parametrize(("name", "cert"), GENUINE)
def test_the_signature_check_accepts_what_the_dcc_signed(
    vectors: Path, vector_cert: Callable[[str], x509.Certificate], name: str, cert: str
) -> None:
    root = _xml.parse((vectors / "xmldsig" / name).read_bytes())
    _xml.verify_enveloped(root, vector_cert(cert))


@pytest.mark.parametrize(
    ("name", "cert", "shown"),
    [
        (
            "dcc_readfw-response-badsignature.xml",
            "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem",
            "SignatureValue",
        ),
        (
            "dcc_unsigned_acknowledgement-error.xml",
            "Z1-accessControlBroker-ds.pem",
            "no ds:Signature",
        ),
        ("placeholder_ECS17b_signed.xml", "xml-sign-90B3D51F30010000-ds.pem", "DigestValue"),
        ("dcc_readfw-response.xml", "Z1-accessControlBroker-dSPXmlSign.pem", "serial"),
    ],
)
def test_the_signature_check_refuses_what_the_dcc_did_not_sign(
    vectors: Path, vector_cert: Callable[[str], x509.Certificate], name: str, cert: str, shown: str
) -> None:
    root = _xml.parse((vectors / "xmldsig" / name).read_bytes())
    with pytest.raises(_xml.SignatureRefused, match=shown):
        _xml.verify_enveloped(root, vector_cert(cert))


def test_the_activation_template_with_its_placeholder_signature_is_refused(
    vectors: Path, vector_cert: Callable[[str], x509.Certificate]
) -> None:
    document = (vectors / "duis/CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML").read_bytes()
    refused(
        "xml_signature",
        check_activation,
        document,
        device_id=RTDS_DEVICE,
        manufacturer_image_sha256=RTDS_IMAGE_SHA256,
        previous_counter=None,
        xml_certificate=vector_cert("xml-sign-90B3D51F30010000-ds.pem"),
        schema=None,
        execution_time=None,
    )
