"""A test manufacturer: its key is the manufacturer's, so it lives outside the token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.constants import PINNED


@dataclass(frozen=True)
class Manufacturer:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_pem: Path

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def new_manufacturer(directory: Path) -> Manufacturer:
    """A fresh key and self-signed certificate valid around PINNED, its PEM in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test Manufacturer 121D")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(PINNED - dt.timedelta(days=365))
        .not_valid_after(PINNED + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path = directory / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Manufacturer(key, cert, path)
