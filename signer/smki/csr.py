"""PKCS#10 certification requests whose signature is made elsewhere (inside the token).

``cryptography`` builds CSRs only around a private key it holds, and writes that key's public
key into the request. Our key never leaves the token, so we lay out the
CertificationRequestInfo ourselves with asn1crypto and sign it through ``sign_digest``, as
``signer.smki.issuance`` does for certificates. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from asn1crypto import core as asn1_core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import InvalidInput
from signer.gbcs.signature import raw_to_der
from signer.smki.issuance import SignDigest

# asn1crypto's names for the two keyUsage bits the SMKI organisation profile allows.
_KEY_USAGE_BIT = {"digitalSignature": "digital_signature", "keyAgreement": "key_agreement"}


def build_csr(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    key_usage: Literal["digitalSignature", "keyAgreement"] = "digitalSignature",
    sign_digest: SignDigest,
) -> x509.CertificateSigningRequest:
    """An ecdsa-with-SHA256 CSR for ``public_key``, signed by ``sign_digest`` (raw r||s).

    The request asks for exactly one critical keyUsage bit, as the SMKI profile requires, so
    the CA has nothing to guess. The signature is not checked here: a ``sign_digest`` using a
    key other than ``public_key`` gives a CSR that fails verification, which the CA refuses.
    """
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        what = (
            public_key.curve.name
            if isinstance(public_key, ec.EllipticCurvePublicKey)
            else type(public_key).__name__
        )
        raise InvalidInput(f"key is {what}, SMKI needs P-256 (secp256r1)", field="key")
    bit = _KEY_USAGE_BIT.get(key_usage)
    if bit is None:
        raise InvalidInput(
            f"key_usage must be digitalSignature or keyAgreement, got {key_usage!r}",
            field="key_usage",
        )
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_usage_ext = asn1_x509.Extension(
        {"extn_id": "key_usage", "critical": True, "extn_value": {bit}}
    )
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
            "attributes": [{"type": "extension_request", "values": [[key_usage_ext]]}],
        }
    )
    info_der = info.dump()
    # raw_to_der refuses anything but 64 bytes, so a token returning DER or junk fails here.
    signature = raw_to_der(sign_digest(hashlib.sha256(info_der).digest()), field="signature")
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": asn1_csr.CertificationRequestInfo.load(info_der),
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": asn1_core.OctetBitString(signature),
        }
    )
    return x509.load_der_x509_csr(request.dump())
