"""A token whose only Supplier key is certified as Z1-supplier's second key (Z1b-supplier-ds).

Z1b's private key is not published, so a key generated in the token is certified by a test CA
with Z1b-supplier-ds's subject, validity and extensions, its SKI (43046B4F...) included: what
selection looks at. The device's cell names Z1-supplier-ds (44899792...), which this token lacks.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import NotFound
from tests.support.hsm import Z1B_TOKEN_LABEL, Hsm


def z1b_only_token(hsm: Hsm, vectors: Path) -> None:
    token = hsm.token(Z1B_TOKEN_LABEL)
    try:
        token.find(label="z1b-supplier-ds")
        return
    except NotFound:
        pass
    z1b = x509.load_pem_x509_certificate((vectors / "certs/Z1b-supplier-ds.pem").read_bytes())
    key = token.generate_key("z1b-supplier-ds")
    ca = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(z1b.subject)
        .issuer_name(z1b.issuer)
        .public_key(key.public_key)
        .serial_number(z1b.serial_number)
        .not_valid_before(z1b.not_valid_before_utc)
        .not_valid_after(z1b.not_valid_after_utc)
    )
    for ext in z1b.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    token.store_certificate(key, builder.sign(ca, hashes.SHA256()))
    assert token.find(label="z1b-supplier-ds").ski == bytes.fromhex("43046B4FB7C4F11B")
