"""ECDSA P-256 signatures in the two encodings we meet.

GBCS and XMLDSig carry raw ``r||s`` (64 bytes); `cryptography`, X.509 and some manufacturers use
DER. Everything inside the signer is raw; these helpers convert at the edges and verify.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)

from signer.errors import FormatError, InvalidInput, SignatureInvalid
from signer.gbcs import _ber

RAW_SIGNATURE_LENGTH = 64
_COORDINATE = 32


def raw_to_der(raw: bytes, *, field: str = "signature") -> bytes:
    """Convert raw r||s to a DER ``SEQUENCE { INTEGER r, INTEGER s }``."""
    _check_raw(raw, field=field)
    r = int.from_bytes(raw[:_COORDINATE], "big")
    s = int.from_bytes(raw[_COORDINATE:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(der: bytes, *, field: str = "signature") -> bytes:
    """Convert a DER (or BER with long lengths) ECDSA signature to raw r||s.

    Lenient about length encodings because the value is unambiguous either way; strict about
    everything that could change the value (sign, size, trailing bytes).
    """
    seq = _ber.expect(der, 0, len(der), _ber.TAG_SEQUENCE, field=field, what="ECDSA signature")
    if seq.end != len(der):
        raise FormatError(
            f"{len(der) - seq.end} trailing bytes after the signature SEQUENCE",
            field=field,
            offset=seq.end,
        )
    parts: list[bytes] = []
    pos = seq.start
    for name in ("r", "s"):
        tlv = _ber.expect(
            der, pos, seq.end, _ber.TAG_INTEGER, field=field, what=f"signature {name}"
        )
        value = _ber.integer_value(
            der, tlv, field=field, what=f"signature {name}", max_bits=_COORDINATE * 8 + 8
        )
        if value <= 0:
            raise FormatError(
                f"signature {name} must be positive, got {value}", field=field, offset=tlv.offset
            )
        if value.bit_length() > _COORDINATE * 8:
            raise FormatError(
                f"signature {name} has {value.bit_length()} bits, more than P-256 allows",
                field=field,
                offset=tlv.offset,
            )
        parts.append(value.to_bytes(_COORDINATE, "big"))
        pos = tlv.end
    if pos != seq.end:
        raise FormatError(
            "signature SEQUENCE holds more than two INTEGERs", field=field, offset=pos
        )
    return parts[0] + parts[1]


def normalise_ecdsa_signature(sig: bytes, *, field: str) -> bytes:
    """Return raw r||s from either encoding, detected by structure.

    A 64-byte value is raw unless it is also a complete DER signature (64-byte DER happens only
    when r and s are both unusually short; a raw value that parses as DER is as unlikely).
    """
    looks_der = len(sig) >= 8 and sig[0] == _ber.TAG_SEQUENCE
    if looks_der:
        try:
            return der_to_raw(sig, field=field)
        except FormatError:
            if len(sig) != RAW_SIGNATURE_LENGTH:
                raise
    if len(sig) == RAW_SIGNATURE_LENGTH:
        return bytes(sig)
    raise FormatError(
        f"signature is {len(sig)} bytes: neither raw r||s (64 bytes) nor a DER "
        "SEQUENCE { INTEGER r, INTEGER s }",
        field=field,
        offset=0,
    )


def verify_p256_sha256(
    public_key: ec.EllipticCurvePublicKey, message: bytes, raw_signature: bytes
) -> None:
    """Raise SignatureInvalid unless ``raw_signature`` is ECDSA P-256/SHA-256 over ``message``."""
    _verify(public_key, message, raw_signature, ec.ECDSA(hashes.SHA256()))


def verify_p256_prehashed(
    public_key: ec.EllipticCurvePublicKey, digest32: bytes, raw_signature: bytes
) -> None:
    """As verify_p256_sha256 over an already computed SHA-256, so big images hash once."""
    if len(digest32) != 32:
        raise InvalidInput(f"a SHA-256 digest has 32 bytes, got {len(digest32)}", field="digest")
    _verify(public_key, digest32, raw_signature, ec.ECDSA(Prehashed(hashes.SHA256())))


def _verify(
    public_key: ec.EllipticCurvePublicKey,
    data: bytes,
    raw_signature: bytes,
    algorithm: ec.ECDSA,
) -> None:
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SignatureInvalid(
            f"verification key is a {type(public_key).__name__}, not an EC P-256 key"
        )
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise SignatureInvalid(
            f"verification key is on curve {public_key.curve.name}, not P-256 (secp256r1)"
        )
    der = raw_to_der(raw_signature)
    try:
        public_key.verify(der, data, algorithm)
    except InvalidSignature:
        raise SignatureInvalid("ECDSA P-256/SHA-256 signature does not verify") from None


def _check_raw(raw: bytes, *, field: str) -> None:
    if len(raw) != RAW_SIGNATURE_LENGTH:
        raise FormatError(
            f"raw ECDSA P-256 signature must be {RAW_SIGNATURE_LENGTH} bytes, got {len(raw)}",
            field=field,
        )
