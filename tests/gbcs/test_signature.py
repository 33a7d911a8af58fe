"""Raw/DER conversion and verification, checked against signatures `cryptography` makes."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signer.errors import FormatError, InvalidInput, SignatureInvalid
from signer.gbcs.signature import (
    der_to_raw,
    normalise_ecdsa_signature,
    raw_to_der,
    verify_p256_prehashed,
    verify_p256_sha256,
)

MESSAGE = b"manufacturer image bytes"


def signed() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return key, der, r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_der_and_raw_round_trip() -> None:
    for _ in range(20):  # varied r/s lengths (32 or 33 DER content bytes)
        key, der, raw = signed()
        assert der_to_raw(der) == raw
        assert raw_to_der(raw) == der
        assert normalise_ecdsa_signature(der, field="signature") == raw
        assert normalise_ecdsa_signature(raw, field="signature") == raw
        verify_p256_sha256(key.public_key(), MESSAGE, raw)
        verify_p256_prehashed(key.public_key(), hashlib.sha256(MESSAGE).digest(), raw)


def test_short_integers_round_trip() -> None:
    raw = (1).to_bytes(32, "big") + (0x80).to_bytes(32, "big")
    der = raw_to_der(raw)
    assert der == bytes.fromhex("3007020101020200 80".replace(" ", ""))
    assert der_to_raw(der) == raw


def test_64_byte_der_is_detected_by_structure() -> None:
    r, s = 0x7F << 224, 0x6E << 224  # 29-byte INTEGERs: the DER is exactly 64 bytes long
    der = encode_dss_signature(r, s)
    assert len(der) == 64
    assert normalise_ecdsa_signature(der, field="signature") == r.to_bytes(32, "big") + s.to_bytes(
        32, "big"
    )


def test_raw_that_starts_like_der_stays_raw() -> None:
    raw = bytes([0x30, 0x3E]) + bytes(range(62))
    assert normalise_ecdsa_signature(raw, field="signature") == raw


def test_non_minimal_der_length_is_accepted() -> None:
    _, der, raw = signed()
    body = der[2:]
    long_form = bytes([0x30, 0x82, 0x00, len(body)]) + body
    assert der_to_raw(long_form) == raw


@pytest.mark.parametrize(
    ("der_hex", "offset", "match"),
    [
        ("3106020101020101", 0, "expected SEQUENCE"),
        ("30060201010201", 0, "overruns"),
        ("300602010102010100", 8, "trailing"),
        ("3006020101040101", 5, "expected INTEGER"),
        ("30090201010201010201 01", 8, "more than two"),
        ("30060201ff020101", 2, "positive"),
        ("3006020100020101", 2, "positive"),
        ("30260221" + "01" * 33 + "020101", 2, "bits"),
        ("3080020101020101", 1, "indefinite"),
    ],
)
def test_malformed_der(der_hex: str, offset: int, match: str) -> None:
    with pytest.raises(FormatError, match=match) as exc:
        der_to_raw(bytes.fromhex(der_hex.replace(" ", "")))
    assert exc.value.field == "signature"
    assert exc.value.offset == offset


@pytest.mark.parametrize("length", [0, 1, 63, 65, 71])
def test_wrong_lengths(length: int) -> None:
    sig = b"\x01" * length
    with pytest.raises(FormatError, match=str(length)) as exc:
        normalise_ecdsa_signature(sig, field="manufacturer_signature")
    assert exc.value.field == "manufacturer_signature"
    with pytest.raises(FormatError) as exc:
        raw_to_der(sig)
    assert exc.value.field == "signature"
    key, _, _ = signed()
    with pytest.raises(FormatError):
        verify_p256_sha256(key.public_key(), MESSAGE, sig)


def test_broken_der_of_plausible_length_is_refused() -> None:
    _, der, _ = signed()
    with pytest.raises(FormatError) as exc:
        normalise_ecdsa_signature(der[:-1], field="signature")
    assert exc.value.field == "signature"


def test_verification_failures_raise() -> None:
    key, _, raw = signed()
    other, _, _ = signed()
    with pytest.raises(SignatureInvalid):
        verify_p256_sha256(key.public_key(), MESSAGE + b"x", raw)
    with pytest.raises(SignatureInvalid):
        verify_p256_sha256(other.public_key(), MESSAGE, raw)
    with pytest.raises(SignatureInvalid):
        verify_p256_prehashed(key.public_key(), hashlib.sha256(b"other").digest(), raw)
    with pytest.raises(SignatureInvalid):
        verify_p256_sha256(key.public_key(), MESSAGE, bytes(64))


def test_non_p256_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SignatureInvalid, match="secp384r1"):
        verify_p256_sha256(key.public_key(), MESSAGE, bytes(64))


def test_prehashed_digest_must_be_32_bytes() -> None:
    key, _, raw = signed()
    with pytest.raises(InvalidInput) as exc:
        verify_p256_prehashed(key.public_key(), MESSAGE, raw)
    assert exc.value.field == "digest"
