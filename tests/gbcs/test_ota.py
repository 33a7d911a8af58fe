"""OTA header and upgrade image parsing against the RTDS vectors and malformed variants.

Expected values come from the vector README and a manual reading of the vector bytes
(``xxd``), not from the parser.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import FormatError, InvalidInput, SignatureInvalid
from signer.gbcs.ota import (
    OtaHeader,
    UpgradeImage,
    build_upgrade_image,
    parse_ota_header,
    parse_upgrade_image,
)
from signer.gbcs.signature import verify_p256_prehashed, verify_p256_sha256
from tests.support.vectors import vector_b64, vector_bytes

ESME_SHA256 = "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"


def esme() -> bytes:
    return vector_b64("ota", "esme_11.1_upgrade_image.b64")


def ppmid() -> bytes:
    return vector_b64("ota", "ppmid_11.4_upgrade_image.b64")


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def check(exc: pytest.ExceptionInfo[FormatError], field: str, offset: int | None) -> None:
    assert exc.value.field == field
    assert exc.value.offset == offset


def test_esme_vector_fields() -> None:
    data = esme()
    assert len(data) == 361
    image = parse_upgrade_image(data)
    header = image.header
    assert header.header_version == 0x0100
    assert header.header_length == 60
    assert header.field_control == 0x0004
    assert header.manufacturer_code == 0x121D
    assert header.image_type == 0x0000
    assert header.file_version == 0xACDCACDC
    assert header.zigbee_stack_version == 0x0002
    assert header.header_string == b"I am a GFI ESME[] firmware image"
    assert header.header_string_text == "I am a GFI ESME[] firmware image"
    assert header.total_image_size == 361
    assert header.security_credential_version is None
    assert header.upgrade_file_destination is None
    assert header.min_hardware_version == 0x1111
    assert header.max_hardware_version == 0x1211
    assert image.header_bytes == data[:60]
    assert len(image.manufacturer_image) == 235
    assert image.manufacturer_image == data[60:295]
    assert image.force_replace is False
    assert image.signature == data[297:]
    assert len(image.signature) == 64


def test_esme_image_hash_is_documented_firmware_hash() -> None:
    image = parse_upgrade_image(esme())
    assert image.image_id == ESME_SHA256
    assert image.signed_region == esme()[60:295]  # the bytes the vector README names


def supplier_key() -> ec.EllipticCurvePublicKey:
    cert = x509.load_pem_x509_certificate(vector_bytes("certs", "Z1-supplier-ds.pem"))
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_esme_arp_signature_covers_manufacturer_image_only() -> None:
    key = supplier_key()
    image = parse_upgrade_image(esme())
    assert image.signature is not None
    verify_p256_sha256(key, image.signed_region, image.signature)
    verify_p256_prehashed(key, bytes.fromhex(ESME_SHA256), image.signature)
    with pytest.raises(SignatureInvalid):
        verify_p256_sha256(key, image.header_bytes + image.manufacturer_image, image.signature)
    with pytest.raises(SignatureInvalid):
        verify_p256_sha256(key, esme()[: 361 - 64], image.signature)


def test_ppmid_vector_has_no_tail() -> None:
    data = ppmid()
    assert len(data) == 295
    image = parse_upgrade_image(data, with_tail=False)
    assert image.header.image_type == 0x0084
    assert image.header.total_image_size == 295
    assert image.header.header_length == 60
    assert len(image.manufacturer_image) == 235
    assert image.force_replace is None
    assert image.signature is None
    assert image.has_tail is False
    assert image.image_id == hashlib.sha256(data[60:]).hexdigest()


def test_ppmid_vector_refused_when_a_tail_is_expected() -> None:
    with pytest.raises(FormatError) as exc:
        parse_upgrade_image(ppmid(), with_tail=True)
    check(exc, "upgrade_image", 295 - 65)


def test_round_trips() -> None:
    data = esme()
    image = parse_upgrade_image(data)
    assert image.to_bytes() == data
    assert image.header.to_bytes() == data[:60]
    assert image.force_replace is not None and image.signature is not None
    rebuilt = build_upgrade_image(
        image.header_bytes,
        image.manufacturer_image,
        force_replace=image.force_replace,
        signature=image.signature,
    )
    assert rebuilt == data
    bare = ppmid()
    assert parse_upgrade_image(bare, with_tail=False).to_bytes() == bare


def test_force_replace_true_round_trips() -> None:
    data = patched(esme(), 295, b"\x01")
    image = parse_upgrade_image(data)
    assert image.force_replace is True
    assert image.to_bytes() == data


def test_header_with_every_optional_field_round_trips() -> None:
    header = OtaHeader(
        header_version=0x0100,
        header_length=69,
        field_control=0x0007,
        manufacturer_code=0x1234,
        image_type=0x0001,
        file_version=0x01020304,
        zigbee_stack_version=2,
        header_string=b"abc".ljust(32, b"\x00"),
        total_image_size=1000,
        security_credential_version=3,
        upgrade_file_destination=bytes.fromhex("0011223344556677"),
        min_hardware_version=1,
        max_hardware_version=1,
    )
    raw = header.to_bytes()
    assert len(raw) == 69
    assert raw[:4] == bytes.fromhex("1EF1EE0B")
    assert raw[56] == 3
    assert raw[57:65] == bytes.fromhex("0011223344556677")
    assert raw[65:69] == bytes.fromhex("01000100")
    assert parse_ota_header(raw + b"trailing") == header
    assert header.header_string_text == "abc"


# --- malformed upgrade images -------------------------------------------------------------


def test_truncated_header() -> None:
    with pytest.raises(FormatError) as exc:
        parse_upgrade_image(esme()[:40])
    check(exc, "upgrade_image", 40)
    with pytest.raises(FormatError) as exc:
        parse_ota_header(esme()[:58])
    check(exc, "ota_header", 58)
    with pytest.raises(FormatError) as exc:
        parse_ota_header(b"\x1e\xf1")
    check(exc, "ota_header", 2)


def test_truncated_tail() -> None:
    with pytest.raises(FormatError, match=r"361.*351") as exc:
        parse_upgrade_image(esme()[:-10])
    check(exc, "upgrade_image", 351)


def test_trailing_bytes() -> None:
    with pytest.raises(FormatError, match="trailing") as exc:
        parse_upgrade_image(esme() + b"\x00")
    check(exc, "upgrade_image", 361)


def test_wrong_identifier() -> None:
    with pytest.raises(FormatError, match="identifier") as exc:
        parse_upgrade_image(patched(esme(), 0, b"\x1f"))
    check(exc, "upgrade_image", 0)


def test_wrong_header_version() -> None:
    with pytest.raises(FormatError, match="0x0200") as exc:
        parse_upgrade_image(patched(esme(), 4, b"\x00\x02"))
    check(exc, "upgrade_image", 4)


def test_unknown_field_control_bits() -> None:
    with pytest.raises(FormatError, match="0x0008") as exc:
        parse_upgrade_image(patched(esme(), 8, b"\x0c\x00"))
    check(exc, "upgrade_image", 8)


def test_header_length_mismatch() -> None:
    with pytest.raises(FormatError, match=r"61.*60") as exc:
        parse_upgrade_image(patched(esme(), 6, b"\x3d\x00"))
    check(exc, "upgrade_image", 6)
    # field control claims the security credential version too: header would be 61 bytes
    with pytest.raises(FormatError) as exc:
        parse_upgrade_image(patched(esme(), 8, b"\x05\x00"))
    check(exc, "upgrade_image", 6)


def test_total_size_mismatch() -> None:
    with pytest.raises(FormatError, match=r"360.*361") as exc:
        parse_upgrade_image(patched(esme(), 52, struct.pack("<I", 360)))
    check(exc, "upgrade_image", 360)


def test_min_above_max_hardware_version() -> None:
    with pytest.raises(FormatError, match="hardware") as exc:
        parse_upgrade_image(patched(esme(), 56, b"\x00\x20"))
    check(exc, "upgrade_image", 56)


def test_bad_tail_length_byte() -> None:
    with pytest.raises(FormatError, match="0x41") as exc:
        parse_upgrade_image(patched(esme(), 296, b"\x41"))
    check(exc, "upgrade_image", 296)


def test_bad_force_replace_byte() -> None:
    with pytest.raises(FormatError, match="0x02") as exc:
        parse_upgrade_image(patched(esme(), 295, b"\x02"))
    check(exc, "upgrade_image", 295)


def test_empty_manufacturer_image() -> None:
    data = esme()
    empty = patched(data[:60], 52, struct.pack("<I", 60 + 66)) + data[295:]
    with pytest.raises(FormatError, match="Manufacturer Image") as exc:
        parse_upgrade_image(empty)
    check(exc, "upgrade_image", 60)


def test_custom_field_name_is_reported() -> None:
    with pytest.raises(FormatError) as exc:
        parse_upgrade_image(esme()[:10], field="firmware_image")
    check(exc, "firmware_image", 10)


# --- building -----------------------------------------------------------------------------


def test_build_refuses_wrong_signature_lengths() -> None:
    image = parse_upgrade_image(esme())
    for length in (0, 63, 65, 72):
        with pytest.raises(FormatError, match=str(length)) as exc:
            build_upgrade_image(
                image.header_bytes,
                image.manufacturer_image,
                force_replace=False,
                signature=b"\x01" * length,
            )
        check(exc, "signature", None)


def test_build_refuses_total_size_mismatch() -> None:
    image = parse_upgrade_image(esme())
    with pytest.raises(FormatError, match=r"361.*360") as exc:
        build_upgrade_image(
            image.header_bytes,
            image.manufacturer_image[:-1],
            force_replace=False,
            signature=bytes(64),
        )
    check(exc, "ota_header", 52)


def test_build_refuses_header_with_extra_bytes() -> None:
    image = parse_upgrade_image(esme())
    with pytest.raises(FormatError) as exc:
        build_upgrade_image(
            image.header_bytes + b"\x00",
            image.manufacturer_image,
            force_replace=False,
            signature=bytes(64),
        )
    check(exc, "ota_header", 60)


def test_build_refuses_bad_header() -> None:
    image = parse_upgrade_image(esme())
    with pytest.raises(FormatError) as exc:
        build_upgrade_image(
            patched(image.header_bytes, 4, b"\x00\x02"),
            image.manufacturer_image,
            force_replace=False,
            signature=bytes(64),
        )
    check(exc, "ota_header", 4)


def test_upgrade_image_to_bytes_refuses_half_a_tail() -> None:
    image = parse_upgrade_image(esme())
    half = UpgradeImage(
        header=image.header,
        header_bytes=image.header_bytes,
        manufacturer_image=image.manufacturer_image,
        force_replace=False,
        signature=None,
    )
    with pytest.raises(FormatError):
        half.to_bytes()


def base_header(**changes: object) -> OtaHeader:
    values: dict[str, object] = {
        "header_version": 0x0100,
        "header_length": 60,
        "field_control": 0x0004,
        "manufacturer_code": 0x121D,
        "image_type": 0,
        "file_version": 1,
        "zigbee_stack_version": 2,
        "header_string": bytes(32),
        "total_image_size": 200,
        "min_hardware_version": 1,
        "max_hardware_version": 2,
    }
    values.update(changes)
    return OtaHeader(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "offset", "match"),
    [
        ({"header_length": 61}, 6, "header length"),
        ({"header_version": 0x0101}, 4, "header version"),
        ({"field_control": 0x0014}, 8, "unknown bits"),
        ({"min_hardware_version": 3}, 56, "hardware"),
        ({"min_hardware_version": None}, 56, "announces"),
        ({"security_credential_version": 1}, 8, "does not announce"),
        ({"header_string": b"short"}, 20, "32 bytes"),
        ({"header_string": "x" * 32}, 20, "32 bytes"),
        ({"manufacturer_code": 0x10000}, 10, "16-bit"),
        ({"total_image_size": -1}, 52, "32-bit"),
        ({"file_version": True}, 14, "32-bit"),
    ],
)
def test_header_builder_validates_like_the_parser(
    changes: dict[str, object], offset: int, match: str
) -> None:
    with pytest.raises(FormatError, match=match) as exc:
        base_header(**changes).to_bytes()
    check(exc, "ota_header", offset)
    assert isinstance(exc.value, InvalidInput)


def test_header_builder_checks_destination_length() -> None:
    header = base_header(
        field_control=0x0006, header_length=68, upgrade_file_destination=b"\x00" * 7
    )
    with pytest.raises(FormatError, match="8 bytes") as exc:
        header.to_bytes()
    check(exc, "ota_header", 56)
