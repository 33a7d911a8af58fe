"""The three manufacturer delivery shapes, made with a throw-away P-256 manufacturer key."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from signer.errors import FormatError, SignatureInvalid
from signer.gbcs.delivery import (
    DeliveryShape,
    from_combined,
    from_gbcs,
    from_separate,
    parse_hash_text,
)
from signer.gbcs.ota import OtaHeader, build_upgrade_image
from tests.support.vectors import vector_b64

IMAGE = bytes(range(256)) * 40 + b"end of firmware"


@dataclass
class Made:
    key: ec.EllipticCurvePrivateKey
    header: bytes
    image: bytes
    der: bytes
    raw: bytes
    digest: bytes


def make(*, with_tail: bool = True, image: bytes = IMAGE) -> Made:
    total = 60 + len(image) + (66 if with_tail else 0)
    header = OtaHeader(
        header_version=0x0100,
        header_length=60,
        field_control=0x0004,
        manufacturer_code=0x121D,
        image_type=0x0084 if not with_tail else 0x0000,
        file_version=0x00010002,
        zigbee_stack_version=2,
        header_string=b"test firmware".ljust(32, b"\x00"),
        total_image_size=total,
        min_hardware_version=1,
        max_hardware_version=5,
    ).to_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(header + image, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return Made(key, header, image, der, raw, hashlib.sha256(image).digest())


def test_separate_shape() -> None:
    m = make()
    d = from_separate(
        ota_header=m.header, manufacturer_image=m.image, signature=m.der, hash=m.digest.hex()
    )
    assert d.shape is DeliveryShape.SEPARATE
    assert d.with_tail is True
    assert d.header_bytes == m.header
    assert d.manufacturer_image == m.image
    assert d.signature == m.raw
    assert d.hash_given == m.digest
    assert d.computed_hash == m.digest
    assert d.image_id == m.digest.hex()
    assert d.force_replace is None
    assert d.signed_bytes == m.header + m.image
    assert d.signed_digest == hashlib.sha256(m.header + m.image).digest()
    assert d.header.file_version == 0x00010002
    d.verify(m.key.public_key())


def test_separate_shape_for_tailless_ppmid_image() -> None:
    m = make(with_tail=False)
    d = from_separate(
        ota_header=m.header, manufacturer_image=m.image, signature=m.raw, hash=m.digest
    )
    assert d.with_tail is False
    d.verify(m.key.public_key())


def test_gbcs_shape() -> None:
    m = make()
    file = build_upgrade_image(m.header, m.image, force_replace=True, signature=m.raw)
    d = from_gbcs(file)
    assert d.shape is DeliveryShape.GBCS
    assert d.signature == m.raw
    assert d.force_replace is True
    assert d.hash_given is None
    assert d.with_tail is True
    assert d.manufacturer_image == m.image
    d.verify(m.key.public_key())
    with_hash = from_gbcs(file, hash=m.digest.hex().upper().encode() + b"\n")
    assert with_hash.hash_given == m.digest
    with_hash.verify(m.key.public_key())


def test_gbcs_shape_of_the_rtds_image_parses() -> None:
    d = from_gbcs(vector_b64("ota", "esme_11.1_upgrade_image.b64"))
    assert d.image_id == "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"
    assert d.header.manufacturer_code == 0x121D


def test_combined_shape() -> None:
    m = make()
    d = from_combined(header_and_image=m.header + m.image, signature=m.raw, hash=m.digest)
    assert d.shape is DeliveryShape.COMBINED
    assert d.header_bytes == m.header
    assert d.manufacturer_image == m.image
    assert d.with_tail is True
    d.verify(m.key.public_key())


def test_verify_refuses_other_key_and_wrong_hash() -> None:
    m = make()
    other = ec.generate_private_key(ec.SECP256R1())
    d = from_separate(
        ota_header=m.header, manufacturer_image=m.image, signature=m.raw, hash=m.digest
    )
    with pytest.raises(SignatureInvalid):
        d.verify(other.public_key())
    wrong_hash = from_separate(
        ota_header=m.header, manufacturer_image=m.image, signature=m.raw, hash=bytes(32)
    )
    with pytest.raises(SignatureInvalid, match="Hash"):
        wrong_hash.verify(m.key.public_key())


def test_signature_over_image_alone_is_not_the_manufacturers() -> None:
    m = make()
    arp_like = m.key.sign(m.image, ec.ECDSA(hashes.SHA256()))
    d = from_separate(
        ota_header=m.header, manufacturer_image=m.image, signature=arp_like, hash=m.digest
    )
    with pytest.raises(SignatureInvalid):
        d.verify(m.key.public_key())


def test_size_rule_names_both_numbers() -> None:
    m = make()
    with pytest.raises(FormatError) as exc:
        from_separate(
            ota_header=m.header, manufacturer_image=m.image[:-1], signature=m.raw, hash=m.digest
        )
    total = 60 + len(IMAGE) + 66
    assert exc.value.field == "ota_header"
    assert exc.value.offset == 52
    assert str(total) in exc.value.message
    assert str(total - 1) in exc.value.message  # the expected size for the shortened image
    with pytest.raises(FormatError) as exc:
        from_combined(header_and_image=m.header + m.image + b"x", signature=m.raw, hash=m.digest)
    assert exc.value.field == "header_and_image"
    assert exc.value.offset == 52


def test_separate_header_must_be_exactly_header_length() -> None:
    m = make()
    with pytest.raises(FormatError) as exc:
        from_separate(
            ota_header=m.header + b"\x00",
            manufacturer_image=m.image,
            signature=m.raw,
            hash=m.digest,
        )
    assert exc.value.field == "ota_header"
    assert exc.value.offset == 60


def test_errors_name_the_element() -> None:
    m = make()
    with pytest.raises(FormatError) as exc:
        from_separate(
            ota_header=m.header[:30], manufacturer_image=m.image, signature=m.raw, hash=m.digest
        )
    assert (exc.value.field, exc.value.offset) == ("ota_header", 30)
    with pytest.raises(FormatError) as exc:
        from_separate(ota_header=m.header, manufacturer_image=b"", signature=m.raw, hash=m.digest)
    assert (exc.value.field, exc.value.offset) == ("manufacturer_image", 0)
    with pytest.raises(FormatError) as exc:
        from_separate(
            ota_header=m.header, manufacturer_image=m.image, signature=m.raw[:-1], hash=m.digest
        )
    assert exc.value.field == "signature"
    with pytest.raises(FormatError) as exc:
        from_separate(
            ota_header=m.header, manufacturer_image=m.image, signature=m.raw, hash=m.digest[:-1]
        )
    assert exc.value.field == "hash"
    with pytest.raises(FormatError) as exc:
        from_gbcs(b"\x1e\xf1\xee\x0b" + bytes(100))
    assert (exc.value.field, exc.value.offset) == ("upgrade_image", 4)
    with pytest.raises(FormatError) as exc:
        from_combined(header_and_image=m.header, signature=m.raw, hash=m.digest)
    assert (exc.value.field, exc.value.offset) == ("header_and_image", 60)
    with pytest.raises(FormatError) as exc:
        from_combined(header_and_image=m.header + m.image, signature=b"\x30\x02", hash=m.digest)
    assert exc.value.field == "signature"


def test_gbcs_shape_with_bad_force_replace() -> None:
    m = make()
    file = bytearray(build_upgrade_image(m.header, m.image, force_replace=False, signature=m.raw))
    force_at = 60 + len(IMAGE)
    file[force_at] = 0x02
    with pytest.raises(FormatError, match="0x02") as exc:
        from_gbcs(bytes(file))
    assert (exc.value.field, exc.value.offset) == ("upgrade_image", force_at)


def test_header_total_size_is_not_a_tail_or_bare_size() -> None:
    m = make()
    header = m.header[:52] + struct.pack("<I", 5) + m.header[56:]
    with pytest.raises(FormatError, match=r"\b5\b"):
        from_separate(ota_header=header, manufacturer_image=m.image, signature=m.raw, hash=m.digest)


# --- hash text ---------------------------------------------------------------------------

DIGEST_HEX = "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"


def test_hash_text_forms() -> None:
    digest = bytes.fromhex(DIGEST_HEX)
    assert parse_hash_text(digest) == digest
    assert parse_hash_text(DIGEST_HEX.encode()) == digest
    assert parse_hash_text(DIGEST_HEX.upper().encode()) == digest
    assert parse_hash_text(b"  " + DIGEST_HEX.encode() + b"\r\n") == digest
    assert parse_hash_text(DIGEST_HEX) == digest


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        (DIGEST_HEX[:-1].encode(), 0),
        (DIGEST_HEX.encode() + b"00", 0),
        (b"  " + DIGEST_HEX[:10].encode() + b"g" + DIGEST_HEX[11:].encode(), 12),
        (DIGEST_HEX[:32].encode() + b" " + DIGEST_HEX[32:].encode(), 32),
        (b"", 0),
        (bytes(31), 0),
        ("é" * 64, 0),
    ],
)
def test_bad_hash_text(text: bytes | str, offset: int) -> None:
    with pytest.raises(FormatError) as exc:
        parse_hash_text(text)
    assert exc.value.field == "hash"
    assert exc.value.offset == offset
    with pytest.raises(FormatError) as exc:
        parse_hash_text(text, "firmware_hash")
    assert exc.value.field == "firmware_hash"
