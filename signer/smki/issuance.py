"""Certificates whose signature is made elsewhere (inside the token).

``cryptography`` signs certificates only with keys it holds, so we let it lay out the
TBSCertificate around the token's public key with a throwaway key, keep those bytes, and
replace the signature with one made through ``sign_digest``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer.gbcs.signature import raw_to_der

SignDigest = Callable[[bytes], bytes]


def issue_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
    sign_digest: SignDigest,
) -> x509.Certificate:
    """An ecdsa-with-SHA256 certificate signed by ``sign_digest`` (raw r||s over SHA-256)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical)
    throwaway = ec.generate_private_key(ec.SECP256R1())
    draft = builder.sign(throwaway, hashes.SHA256())
    tbs = draft.tbs_certificate_bytes
    signature = raw_to_der(sign_digest(hashlib.sha256(tbs).digest()))
    cert = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs),
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": asn1_core.OctetBitString(signature),
        }
    )
    return x509.load_der_x509_certificate(cert.dump())
